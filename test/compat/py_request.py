# A request program in Python (CPython from Debian, dynamically linked, through the read-only
# view): the farcall ABI's two calls made with ctypes (guest-sdk/include/farcall_abi.h). Before
# farcall_ready() it imports json and hashlib; each request is a JSON document, the answer the
# SHA-256 of its "text", its keys, and what the request found in the program's state and in the
# scratch directory (both reset with the fork: the same every time).
import ctypes
import hashlib
import json
import os
import sys

FARCALL_SYS_READY, FARCALL_SYS_RESPOND = 0x4600, 0x4601
libc = ctypes.CDLL(None)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
arena = ctypes.create_string_buffer(1 << 20)
current = (ctypes.c_uint64 * 2)()  # what the VMM fills for each request: buf, len
state = {"requests": 0}


def answer(doc, tmp="/tmp"):
    state["requests"] += 1
    seen = os.listdir(tmp)
    with open(os.path.join(tmp, "mark"), "w") as f:  # gone after the request
        f.write(doc["text"])
    return {"sha256": hashlib.sha256(doc["text"].encode()).hexdigest(), "md5": hashlib.md5(doc["text"].encode()).hexdigest(),
            "keys": sorted(doc), "requests": state["requests"], "tmp_before": seen}


if len(sys.argv) > 1 and sys.argv[1] == "native":  # natively, for the test: native DOCUMENT EMPTY_DIR
    sys.stdout.write(json.dumps(answer(json.loads(sys.argv[2]), sys.argv[3]), sort_keys=True))
    sys.exit(0)

libc.syscall(FARCALL_SYS_READY, ctypes.addressof(arena), len(arena), ctypes.addressof(current))
request = ctypes.string_at(current[0], current[1])
out = json.dumps(answer(json.loads(request)), sort_keys=True).encode()
buf = ctypes.create_string_buffer(out, len(out))
libc.syscall(FARCALL_SYS_RESPOND, ctypes.addressof(buf), len(out), None)
