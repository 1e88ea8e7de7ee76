//! Test and bench helper: re-exec the current binary as a peer process and hand it the memfd and
//! the two eventfds over a Unix socket (SCM_RIGHTS) that becomes the child's stdin.

#![allow(dead_code)]

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Environment variable that tells a re-executed binary which peer role to play.
pub const CHILD_ENV: &str = "VCHIQ_LINK_PEER_ROLE";

/// Spawns `args` of the current executable with `CHILD_ENV=role` and passes `fds` to it.
pub fn spawn_with_fds(role: &str, args: &[&str], fds: &[BorrowedFd<'_>]) -> Child {
    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(args)
        .env(CHILD_ENV, role)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .expect("spawn peer process");
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut buf = SendAncillaryBuffer::new(&mut space);
    assert!(buf.push(SendAncillaryMessage::ScmRights(fds)));
    rustix::net::sendmsg(&ours, &[IoSlice::new(b"f")], &mut buf, SendFlags::empty())
        .expect("sendmsg");
    child
}

/// In the child: receive the fds sent by [`spawn_with_fds`] on stdin.
pub fn receive_fds() -> Vec<OwnedFd> {
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut buf = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        fd,
        &mut [IoSliceMut::new(&mut byte)],
        &mut buf,
        RecvFlags::empty(),
    )
    .expect("recvmsg");
    let mut out = Vec::new();
    for msg in buf.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            out.extend(fds);
        }
    }
    out
}
