//! The table of architectures `vchiq exec` can serve: where each one's preload shim is,
//! whether it runs natively here or under qemu-user, and where its libraries are.

use std::path::{Path, PathBuf};

/// The shim's file name, the same in every architecture's directory.
pub const SHIM_NAME: &str = "libvchiq_preload.so";

/// An architecture of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    I386,
    /// 32-bit ARM, hard float (Raspberry Pi OS 32-bit).
    Armhf,
    /// 64-bit ARM (Raspberry Pi OS 64-bit).
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::I386, Arch::Armhf, Arch::Arm64];

    /// The architecture this `vchiq` was built for.
    pub const fn host() -> Arch {
        if cfg!(target_arch = "x86_64") {
            Arch::X86_64
        } else if cfg!(target_arch = "x86") {
            Arch::I386
        } else if cfg!(target_arch = "aarch64") {
            Arch::Arm64
        } else {
            Arch::Armhf
        }
    }

    /// Debian's name (`dpkg --print-architecture`).
    pub fn debian(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::I386 => "i386",
            Arch::Armhf => "armhf",
            Arch::Arm64 => "arm64",
        }
    }

    /// The multiarch tuple: the shim's directory name, as in `/usr/lib/<tuple>/`.
    pub fn tuple(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64-linux-gnu",
            Arch::I386 => "i386-linux-gnu",
            Arch::Armhf => "arm-linux-gnueabihf",
            Arch::Arm64 => "aarch64-linux-gnu",
        }
    }

    /// The qemu-user emulators that run it (Debian's `qemu-user`, `qemu-user-static`).
    fn qemu_names(self) -> &'static [&'static str] {
        match self {
            Arch::X86_64 => &["qemu-x86_64", "qemu-x86_64-static"],
            Arch::I386 => &["qemu-i386", "qemu-i386-static"],
            Arch::Armhf => &["qemu-arm", "qemu-arm-static"],
            Arch::Arm64 => &["qemu-aarch64", "qemu-aarch64-static"],
        }
    }

    /// Whether this machine's kernel runs the architecture's programs itself. An x86-64
    /// kernel runs i386 programs; an arm64 kernel may run armhf ones but not always (many
    /// arm64 CPUs have no 32-bit mode), so that pair goes through qemu-user only when the
    /// user says so.
    pub fn runs_natively(self) -> bool {
        self == Arch::host() || (Arch::host() == Arch::X86_64 && self == Arch::I386)
    }

    /// Where the shim for this architecture may be, in the order searched: the build tree
    /// (`target/release/shims/<tuple>/`), an install prefix beside the executable
    /// (`../lib/<tuple>/vchiq/`), the system's multiarch directory, and for the host the
    /// shim next to the executable as `cargo build` leaves it.
    pub fn shim_candidates(self, exe_dir: &Path) -> Vec<PathBuf> {
        let t = self.tuple();
        // The install prefix: `/usr` for `/usr/bin/vchiq` (named without `..`, for messages).
        let prefix = exe_dir.parent().unwrap_or(exe_dir);
        let mut v = vec![
            exe_dir.join("shims").join(t).join(SHIM_NAME),
            prefix.join("lib").join(t).join("vchiq").join(SHIM_NAME),
            PathBuf::from("/usr/lib")
                .join(t)
                .join("vchiq")
                .join(SHIM_NAME),
        ];
        if self == Arch::host() {
            v.push(exe_dir.join(SHIM_NAME));
            v.push(prefix.join("lib/vchiq").join(SHIM_NAME));
            v.push(PathBuf::from("/usr/lib/vchiq").join(SHIM_NAME));
        }
        v
    }

    /// The first qemu-user emulator for this architecture on `PATH`.
    pub fn find_qemu(self) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        self.qemu_names().iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| is_executable(p))
        })
    }

    /// Debian's cross sysroot for the architecture (`libc6-<arch>-cross`).
    pub fn cross_sysroot(self) -> PathBuf {
        PathBuf::from("/usr").join(self.tuple())
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.debian())
    }
}

/// A regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds `name` the way `execvp` would: as given when it has a slash, else on `PATH`.
pub fn resolve_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Some(PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_architecture_has_its_own_shim_directory() {
        let dirs: std::collections::HashSet<_> = Arch::ALL.iter().map(|a| a.tuple()).collect();
        assert_eq!(dirs.len(), Arch::ALL.len());
        let c = Arch::Armhf.shim_candidates(Path::new("/opt/vchiq/bin"));
        assert_eq!(
            c[0],
            Path::new("/opt/vchiq/bin/shims/arm-linux-gnueabihf/libvchiq_preload.so")
        );
        // Only the host's shim may sit bare next to the executable: that name is taken.
        let bare = Path::new("/opt/vchiq/bin").join(SHIM_NAME);
        assert!(!c.contains(&bare));
        assert!(
            Arch::host()
                .shim_candidates(Path::new("/opt/vchiq/bin"))
                .contains(&bare)
        );
        assert!(Arch::host().runs_natively());
    }
}
