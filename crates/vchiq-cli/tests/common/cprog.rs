//! The project's C test programs (`tests/c/`), compiled for each architecture `vchiq exec`
//! serves, and the preload shims built for them (`scripts/build-shims`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::exe;

/// A test that cannot run: under CI (where `.ci/run` installs everything) that is a
/// failure; elsewhere it is skipped with the reason printed.
pub fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run under CI: {reason}");
    }
    eprintln!("skipped: {reason}");
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A build of the C test program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Build {
    Native64,
    Static64,
    I386,
    I386Static,
    Armhf,
    Arm64,
}

impl Build {
    fn compiler_and_flags(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Build::Native64 => ("cc", &[]),
            Build::Static64 => ("cc", &["-static"]),
            Build::I386 => ("cc", &["-m32"]),
            Build::I386Static => ("cc", &["-m32", "-static"]),
            Build::Armhf => ("arm-linux-gnueabihf-gcc", &[]),
            Build::Arm64 => ("aarch64-linux-gnu-gcc", &[]),
        }
    }

    /// The Debian packages `.ci/run` installs for it.
    fn packages(self) -> &'static str {
        match self {
            Build::Native64 | Build::Static64 => "gcc",
            Build::I386 | Build::I386Static => "gcc-12-multilib linux-libc-dev:i386",
            Build::Armhf => "gcc-arm-linux-gnueabihf libc6:armhf",
            Build::Arm64 => "gcc-aarch64-linux-gnu libc6:arm64",
        }
    }
}

/// `tests/c/vchiq_ioctl.c` built as `b` (see [`c_program_of`]).
pub fn c_program(b: Build) -> Option<PathBuf> {
    c_program_of("vchiq_ioctl", b)
}

/// `tests/c/NAME.c` built as `b`, compiled once per test binary; `None` (with [`skip`])
/// when this machine cannot build it.
pub fn c_program_of(name: &str, b: Build) -> Option<PathBuf> {
    type Built = HashMap<(String, Build), Option<PathBuf>>;
    static BUILT: OnceLock<Mutex<Built>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    let key = (name.to_owned(), b);
    if let Some(p) = built.get(&key) {
        if p.is_none() {
            skip(&format!("no {b:?} build of the C test program (see above)"));
        }
        return p.clone();
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ctests");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}_{b:?}").to_lowercase());
    let (cc, flags) = b.compiler_and_flags();
    let res = Command::new(cc)
        .args(["-O2", "-Wall", "-pthread"])
        .args(flags)
        .arg(workspace_root().join(format!("tests/c/{name}.c")))
        .arg("-o")
        .arg(&out)
        .output();
    let result = match res {
        Ok(o) if o.status.success() => Some(out),
        Ok(o) => {
            skip(&format!(
                "the {b:?} build failed ({cc} {flags:?}; needs {}): {}",
                b.packages(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
            None
        }
        Err(e) => {
            skip(&format!(
                "no {cc} for the {b:?} build (needs {}): {e}",
                b.packages()
            ));
            None
        }
    };
    built.insert(key, result.clone());
    result
}

/// The shim for a multiarch tuple where `vchiq exec` looks for it (`shims/<tuple>/` next
/// to the `vchiq` under test), built with `scripts/build-shims` when missing.
pub fn shim(tuple: &str) -> Option<PathBuf> {
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    let exe_dir = Path::new(exe()).parent().unwrap().to_path_buf();
    let want = exe_dir
        .join("shims")
        .join(tuple)
        .join("libvchiq_preload.so");
    if want.is_file() {
        return Some(want);
    }
    let arch = match tuple {
        "x86_64-linux-gnu" => "amd64",
        "i386-linux-gnu" => "i386",
        "arm-linux-gnueabihf" => "armhf",
        "aarch64-linux-gnu" => "arm64",
        other => panic!("unknown tuple {other}"),
    };
    let status = Command::new(workspace_root().join("scripts/build-shims"))
        .arg(arch)
        .current_dir(workspace_root())
        .status();
    // build-shims writes target/release/shims; a debug `vchiq` looks next to itself.
    let built = exe_dir
        .join("../release/shims")
        .join(tuple)
        .join("libvchiq_preload.so");
    if matches!(status, Ok(s) if s.success()) && built.is_file() {
        if built != want {
            std::fs::create_dir_all(want.parent().unwrap()).unwrap();
            std::fs::copy(&built, &want).unwrap();
        }
        return Some(want);
    }
    skip(&format!(
        "the {arch} shim cannot be built here (scripts/build-shims {arch} says why)"
    ));
    None
}
