#!/usr/bin/env python3
"""Writes the seed corpus of the fuse_requests fuzz target (fuzz/corpus/fuse_requests).

A seed is messages of a u16 length and that many bytes (fuzz_targets/split.rs): first the
caller's memory (mapped at ARENA), then requests, each a selector byte (0: the harness
sets len, pid and unique) and a FUSE request (fuse_in_header, then the opcode's struct).
File handles below 8 and service handles below 16 are mapped by the target to live ones
(fh 0 = the first file opened; handle 0 = that file's first service).

The ioctl numbers and argument structs are the Linux vchiq driver's (vchiq_ioctl.h) in
both layouts: LP64 pointers are 8 bytes, ILP32 ones 4.
"""
import os
import struct
import sys

ARENA = 0x4000_0000
LOOKUP, FORGET, GETATTR, WRITE, OPEN, READ, STATFS, RELEASE, FLUSH, INIT = 1, 2, 3, 16, 14, 15, 17, 18, 25, 26
INTERRUPT, DESTROY, IOCTL, POLL, BATCH_FORGET = 36, 38, 39, 40, 42
IOCTL_32BIT = 1 << 3
FILE = 2
MSG_ECHO = 5


def ioc(direction, nr, size):
    return (direction << 30) | (size << 16) | (0xC4 << 8) | nr


IO, IOW, IOWR = 0, 1, 3
SIZES = {  # (LP64, ILP32)
    "create": (48, 28), "msg": (16, 12), "bulk": (40, 20), "await": (32, 20),
    "dequeue": (24, 16), "config": (16, 8), "option": (12, 12),
}
NR = dict(connect=0, shutdown=1, create=2, remove=3, msg=4, tx=5, rx=6, await_=7, dequeue=8,
          client_id=9, config=10, close=11, use=12, release=13, option=14, lib_version=16,
          close_delivered=17)


def cmd(name, ilp32):
    k = 1 if ilp32 else 0
    table = {
        "connect": (IO, 0), "shutdown": (IO, 0), "remove": (IO, 0), "client_id": (IO, 0),
        "close": (IO, 0), "use": (IO, 0), "release": (IO, 0), "lib_version": (IO, 0),
        "close_delivered": (IO, 0),
        "create": (IOWR, SIZES["create"][k]), "msg": (IOW, SIZES["msg"][k]),
        "tx": (IOWR, SIZES["bulk"][k]), "rx": (IOWR, SIZES["bulk"][k]),
        "await_": (IOWR, SIZES["await"][k]), "dequeue": (IOWR, SIZES["dequeue"][k]),
        "config": (IOWR, SIZES["config"][k]), "option": (IOW, SIZES["option"][k]),
    }
    d, size = table[name]
    return ioc(d, NR[name], size)


def req(opcode, body=b"", nodeid=FILE, sel=0, pid=0, unique=0):
    hdr = struct.pack("<IIQQIIIHH", 40 + len(body), opcode, unique, nodeid, 0, 0, pid, 0, 0)
    b = bytes([sel]) + hdr + body
    return struct.pack("<H", len(b)) + b


def memory(data):
    return struct.pack("<H", len(data)) + data


def ioctl(name, data=b"", arg=0, fh=0, ilp32=False, out=None):
    flags = IOCTL_32BIT if ilp32 else 0
    size = len(data)
    body = struct.pack("<QIIQII", fh, flags, cmd(name, ilp32), arg, size, out if out is not None else size) + data
    return req(IOCTL, body)


def fourcc(s):
    return struct.unpack(">I", s.encode())[0]


def create(name, ilp32=False, vchi=0, is_open=1, version=3):
    if ilp32:
        return struct.pack("<iIIhhiiI", fourcc(name), 0, 0x55, version, version, is_open, vchi, 0)
    return struct.pack("<i4xQQhh4xiiI4x", fourcc(name), 0, 0x55, version, version, is_open, vchi, 0)


