"""Nonce search: the code the miner runs inside its worker processes.

A job is a 76-byte header prefix (everything but the nonce), a target and a
nonce range. SHA-256 of the prefix is computed once per job: its first 64 bytes
are compressed and the other 12 sit in the hash object's buffer, so each try
copies that state, feeds the 4 nonce bytes and finishes, then hashes the digest
again. bench/miner_bench.py measures this against hashing whole 80-byte headers.

Only the standard library is imported, so a freshly spawned worker starts fast.
"""

from __future__ import annotations

import hashlib
import os
import signal
import struct
import threading
import time
from collections.abc import Callable
from multiprocessing.sharedctypes import Synchronized

PREFIX_SIZE = 76
NONCE_LIMIT = 1 << 32
BATCH = 1 << 14  # tries between looks at the abandon flag: about 10 ms on one core

_nonce_bytes = struct.Struct("<I").pack
_epoch: Synchronized | None = None  # the miner's shared epoch, set in each worker by init_worker


def scan(
    prefix: bytes, target: int, start: int, stop: int, keep_going: Callable[[], bool] = lambda: True
) -> tuple[int | None, int]:
    """Try nonces start..stop-1 after `prefix`, asking `keep_going()` before every batch.

    Returns (the first nonce whose sha256d, read little-endian, is <= target, or
    None) and the number of nonces tried.
    """
    if len(prefix) != PREFIX_SIZE:
        raise ValueError(f"header prefix must be {PREFIX_SIZE} bytes, got {len(prefix)}")
    if not 0 <= start <= stop <= NONCE_LIMIT:
        raise ValueError(f"nonce range {start}..{stop} is not within 0..{NONCE_LIMIT}")
    sha256 = hashlib.sha256
    copy_midstate = sha256(prefix).copy
    top_byte_limit = target >> 248  # cheap first test on the hash's most significant byte
    for batch_start in range(start, stop, BATCH):
        if not keep_going():
            return None, batch_start - start
        for nonce in range(batch_start, min(batch_start + BATCH, stop)):
            inner = copy_midstate()
            inner.update(_nonce_bytes(nonce))
            digest = sha256(inner.digest()).digest()
            if digest[31] <= top_byte_limit and int.from_bytes(digest, "little") <= target:
                return nonce, nonce - start + 1
    return None, stop - start


def init_worker(epoch: Synchronized, owner_pid: int) -> None:
    """Pool initializer: remember the shared epoch; leave Ctrl-C to the daemon, which stops the pool itself.

    A worker's parent is the forkserver, not the node, so a node killed with SIGKILL would leave it
    hashing forever; a watchdog thread ends the worker once the node's process is gone.
    """
    global _epoch
    _epoch = epoch
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_when_gone, args=(owner_pid,), daemon=True, name="owner-watchdog").start()


def _exit_when_gone(pid: int, interval: float = 1.0) -> None:
    while True:
        time.sleep(interval)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)


def search_range(prefix: bytes, target: int, start: int, stop: int, epoch: int) -> tuple[int | None, int]:
    """One pool job: scan the range until a hit, the end, or the miner moving the shared epoch past `epoch`."""
    if _epoch is None:
        raise RuntimeError("search_range runs only in worker processes started with init_worker")
    shared = _epoch
    return scan(prefix, target, start, stop, lambda: shared.value == epoch)
