//! The daemon's socket protocol spoken by hand: frames, calls and an open service.

use std::io::IoSlice;
use std::os::fd::{AsFd, OwnedFd};

use vchiq_abi::wire::{self, Op, RequestHeader, ResponseHeader};
use vchiqd::sys;
use zerocopy::{FromBytes, IntoBytes};

use super::TestDaemon;

pub fn connect(d: &TestDaemon) -> OwnedFd {
    sys::seqpacket_connect(d.socket()).expect("connect")
}

pub fn send(
    sock: &OwnedFd,
    hdr: RequestHeader,
    payload: &[u8],
    fds: &[&OwnedFd],
) -> std::io::Result<usize> {
    let fds: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
    sys::send_with_fds(
        sock.as_fd(),
        &[IoSlice::new(hdr.as_bytes()), IoSlice::new(payload)],
        &fds,
    )
}

pub fn req(tag: u32, op: Op, arg: u64) -> RequestHeader {
    RequestHeader {
        magic: wire::REQUEST_MAGIC,
        tag,
        op: op as u32,
        flags: 0,
        arg,
    }
}

/// Waits for the response with `tag` (others are skipped); None if the connection closed.
pub fn response(sock: &OwnedFd, tag: u32) -> Option<(i64, Vec<u8>)> {
    let mut buf = vec![0u8; wire::MAX_FRAME];
    loop {
        let (n, _) = sys::recv_with_fds(sock.as_fd(), &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        let (h, rest) = ResponseHeader::read_from_prefix(&buf[..n]).ok()?;
        if h.tag == tag {
            return Some((h.result, rest.to_vec()));
        }
    }
}

pub fn call(sock: &OwnedFd, tag: u32, op: Op, arg: u64, payload: &[u8]) -> Option<i64> {
    send(sock, req(tag, op, arg), payload, &[]).ok()?;
    response(sock, tag).map(|r| r.0)
}

/// HELLO, LIB_VERSION, CONNECT and an open `echo` service; returns its handle.
pub fn open_echo(sock: &OwnedFd) -> u32 {
    open_vchi(sock, vchiq_abi::fourcc::FourCc::ECHO, 3)
}

/// HELLO, LIB_VERSION, CONNECT and an open VCHI-style service; returns its handle.
pub fn open_vchi(sock: &OwnedFd, fourcc: vchiq_abi::fourcc::FourCc, version: i16) -> u32 {
    let hello = wire::HelloRequest {
        version: wire::PROTOCOL_VERSION,
        flags: 0,
    };
    assert_eq!(call(sock, 1, Op::Hello, 0, hello.as_bytes()), Some(0));
    assert_eq!(call(sock, 2, Op::LibVersion, 8, &[]), Some(0));
    assert_eq!(call(sock, 3, Op::Connect, 0, &[]), Some(0));
    let create = wire::CreateServiceRequest {
        fourcc: fourcc.as_u32(),
        version,
        version_min: version,
        is_open: 1,
        is_vchi: 1,
        userdata: 7,
    };
    let h = call(sock, 4, Op::CreateService, 0, create.as_bytes()).expect("create reply");
    assert!(h > 0, "CREATE_SERVICE failed: {h}");
    h as u32
}