def queue(handle, elements_at, count, ilp32=False):
    return struct.pack("<III", handle, count, elements_at) if ilp32 else struct.pack("<IIQ", handle, count, elements_at)


def elements(parts_at, ilp32=False):
    """An element array in the arena: (address, size) pairs."""
    if ilp32:
        return b"".join(struct.pack("<II", a, n) for a, n in parts_at)
    return b"".join(struct.pack("<Q I4x", a, n) for a, n in parts_at)


def bulk(handle, data_at, size, mode, ilp32=False, userdata=9):
    if ilp32:
        return struct.pack("<IIIII", handle, data_at, size, userdata, mode)
    return struct.pack("<I4xQI4xQI4x", handle, data_at, size, userdata, mode)


def await_(buf_at, count, msgbufsize, msgbufcount, msgbufs_at, ilp32=False):
    if ilp32:
        return struct.pack("<IIIII", count, buf_at, msgbufsize, msgbufcount, msgbufs_at)
    return struct.pack("<I4xQIIQ", count, buf_at, msgbufsize, msgbufcount, msgbufs_at)


def dequeue(handle, blocking, bufsize, buf_at, ilp32=False):
    if ilp32:
        return struct.pack("<IiII", handle, blocking, bufsize, buf_at)
    return struct.pack("<IiI4xQ", handle, blocking, bufsize, buf_at)


def config(size, at, ilp32=False):
    return struct.pack("<II", size, at) if ilp32 else struct.pack("<I4xQ", size, at)


INIT_REQ = req(INIT, struct.pack("<IIII", 7, 31, 65536, 0), nodeid=0)
OPEN_REQ = req(OPEN, struct.pack("<II", 2, 0))


def arena_with_message(ilp32):
    """Element array at +0, message at +0x100, message buffers pointer array at +0x200
    (pointing at +0x1000 and +0x2000), completion records at +0x800."""
    mem = bytearray(0x3000)
    elem = elements([(ARENA + 0x100, 12)], ilp32)
    mem[0:len(elem)] = elem
    mem[0x100:0x10C] = struct.pack("<I", MSG_ECHO) + b"fuzzing!"
    ptrs = struct.pack("<II", ARENA + 0x1000, ARENA + 0x2000) if ilp32 else struct.pack("<QQ", ARENA + 0x1000, ARENA + 0x2000)
    mem[0x200:0x200 + len(ptrs)] = ptrs
    return bytes(mem)


def session(ilp32, vchi=0):
    return (INIT_REQ + OPEN_REQ + ioctl("connect", ilp32=ilp32)
            + ioctl("create", create("echo", ilp32, vchi=vchi), ilp32=ilp32))


seeds = {}
for ilp32 in (False, True):
    w = "32" if ilp32 else "64"
    mem = memory(arena_with_message(ilp32))
    seeds[f"echo_await_{w}"] = (mem + session(ilp32)
                                + ioctl("msg", queue(0, ARENA, 1, ilp32), ilp32=ilp32)
                                + ioctl("await_", await_(ARENA + 0x800, 4, 4096, 2, ARENA + 0x200, ilp32), ilp32=ilp32))
    seeds[f"vchi_dequeue_{w}"] = (mem + session(ilp32, vchi=1)
                                  + ioctl("msg", queue(0, ARENA, 1, ilp32), ilp32=ilp32)
                                  + ioctl("dequeue", dequeue(0, 1, 4096, ARENA + 0x1000, ilp32), ilp32=ilp32))
    seeds[f"bulk_{w}"] = (mem + session(ilp32)
                          + ioctl("tx", bulk(0, ARENA + 0x1000, 4096, 0, ilp32), ilp32=ilp32)
                          + ioctl("rx", bulk(0, ARENA + 0x2000, 4096, 1, ilp32), ilp32=ilp32)
                          + req(INTERRUPT, struct.pack("<Q", 6)))
    seeds[f"bad_pointers_{w}"] = (mem + session(ilp32)
                                  + ioctl("msg", queue(0, 0xDEAD0000, 1, ilp32), ilp32=ilp32)
                                  + ioctl("msg", queue(0, ARENA, 9, ilp32), ilp32=ilp32)
                                  + ioctl("await_", await_(0, 4, 4096, 2, ARENA + 0x200, ilp32), ilp32=ilp32)
                                  + ioctl("config", config(20, ARENA + 0xFFF0, ilp32), ilp32=ilp32))
    seeds[f"await_interrupt_{w}"] = (mem + session(ilp32)
                                     + ioctl("await_", await_(ARENA + 0x800, 4, 4096, 2, ARENA + 0x200, ilp32), ilp32=ilp32)
                                     + req(INTERRUPT, struct.pack("<Q", 4)))
    seeds[f"config_close_{w}"] = (mem + session(ilp32) + ioctl("config", config(20, ARENA + 0x400, ilp32), ilp32=ilp32)
                                  + ioctl("use", arg=0, ilp32=ilp32) + ioctl("release", arg=0, ilp32=ilp32)
                                  + ioctl("lib_version", arg=8, ilp32=ilp32)
                                  + ioctl("close", arg=0, ilp32=ilp32) + ioctl("close_delivered", arg=0, ilp32=ilp32)
                                  + ioctl("remove", arg=0, ilp32=ilp32) + req(RELEASE, struct.pack("<QIIQ", 0, 0, 0, 0)))
