//! What `vchiq exec` needs to know of a program before it runs it: its ELF class and
//! machine (which shim, whether qemu-user), and whether it is dynamic (a static program
//! never reads `LD_PRELOAD`).

use std::path::Path;

use super::arch::Arch;

/// `EM_*` machine numbers of the architectures the table knows.
const EM_386: u16 = 3;
const EM_ARM: u16 = 40;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
/// `e_flags` of a soft-float (armel) ARM binary.
const EF_ARM_ABI_FLOAT_SOFT: u32 = 0x200;
/// Program header type of the dynamic loader's path.
const PT_INTERP: u32 = 3;

/// An ELF file's identity, as far as `exec` cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// The architecture, if it is one the table knows.
    pub arch: Option<Arch>,
    /// `ELFCLASS32` or `ELFCLASS64` and the machine, for messages ("32-bit ARM (EM 40)").
    pub describe: String,
    /// The dynamic loader it asks for (`PT_INTERP`), `None` for a static program.
    pub interp: Option<String>,
    /// `ET_DYN` without an interpreter: a shared library (or a static-pie program).
    pub shared_object: bool,
}

/// Why a file's header could not be read as ELF.
#[derive(Debug, thiserror::Error)]
pub enum ElfError {
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("it is not an ELF file (a script or another format)")]
    NotElf,
    #[error("its ELF header is malformed ({0})")]
    Malformed(&'static str),
}

/// `N` bytes at `off`, or an error when the header is shorter.
fn bytes<const N: usize>(b: &[u8], off: usize) -> Result<[u8; N], ElfError> {
    b.get(off..off.checked_add(N).ok_or(ElfError::Malformed("offset"))?)
        .and_then(|s| s.try_into().ok())
        .ok_or(ElfError::Malformed("short header"))
}

fn u16_at(b: &[u8], off: usize, le: bool) -> Result<u16, ElfError> {
    let s = bytes(b, off)?;
    Ok(if le {
        u16::from_le_bytes(s)
    } else {
        u16::from_be_bytes(s)
    })
}

fn u32_at(b: &[u8], off: usize, le: bool) -> Result<u32, ElfError> {
    let s = bytes(b, off)?;
    Ok(if le {
        u32::from_le_bytes(s)
    } else {
        u32::from_be_bytes(s)
    })
}

fn u64_at(b: &[u8], off: usize, le: bool) -> Result<u64, ElfError> {
    let s = bytes(b, off)?;
    Ok(if le {
        u64::from_le_bytes(s)
    } else {
        u64::from_be_bytes(s)
    })
}

/// Reads the ELF identity of the file at `path`.
pub fn read(path: &Path) -> Result<ElfInfo, ElfError> {
    use std::io::Read;
    // The header and the program headers sit at the front of every real program; 64 KiB
    // bounds what a hostile file can make us read.
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(64 * 1024)
        .read_to_end(&mut buf)?;
    parse(&buf)
}

