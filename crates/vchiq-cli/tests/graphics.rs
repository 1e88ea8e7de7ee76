//! hello_triangle through the whole stack: KHAN routing by attested client id, the 2016
//! failure with `--legacy-pid`, forged pids, and the tools' output formats.

mod common;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::hello::{frames, khan_posts, value};
use common::*;

/// Starts hello-triangle (in a PID namespace when `ns`), with one line per frame.
fn hello(d: &TestDaemon, ns: bool, extra: &[&str]) -> Child {
    demo(d, ns, "hello-triangle", extra)
}

/// Starts `command` (hello-triangle or hello-triangle2) as [`hello`] does.
fn demo(d: &TestDaemon, ns: bool, command: &str, extra: &[&str]) -> Child {
    let mut args: Vec<String> = if ns { nsexec_prefix() } else { Vec::new() };
    args.extend([command, "--progress"].map(String::from));
    if !extra.contains(&"--region") {
        args.extend(["--region", "left"].map(String::from));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut c = d.cmd(&a);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group: killing it kills the whole namespace.
    std::os::unix::process::CommandExt::process_group(&mut c, 0);
    c.spawn().expect("spawn hello-triangle")
}

/// Collects stdout lines until the process exits or nothing new arrives for `idle`.
fn collect(child: &mut Child, idle: Duration) -> (Vec<String>, bool) {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(idle) {
            Ok(l) => lines.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return (lines, true),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return (lines, false),
        }
    }
}

/// Runs `command` for 40 frames (in a PID namespace where possible): it must finish, be
/// PID 1 there, and get one KHAN post per swap, none going astray.
fn one_post_per_swap(command: &str) {
    let d = TestDaemon::start(&["--display-size", "640x480"]);
    let ns = namespaces_available();
    let mut c = demo(&d, ns, command, &["--frames", "40"]);
    let (lines, exited) = collect(&mut c, Duration::from_secs(30));
    assert!(exited, "{command} did not finish: {lines:?}");
    let status = c.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut c.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{command}: {lines:?} {err}");
    if ns {
        assert_eq!(value(&lines, "pid"), Some("1"));
    }
    assert_eq!(frames(&lines), 40);
    assert_eq!(khan_posts(&lines), Some(40), "{lines:?}");
    let (_, log, _) = d.run(&["log"], Duration::from_secs(20));
    assert!(!log.contains("No KHAN handle"), "{log}");
}

#[test]
fn hello_triangle_in_a_pid_namespace_gets_one_post_per_swap() {
    one_post_per_swap("hello-triangle");
}

/// The GLES 2.0 context's make-current records (gltype 2) carry the attested id too.
#[test]
fn hello_triangle2_on_a_gles2_context_in_a_pid_namespace_gets_one_post_per_swap() {
    one_post_per_swap("hello-triangle2");
}

#[test]
fn legacy_pid_in_a_namespace_freezes_at_the_fourth_swap() {
    if !namespaces_available() {
        common::cprog::skip("PID namespaces are not available here");
        return;
    }
    let d = TestDaemon::start(&["--display-size", "640x480"]);
    let mut c = hello(&d, true, &["--frames", "30", "--legacy-pid"]);
    let (lines, exited) = collect(&mut c, Duration::from_secs(5));
    assert!(
        !exited,
        "a legacy client inside a PID namespace must stall, not finish: {lines:?}"
    );
    kill_group(&mut c);
    assert_eq!(value(&lines, "pid"), Some("1"));
    // Three swaps complete on the three initial buffer counts; the 4th blocks.
    assert_eq!(frames(&lines), 3, "{lines:?}");
    let (_, log, _) = d.run(&["log"], Duration::from_secs(20));
    assert!(log.contains("*** No KHAN handle found for pid 1"), "{log}");
    let lines_with: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("No KHAN handle"))
        .collect();
    assert_eq!(lines_with.len(), 4, "one lost post per swap sent: {log}");
}

#[test]
fn two_clients_in_two_namespaces_both_finish() {
    let ns = namespaces_available();
    let d = TestDaemon::start(&["--display-size", "640x480"]);
    let mut a = hello(&d, ns, &["--frames", "30"]);
    let mut b = hello(&d, ns, &["--frames", "30", "--region", "right"]);
    let (la, ea) = collect(&mut a, Duration::from_secs(30));
    let (lb, eb) = collect(&mut b, Duration::from_secs(30));
    assert!(ea && eb, "both must finish: {la:?} {lb:?}");
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    assert_ne!(value(&la, "client_id"), value(&lb, "client_id"));
    assert_eq!(khan_posts(&la), Some(30));
    assert_eq!(khan_posts(&lb), Some(30));
}