mem = memory(arena_with_message(False))
seeds["two_openers_cross"] = (mem + session(False) + OPEN_REQ + ioctl("connect", fh=1)
                              + ioctl("close", arg=1, fh=1) + ioctl("remove", arg=1, fh=1)
                              + ioctl("msg", queue(1, ARENA, 1), fh=1) + ioctl("client_id", arg=1, fh=1))
seeds["wrong_layout_numbers"] = (mem + INIT_REQ + OPEN_REQ
                                 + req(IOCTL, struct.pack("<QIIQII", 0, 0, cmd("create", True), 0, 28, 28) + create("echo", True))
                                 + req(IOCTL, struct.pack("<QIIQII", 0, IOCTL_32BIT, cmd("create", False), 0, 48, 48) + create("echo"))
                                 + req(IOCTL, struct.pack("<QIIQII", 0, 0, 0xC4FF, 0, 0, 0)))
seeds["other_opcodes"] = (mem + INIT_REQ + req(LOOKUP, b"vchiq\0", nodeid=1) + req(LOOKUP, b"nope\0", nodeid=1)
                          + req(GETATTR, b"\0" * 16, nodeid=1) + req(GETATTR, b"\0" * 16) + req(STATFS, nodeid=1)
                          + OPEN_REQ + req(READ, struct.pack("<QQIIQII", 0, 0, 4096, 0, 0, 0, 0))
                          + req(READ, struct.pack("<QQIIQII", 0, 1 << 40, 0xFFFFFFFF, 0, 0, 0, 0))
                          + req(WRITE, struct.pack("<QQII", 0, 0, 4, 0) + b"abcd") + req(POLL, struct.pack("<QQII", 0, 0, 0, 0))
                          + req(FLUSH, struct.pack("<QII", 0, 0, 0)) + req(FORGET, struct.pack("<Q", 1))
                          + req(0xFFFF) + req(OPEN, nodeid=1) + req(DESTROY, nodeid=0))
seeds["init_versions"] = (mem + req(INIT, struct.pack("<IIII", 6, 1, 0, 0), nodeid=0)
                          + req(INIT, struct.pack("<IIII", 8, 0, 0, 0), nodeid=0) + req(INIT, b"\x07", nodeid=0))
seeds["hostile_header"] = (mem + req(OPEN, struct.pack("<II", 2, 0), sel=2, pid=0) + req(OPEN, sel=2, pid=0x7FFFFFF0)
                           + req(IOCTL, b"\x00" * 8, sel=1) + req(RELEASE, struct.pack("<QIIQ", 77, 0, 0, 0)))

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "fuse_requests")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