/// Parses an ELF identity from the first bytes of a file.
pub fn parse(b: &[u8]) -> Result<ElfInfo, ElfError> {
    if b.len() < 4 || &b[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let class64 = match b.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(ElfError::Malformed("unknown class")),
    };
    let le = match b.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(ElfError::Malformed("unknown byte order")),
    };
    let e_type = u16_at(b, 16, le)?;
    let machine = u16_at(b, 18, le)?;
    let (phoff, flags, phentsize, phnum) = if class64 {
        (
            u64_at(b, 32, le)?,
            u32_at(b, 48, le)?,
            u16_at(b, 54, le)?,
            u16_at(b, 56, le)?,
        )
    } else {
        (
            u64::from(u32_at(b, 28, le)?),
            u32_at(b, 36, le)?,
            u16_at(b, 42, le)?,
            u16_at(b, 44, le)?,
        )
    };
    let mut interp = None;
    for i in 0..usize::from(phnum) {
        let off = usize::try_from(phoff)
            .ok()
            .and_then(|o| o.checked_add(i.checked_mul(usize::from(phentsize))?))
            .ok_or(ElfError::Malformed("program header offset"))?;
        if u32_at(b, off, le)? != PT_INTERP {
            continue;
        }
        let (p_offset, p_filesz) = if class64 {
            (u64_at(b, off + 8, le)?, u64_at(b, off + 32, le)?)
        } else {
            (
                u64::from(u32_at(b, off + 4, le)?),
                u64::from(u32_at(b, off + 16, le)?),
            )
        };
        let start = usize::try_from(p_offset).map_err(|_| ElfError::Malformed("PT_INTERP"))?;
        let len = usize::try_from(p_filesz).map_err(|_| ElfError::Malformed("PT_INTERP"))?;
        let raw = b
            .get(start..start.saturating_add(len))
            .ok_or(ElfError::Malformed("PT_INTERP beyond the first 64 KiB"))?;
        let path = raw.split(|&c| c == 0).next().unwrap_or_default();
        interp = Some(String::from_utf8_lossy(path).into_owned());
        break;
    }
    let arch = match (class64, le, machine) {
        (true, true, EM_X86_64) => Some(Arch::X86_64),
        (false, true, EM_386) => Some(Arch::I386),
        (false, true, EM_ARM) if flags & EF_ARM_ABI_FLOAT_SOFT == 0 => Some(Arch::Armhf),
        (true, true, EM_AARCH64) => Some(Arch::Arm64),
        _ => None,
    };
    let name = match machine {
        EM_386 => "i386",
        EM_X86_64 => "x86-64",
        EM_ARM if flags & EF_ARM_ABI_FLOAT_SOFT != 0 => "ARM soft-float (armel)",
        EM_ARM => "ARM",
        EM_AARCH64 => "AArch64",
        _ => "machine",
    };
    let describe = format!(
        "{}-bit {}{name} (EM {machine})",
        if class64 { 64 } else { 32 },
        if le { "" } else { "big-endian " },
    );
    Ok(ElfInfo {
        arch,
        describe,
        shared_object: e_type == 3 && interp.is_none(),
        interp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF header with one PT_INTERP program header (or none).
    fn elf(class64: bool, machine: u16, flags: u32, interp: Option<&str>) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = if class64 { 2 } else { 1 };
        b[5] = 1;
        b[16..18].copy_from_slice(&3u16.to_le_bytes());
        b[18..20].copy_from_slice(&machine.to_le_bytes());
        let phoff = 64usize;
        let (entsz, n) = if class64 { (56u16, 1u16) } else { (32, 1) };
        let n = if interp.is_some() { n } else { 0 };
        if class64 {
            b[32..40].copy_from_slice(&(phoff as u64).to_le_bytes());
            b[48..52].copy_from_slice(&flags.to_le_bytes());
            b[54..56].copy_from_slice(&entsz.to_le_bytes());
            b[56..58].copy_from_slice(&n.to_le_bytes());
        } else {
            b[28..32].copy_from_slice(&(phoff as u32).to_le_bytes());
            b[36..40].copy_from_slice(&flags.to_le_bytes());
            b[42..44].copy_from_slice(&entsz.to_le_bytes());
            b[44..46].copy_from_slice(&n.to_le_bytes());
        }
        if let Some(path) = interp {
            let at = 256usize;
            b[at..at + path.len()].copy_from_slice(path.as_bytes());
            b[phoff..phoff + 4].copy_from_slice(&PT_INTERP.to_le_bytes());
            let len = path.len() + 1;
            if class64 {
                b[phoff + 8..phoff + 16].copy_from_slice(&(at as u64).to_le_bytes());
                b[phoff + 32..phoff + 40].copy_from_slice(&(len as u64).to_le_bytes());
            } else {
                b[phoff + 4..phoff + 8].copy_from_slice(&(at as u32).to_le_bytes());
                b[phoff + 16..phoff + 20].copy_from_slice(&(len as u32).to_le_bytes());
            }
        }
        b
    }

    #[test]
    fn each_architecture_of_the_table_is_recognised() {
        let cases = [
            (
                true,
                EM_X86_64,
                0,
                Arch::X86_64,
                "/lib64/ld-linux-x86-64.so.2",
            ),
            (false, EM_386, 0, Arch::I386, "/lib/ld-linux.so.2"),
            (
                false,
                EM_ARM,
                0x0500_0400,
                Arch::Armhf,
                "/lib/ld-linux-armhf.so.3",
            ),
            (
                true,
                EM_AARCH64,
                0,
                Arch::Arm64,
                "/lib/ld-linux-aarch64.so.1",
            ),
        ];
        for (c64, m, flags, arch, interp) in cases {
            let info = parse(&elf(c64, m, flags, Some(interp))).unwrap();
            assert_eq!(info.arch, Some(arch), "{info:?}");
            assert_eq!(info.interp.as_deref(), Some(interp));
            assert!(!info.shared_object);
        }
    }

    #[test]
    fn static_soft_float_and_foreign_files_are_told_apart() {
        let st = parse(&elf(false, EM_386, 0, None)).unwrap();
        assert_eq!(st.interp, None);
        let armel = parse(&elf(false, EM_ARM, EF_ARM_ABI_FLOAT_SOFT, None)).unwrap();
        assert_eq!(armel.arch, None);
        assert!(armel.describe.contains("armel"), "{}", armel.describe);
        assert!(matches!(parse(b"#!/bin/sh\n"), Err(ElfError::NotElf)));
        assert!(matches!(parse(b"\x7fELF\x09"), Err(ElfError::Malformed(_))));
        // A program header table pointing past the file is an error, not a panic.
        let mut bad = elf(true, EM_X86_64, 0, Some("/x"));
        bad[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(parse(&bad).is_err());
    }

    #[test]
    fn this_test_binary_is_read_as_the_host() {
        let me = std::env::current_exe().unwrap();
        let info = read(&me).unwrap();
        assert_eq!(info.arch, Some(Arch::host()));
        assert!(info.interp.is_some(), "{info:?}");
    }
}
