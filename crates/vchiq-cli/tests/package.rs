//! The Debian package (`scripts/package-deb`, issue #13): built from the workspace,
//! installed with dpkg into a throwaway root, its socket unit's daemon started the way
//! systemd starts it, `vcgencmd measure_temp` answered, then purged without a trace.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cprog::{skip, workspace_root};
use common::*;

fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// A root with just what dpkg and groupadd need: an empty package database, a group file.
fn throwaway_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    for d in [
        "var/lib/dpkg/info",
        "var/lib/dpkg/updates",
        "var/log",
        "etc",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("var/lib/dpkg/status"), "").unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::write(root.join("etc/gshadow"), "root:*::\n").unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    root
}

fn dpkg(root: &Path) -> Command {
    let mut c = Command::new("dpkg");
    // Maintainer scripts run on the host with DPKG_ROOT set (no shell inside the root).
    c.arg("--root")
        .arg(root)
        .args(["--force-script-chrootless", "--force-depends"])
        .arg(format!("--log={}", root.join("var/log/dpkg.log").display()));
    c
}

/// The value of `Key=` in a unit file.
fn unit_value(unit: &str, key: &str) -> String {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the unit"))
        .trim()
        .to_owned()
}

#[test]
fn the_deb_installs_serves_vcgencmd_through_its_socket_unit_and_purges_cleanly() {
    for tool in ["dpkg-deb", "dpkg", "groupadd", "systemd-socket-activate"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            return skip(&format!(
                "{tool} is not installed (Debian: dpkg, passwd, systemd)"
            ));
        }
    }
    let dir = scratch_dir("package");
    let debs = dir.join("debs");
    run(
        Command::new(workspace_root().join("scripts/package-deb"))
            .arg("--out")
            .arg(&debs)
            .current_dir(workspace_root()),
        "scripts/package-deb",
    );
    let deb = std::fs::read_dir(&debs)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    let info = run(
        Command::new("dpkg-deb").arg("--info").arg(&deb),
        "dpkg-deb --info",
    );
    assert!(info.contains("Package: vchiq"), "{info}");

    let root = throwaway_root(&dir);
    run(dpkg(&root).arg("-i").arg(&deb), "dpkg -i");

    // What the package put where.
    let host_tuple = "x86_64-linux-gnu";
    for f in [
        "usr/bin/vchiq",
        "lib/systemd/system/vchiqd.socket",
        "lib/systemd/system/vchiqd.service",
        "usr/share/man/man1/vchiq.1.gz",
        "usr/share/man/man1/vchiq-exec.1.gz",
        "usr/share/man/man1/vcgencmd.1.gz",
        "usr/share/bash-completion/completions/vchiq",
        "usr/share/zsh/vendor-completions/_vchiq",
        "usr/share/fish/vendor_completions.d/vchiq.fish",
        "usr/share/doc/vchiq/copyright",
    ] {
        assert!(root.join(f).is_file(), "{f} is not installed");
    }
    let shim = root.join(format!("usr/lib/{host_tuple}/vchiq/libvchiq_preload.so"));
    assert!(shim.is_file(), "the host shim under the multiarch path");
    for link in ["vcgencmd", "vcdbg", "vchiq_test"] {
        let target = std::fs::read_link(root.join("usr/bin").join(link)).unwrap();
        assert_eq!(target, Path::new("vchiq"), "{link}");
    }
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(
        group.lines().any(|l| l.starts_with("video:")),
        "postinst creates the group: {group}"
    );
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(status.contains("Status: install ok installed"), "{status}");

    // The daemon as systemd would start it: the socket unit's SOCK_SEQPACKET listener
    // passed to the service's ExecStart (both read from the installed units).
    let socket_unit =
        std::fs::read_to_string(root.join("lib/systemd/system/vchiqd.socket")).unwrap();
    let service = std::fs::read_to_string(root.join("lib/systemd/system/vchiqd.service")).unwrap();
    let unit_socket = unit_value(&socket_unit, "ListenSequentialPacket");
    assert_eq!(unit_socket, "/run/vchiq/vchiq.sock");
    assert_eq!(unit_value(&socket_unit, "SocketGroup"), "video");
    assert_eq!(unit_value(&socket_unit, "SocketMode"), "0660");
    let exec_start = unit_value(&service, "ExecStart");
    assert!(
        exec_start.starts_with("/usr/bin/vchiq daemon"),
        "{exec_start}"
    );
    // In the throwaway root: its binary, and a private path for the socket.
    let sock = dir.join("vchiq.sock");
    let mut argv: Vec<String> = exec_start
        .replace(&unit_socket, sock.to_str().unwrap())
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    argv[0] = root.join("usr/bin/vchiq").display().to_string();
    let mut daemon = Command::new("systemd-socket-activate")
        .arg("--seqpacket")
        .arg("--listen")
        .arg(&sock)
        .args(&argv)
        .args(["--display-size", "64x64"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !sock.exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no listener");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Command::new(root.join("usr/bin/vcgencmd"));
    c.arg("measure_temp").env("VCHIQ_SOCKET", &sock);
    let (code, out, err) = run_with_limit(c, Duration::from_secs(30));
    unsafe_free_kill(daemon.id(), 15);
    let _ = daemon.wait();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.starts_with("temp="), "{out}");
    // The packaged exec finds the packaged shims.
    let mut c = Command::new(root.join("usr/bin/vchiq"));
    c.args(["exec", "--explain", "--", "/bin/true"]);
    let (_, explain, _) = run_with_limit(c, Duration::from_secs(30));
    assert!(
        explain.contains(&format!("{}", shim.display())),
        "exec of the package uses the package's shim: {explain}"
    );

    run(dpkg(&root).args(["--purge", "vchiq"]), "dpkg --purge");
    let mut left = Vec::new();
    for sub in ["usr", "lib"] {
        let base = root.join(sub);
        if base.exists() {
            let out = run(Command::new("find").arg(&base).args(["-type", "f"]), "find");
            left.extend(out.lines().map(str::to_owned));
        }
    }
    assert!(left.is_empty(), "files left after purge: {left:?}");
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap();
    assert!(!status.contains("Package: vchiq"), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