#[test]
fn a_forged_pid_never_reaches_another_client() {
    let d = TestDaemon::start(&["--display-size", "640x480"]);
    // A, the victim, runs long enough to be alive during the attack: B needs a few
    // frames (well under a second); A's 1,500 take several seconds even on a fast stack.
    const VICTIM_FRAMES: usize = 1500;
    let frames_arg = VICTIM_FRAMES.to_string();
    let mut a = hello(&d, false, &["--frames", &frames_arg]);
    let out = a.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(out);
    let mut head = Vec::new();
    let t0 = Instant::now();
    while value(&head, "client_id").is_none() {
        let mut l = String::new();
        assert!(reader.read_line(&mut l).unwrap() > 0, "victim exited early");
        head.push(l.trim_end().to_owned());
        assert!(t0.elapsed() < Duration::from_secs(20));
    }
    let victim = value(&head, "client_id").unwrap().to_owned();
    // B writes A's id into its make-current records.
    let mut b = hello(&d, false, &["--frames", "30", "--forge-pid", &victim]);
    let (lb, eb) = collect(&mut b, Duration::from_secs(5));
    assert!(
        !eb,
        "the forger must not get its own swaps completed: {lb:?}"
    );
    kill_group(&mut b);
    assert_eq!(frames(&lb), 3);
    // A finishes with exactly one post per swap: none of B's reached it.
    let rest: Vec<String> = reader.lines().map_while(Result::ok).collect();
    assert!(a.wait().unwrap().success());
    assert_eq!(khan_posts(&rest), Some(VICTIM_FRAMES), "{rest:?}");
    let (_, log, _) = d.run(&["log"], Duration::from_secs(20));
    assert!(
        log.contains(&format!("khan: post for pid {victim} refused")),
        "{log}"
    );
}

#[test]
fn vcgencmd_and_vcdbg_speak_like_the_real_tools() {
    let d = TestDaemon::start(&[]);
    let dir = d.dir.clone();
    for name in ["vcgencmd", "vcdbg"] {
        std::os::unix::fs::symlink(exe(), dir.join(name)).unwrap();
    }
    let run = |prog: &str, args: &[&str]| {
        let mut c = std::process::Command::new(dir.join(prog));
        c.args(args).env("VCHIQ_SOCKET", d.socket());
        run_with_limit(c, Duration::from_secs(20))
    };
    let (code, out, _) = run("vcgencmd", &["measure_temp"]);
    assert_eq!(code, Some(0));
    let t = out
        .trim()
        .strip_prefix("temp=")
        .and_then(|r| r.strip_suffix("'C"))
        .expect(&out);
    assert!(t.parse::<f32>().unwrap() > 30.0);
    let (_, out, _) = run("vcgencmd", &["measure_clock", "arm"]);
    assert!(out.trim().starts_with("frequency(48)="), "{out}");
    let (_, out, _) = run("vcgencmd", &["get_mem", "arm"]);
    assert!(
        out.trim().starts_with("arm=") && out.trim().ends_with('M'),
        "{out}"
    );
    let (_, out, _) = run("vcgencmd", &["get_throttled"]);
    assert_eq!(out.trim(), "throttled=0x0");
    let (_, out, _) = run("vcgencmd", &["commands"]);
    assert!(
        out.starts_with("commands=\"") && out.contains("measure_temp"),
        "{out}"
    );
    let (code, out, err) = run("vcgencmd", &["no_such_command"]);
    assert_eq!(code, Some(254));
    assert!(out.is_empty());
    assert!(
        err.starts_with("error=2 error_msg=\"Command not registered\""),
        "{err}"
    );
    let (code, out, _) = run("vcdbg", &["log", "msg"]);
    assert_eq!(code, Some(0));
    assert!(!out.is_empty());
    for line in out.lines() {
        let (stamp, text) = line.split_once(": ").expect(line);
        let (secs, ms) = stamp.split_once('.').expect(line);
        assert!(
            secs.len() == 6 && secs.bytes().all(|b| b.is_ascii_digit()),
            "{line}"
        );
        assert!(
            ms.len() == 3 && ms.bytes().all(|b| b.is_ascii_digit()),
            "{line}"
        );
        assert!(!text.is_empty());
    }
    assert!(out.contains("gencmd: command not registered"), "{out}");
}
