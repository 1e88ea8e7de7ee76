#!/usr/bin/env python3
"""Writes the seed corpus of the socket_session fuzz target (fuzz/corpus/socket_session).

Each seed is a request sequence in the target's format (fuzz_targets/socket_session.rs):
messages of a u16 length and that many bytes, the first byte a selector (bit 0 the client,
bit 1 attach a memfd to a bulk, bit 2 keep a bad magic, bit 3 hang up after), then a
request frame (header: magic, tag, op, flags, arg; then the payload). Handles below 16
are mapped by the target to live ones: 0 = the client's first, 1 = the other's first.
"""
import os
import struct
import sys

MAGIC = 0x56515251
OP = dict(connect=0, shutdown=1, create=2, remove=3, msg=4, tx=5, rx=6, await_=7,
          dequeue=8, client_id=9, config=10, close=11, use=12, release=13, option=14,
          lib_version=16, close_delivered=17, hello=0x100, cancel=0x101)
POSTED, BATCH, INLINE = 1, 2, 4
CALLBACK, BLOCKING, NOCALLBACK, WAITING = 0, 1, 2, 3
MSG_ECHO = 5


def fourcc(s):
    return struct.unpack(">I", s.encode())[0]


def frame(op, arg=0, flags=0, payload=b"", magic=MAGIC):
    return struct.pack("<IIIIQ", magic, 0, OP[op], flags, arg) + payload


def msg(sel, body):
    return struct.pack("<H", len(body) + 1) + bytes([sel]) + body[: 0xFFFF - 1]


def m(sel, op, **kw):
    b = frame(op, **kw)
    return struct.pack("<H", len(b) + 1) + bytes([sel]) + b


def create(name, is_open=1, vchi=0, version=3, userdata=0x1234):
    return struct.pack("<IhhIIQ", fourcc(name), version, version, is_open, vchi, userdata)


def queue(handle, parts):
    p = struct.pack("<II", handle, len(parts))
    p += b"".join(struct.pack("<I", len(x)) for x in parts)
    return p + b"".join(parts)


def bulk(handle, size, mode, userdata=7, thread=1):
    return struct.pack("<IIQII", handle, size, userdata, mode, thread)


def await_(count=8, bufsize=4096, bufcount=8):
    return struct.pack("<IIII", count, bufsize, bufcount, 0)


def dequeue(handle, blocking=0, bufsize=4096):
    return struct.pack("<IIII", handle, blocking, bufsize, 0)


def echo(data):
    return struct.pack("<I", MSG_ECHO) + data


def hello():
    return m(0, "hello", payload=struct.pack("<II", 1, 0))


def opened(sel=0, name="echo", vchi=0):
    return m(sel, "connect") + m(sel, "create", payload=create(name, vchi=vchi))


seeds = {
    "hello": hello(),
    "connect_open_close": opened() + m(0, "close", arg=0) + m(0, "await_", payload=await_()),
    "connect_open_remove": opened() + m(0, "remove", arg=0),
    "echo_await": opened() + m(0, "msg", payload=queue(0, [echo(b"hello")]))
    + m(0, "await_", payload=await_()),
    "echo_posted_many": opened()
    + b"".join(m(0, "msg", flags=POSTED, payload=queue(0, [echo(bytes([i]) * i)])) for i in range(12))
    + m(0, "await_", payload=await_(count=64)),
    "echo_parts": opened() + m(0, "msg", payload=queue(0, [struct.pack("<I", MSG_ECHO), b"ab", b"", b"cdef"])),
    "vchi_dequeue": opened(vchi=1) + m(0, "msg", payload=queue(0, [echo(b"x" * 100)]))
    + m(0, "dequeue", payload=dequeue(0)) + m(0, "dequeue", flags=BATCH, payload=dequeue(0, blocking=1)),
    "bulk_inline_callback": opened() + m(0, "tx", flags=INLINE, payload=bulk(0, 16, CALLBACK) + b"q" * 16)
    + m(0, "await_", payload=await_()),
    "bulk_memfd_blocking": opened() + m(2, "tx", payload=bulk(0, 4096, BLOCKING))
    + m(2, "rx", payload=bulk(0, 4096, BLOCKING)),
    "bulk_memfd_nocallback": opened() + m(2, "rx", payload=bulk(0, 65536, NOCALLBACK))
    + m(2, "tx", flags=POSTED, payload=bulk(0, 65536, CALLBACK)),
    "bulk_waiting": opened() + m(0, "tx", payload=bulk(0, 0, WAITING)),
    "bulk_hostile_size": opened() + m(2, "tx", payload=bulk(0, 0xFFFFFFFF, CALLBACK))
    + m(2, "rx", arg=1, payload=bulk(0, 1 << 20, CALLBACK)),
    "await_cancel": opened() + m(0, "await_", payload=await_()) + m(0, "cancel", arg=2),
    "two_clients_cross": opened(0) + opened(1) + m(0, "close", arg=1) + m(1, "remove", arg=1)
    + m(0, "msg", payload=queue(1, [echo(b"not yours")])) + m(1, "client_id", arg=1)
    + m(0, "option", payload=struct.pack("<IIi", 1, 2, 10)),
    "server_add": m(0, "connect") + m(0, "create", payload=create("fzsv", is_open=0))
    + m(1, "connect") + m(1, "create", payload=create("fzsv", is_open=1)),
    "use_release": opened() + m(0, "use", arg=0) + m(0, "release", arg=0) + m(0, "release", arg=0),
    "close_delivered": opened() + m(0, "lib_version", arg=8) + m(0, "close", arg=0)
    + m(0, "await_", payload=await_()) + m(0, "close_delivered", arg=0),
    "config_shutdown": m(0, "config", arg=20) + m(0, "config", arg=0xFFFFFFFF) + m(0, "connect") + m(0, "shutdown"),
    "services_past_limit": m(0, "connect")
    + b"".join(m(0, "create", payload=create("echo")) for _ in range(10)),
    "bad_frames": msg(0, b"\x01\x02") + m(4, "connect", magic=0xDEADBEEF) + m(1, "connect", flags=0x80),
    "hangup_midway": opened() + m(8, "await_", payload=await_()) + opened(),
    "unknown_ops": msg(0, struct.pack("<IIIIQ", MAGIC, 0, 0x77, 0, 0)) + m(0, "msg", payload=b"\x00\x01\x00\x00\xff\xff\xff\xff"),
    "gencmd": m(0, "connect") + m(0, "create", payload=create("GCMD", vchi=1)) + m(0, "msg", payload=queue(0, [b"\x00\x00\x00\x00measure_temp\x00"]))
    + m(0, "dequeue", payload=dequeue(0, blocking=1)),
}

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "corpus", "socket_session")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(data)
print(f"{len(seeds)} seeds in {out}")
