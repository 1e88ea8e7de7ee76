//! SIGTERM and SIGINT for the client tools: the process stops at once, also as PID 1.
//!
//! The kernel drops a signal sent to the init process of a PID namespace (the PID 1 of a
//! container, or of `vchiq nsexec`) when its disposition is the default one: without a
//! handler, `docker stop`, `timeout` and Ctrl-C do nothing to such a client until
//! SIGKILL. A signal that is *blocked* is never dropped, so [`exit_on_termination`]
//! blocks SIGINT and SIGTERM (before any thread exists, so every thread inherits the
//! mask), reads them from a signalfd on a thread of its own and then ends the process:
//!
//! 1. the cleanup hooks registered with [`on_termination`] run (best effort: restore the
//!    terminal, ...);
//! 2. the same signal is passed on to this process's children (to the process group of a
//!    child that leads one, as the demo's namespaced clients do), so none is left behind;
//! 3. the process exits with status 128 + the signal number, as a shell reports a process
//!    killed by that signal. (Re-raising the signal with the default disposition would
//!    be dropped again when the process is PID 1.)
//!
//! Programs started with `std::process::Command` get an empty signal mask (the standard
//! library resets it in the child), so the mask does not leak into them.
//!
//! A command that must not have a thread of its own (`bench`: its pinned runs check that
//! every thread of the process is on one CPU) uses [`exit_on_termination_in_handler`]
//! instead: a real handler, which the kernel also delivers to a PID 1, that calls
//! `_exit(128 + signal)` at once, without the cleanup steps.
//!
//! Not for `vchiq daemon`, which reads the same signalfd in its event loop and shuts down
//! in order ([`vchiqd::sys::block_termination_signals`] is shared with it).

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use anyhow::{Context, Result};

/// A cleanup step run before the process exits on a termination signal.
type Hook = Box<dyn FnOnce() + Send>;

/// The registered cleanup hooks, run in registration order.
static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Size of `struct signalfd_siginfo` (linux/signalfd.h); `ssi_signo` is its first `u32`.
const SIGINFO_SIZE: usize = 128;

/// Makes SIGINT and SIGTERM end this process promptly with status 128 + signal number.
///
/// Call it first in `main`, before any thread is started: the mask is per thread, and
/// only threads created after the call inherit it.
///
/// # Errors
/// When the signals cannot be blocked, the signalfd cannot be created or the watcher
/// thread cannot be started.
pub fn exit_on_termination() -> Result<()> {
    let fd = vchiqd::sys::block_termination_signals().context("blocking SIGINT/SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || watch(fd))
        .context("starting the signal thread")?;
    Ok(())
}

/// Like [`exit_on_termination`], but without a thread: a signal handler ends the process
/// with status 128 + signal number at once (`_exit`, async-signal-safe), skipping the
/// cleanup hooks and the forwarding to children.
///
/// # Errors
/// When a handler cannot be installed.
pub fn exit_on_termination_in_handler() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let always = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        signal_hook::flag::register_conditional_shutdown(sig, 128 + sig, always)
            .with_context(|| format!("installing a handler for signal {sig}"))?;
    }
    Ok(())
}

/// For the commands that run a program and report its status (`exec`, `exec-inner`):
/// SIGINT and SIGTERM are passed on to the children, and this process carries on waiting
/// for them, so that the program's own handling decides the exit status (a program that
/// catches SIGTERM and exits 0 makes `vchiq exec` exit 0). As PID 1 the default
/// disposition would drop them instead. Call it first in `main`, as
/// [`exit_on_termination`].
///
/// # Errors
/// When the signals cannot be blocked or the forwarding thread cannot be started.
pub fn forward_termination() -> Result<()> {
    let fd = vchiqd::sys::block_termination_signals().context("blocking SIGINT/SIGTERM")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Some(signo) = next_signal(&fd) {
                match FORWARD_TO.load(std::sync::atomic::Ordering::Relaxed) {
                    0 => forward_to_children(signo),
                    pid => vchiqd::sys::signal(pid, signo),
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// The one child [`forward_termination`] passes the signals to (0: every child). `exec`
/// names the program, so that a private daemon it started is not stopped under the
/// program while the program handles the signal.
static FORWARD_TO: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Makes [`forward_termination`] pass the signals to `pid` only.
pub fn forward_to(pid: u32) {
    FORWARD_TO.store(pid, std::sync::atomic::Ordering::Relaxed);
}

/// The next signal read from a signalfd; `None` if it fails (it is ours and valid, so it
/// should not; the default then stays, and SIGKILL still works).
fn next_signal(fd: &OwnedFd) -> Option<i32> {
    let mut info = [0u8; SIGINFO_SIZE];
    loop {
        match rustix::io::read(fd, &mut info) {
            Ok(n) if n >= 4 => {
                return Some(i32::from_ne_bytes([info[0], info[1], info[2], info[3]]));
            }
            Ok(_) | Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Registers a cleanup step for a termination signal (it does not run on a normal exit).
///
/// Hooks run on the signal thread while other threads are still running: they must not
/// take locks that a blocked thread may hold (the stdout lock, for one; write to the
/// descriptor instead).
pub fn on_termination(hook: impl FnOnce() + Send + 'static) {
    HOOKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(hook));
}

/// The signal thread: waits for the first signal, cleans up and exits.
fn watch(fd: OwnedFd) {
    let Some(signo) = next_signal(&fd) else {
        return;
    };
    // No logging here: stderr's lock may be held by a thread blocked on a full pipe.
    // A hook that panicked while holding the lock must not stop the exit.
    let hooks = match HOOKS.try_lock() {
        Ok(mut h) => std::mem::take(&mut *h),
        Err(std::sync::TryLockError::Poisoned(p)) => std::mem::take(&mut *p.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => Vec::new(),
    };
    for hook in hooks {
        hook();
    }
    forward_to_children(signo);
    std::process::exit(128 + signo);
}

/// Sends `signo` to each child of this process; to its whole process group when the
/// child leads one of its own (the namespaced clients of `vchiq demo`), so that the
/// processes inside its namespace get it too.
fn forward_to_children(signo: i32) {
    let me = std::process::id();
    let own_group = process_group(me);
    for child in children(me) {
        let pgid = process_group(child);
        if pgid == Some(child) && pgid != own_group {
            vchiqd::sys::kill_process_group(child, signo);
        } else {
            vchiqd::sys::signal(child, signo);
        }
    }
}

/// The PIDs of the children of every thread of `pid` (`/proc/PID/task/TID/children`).
fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out.retain(|&c| c > 1);
    out
}

/// The process group of `pid` (field 5 of `/proc/PID/stat`, after the command name).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_pgrp(&stat)
}

/// `pgrp` from the text of `/proc/PID/stat`: `pid (comm) state ppid pgrp ...`, where
/// `comm` may itself contain spaces and parentheses.
fn parse_pgrp(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgrp_is_read_after_the_command_name() {
        assert_eq!(parse_pgrp("42 (a) b (c)) S 1 77 77 0 -1 4194560"), Some(77));
        assert_eq!(parse_pgrp("42 (vchiq) S 1 42 42"), Some(42));
        assert_eq!(parse_pgrp("garbage"), None);
    }

    #[test]
    fn own_process_group_is_found() {
        let me = std::process::id();
        let pgid = process_group(me).expect("own pgrp");
        assert_eq!(
            pgid,
            rustix::process::getpgrp().as_raw_nonzero().get() as u32
        );
    }
}
