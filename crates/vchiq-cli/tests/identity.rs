//! Container-safe identity: clients in PID namespaces are told apart by what the kernel
//! reports, and the VideoCore learns exactly that id.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[test]
fn status_self_reports_the_attested_client_id() {
    let d = TestDaemon::start(&[]);
    let (code, out, err) = d.run(&["status", "--self"], Duration::from_secs(20));
    assert_eq!(code, Some(0), "stderr: {err}");
    let pid = out
        .lines()
        .find_map(|l| l.strip_prefix("pid: "))
        .expect("pid line");
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("client_id: "))
        .expect("client_id line");
    // Not in a namespace: the PID the process sees is the one the driver attests.
    assert_eq!(pid, id);
}

#[test]
fn two_clients_in_pid_namespaces_get_their_host_pids() {
    if !namespaces_available() {
        common::cprog::skip("PID namespaces are not available here");
        return;
    }
    let d = TestDaemon::start(&[]);
    let prefix = nsexec_prefix();
    let mut probes = Vec::new();
    for _ in 0..2 {
        let mut cmd = Command::new(exe());
        cmd.args(&prefix)
            .arg("probe-identity")
            .env("VCHIQ_SOCKET", d.socket())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn probe");
        let mut r = lines(&mut child);
        let keys = read_keys(&mut r, 4);
        probes.push((child, keys));
    }
    let mut ids = Vec::new();
    for (child, keys) in &probes {
        // Inside its namespace the client is PID 1 ...
        assert_eq!(keys.get("pid").map(String::as_str), Some("1"), "{keys:?}");
        let id: u32 = keys["client_id"].parse().unwrap();
        // ... the driver attests its host PID (the nsexec process's child) ...
        let host = children_of(child.id());
        assert_eq!(
            host,
            vec![id],
            "client id must be the host PID of the namespaced client"
        );
        // ... GET_CLIENT_ID returns it, and it is what the VideoCore got in OPEN.
        assert_eq!(keys["get_client_id"], keys["client_id"]);
        assert_eq!(keys["vc_client_id"], keys["client_id"]);
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "two PID-1 clients must get distinct ids");
    for (mut child, _) in probes {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
}
