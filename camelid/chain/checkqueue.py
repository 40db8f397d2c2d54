"""Signature checks of a block spread over several threads, as Bitcoin Core's CCheckQueue does.

The chain thread walks a block (UTXO look-ups, sighashes, the interpreter for anything
non-standard) and queues the ECDSA verification of each standard input here. When the
walk is done, worker threads and the chain thread verify the queue in chunks, the
workers from the front and the chain thread from the back: libsecp256k1 releases the
GIL, so they use several cores. Unlike Core, no worker starts during the walk: with
the GIL, a worker would take it from the chain thread at each of its C calls, and the
walk is the longer part.

Only whether each check passed comes back, in the order the checks were queued, so
the caller can pick the first failure in block order whatever the number of threads:
a block is valid or invalid for the same reason on any machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Generic, TypeVar

from camelid.core.sigchecker import SignatureCheck
from camelid.crypto.keys import verify_signature

T = TypeVar("T")

CHUNK_SIZE = 16
"""Checks a thread takes at once: enough to make a hand-off cheap beside the verifications."""


def _failed(chunk: list[SignatureCheck]) -> list[int]:
    """Positions in `chunk` of the checks that fail (SignatureCheck.verify, with the least Python:
    a worker needs the GIL for every bytecode between its C calls)."""
    return [
        position
        for position, (pubkey, signature, digest) in enumerate(chunk)
        if not verify_signature(pubkey, signature, digest)
    ]


class CheckQueue:
    """`threads` threads verify signatures: the caller's and threads - 1 workers, started on first use."""

    def __init__(self, threads: int = 1) -> None:
        if threads < 1:
            raise ValueError(f"script check threads must be at least 1, got {threads}")
        self._pool = ThreadPoolExecutor(threads - 1, "scriptcheck") if threads > 1 else None

    def session(self) -> CheckSession[T]:
        """A fresh queue for one block's checks."""
        return CheckSession(self._pool)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class CheckSession(Generic[T]):
    """The checks of one block, each with a tag (whatever the caller needs to re-judge it) that
    `failures` hands back for the checks that failed."""

    def __init__(self, pool: ThreadPoolExecutor | None) -> None:
        self._pool = pool
        self._checks: list[SignatureCheck] = []
        self._tags: list[T] = []

    def add(self, check: SignatureCheck, tag: T) -> None:
        self._checks.append(check)
        self._tags.append(tag)

    def failures(self) -> Iterator[T]:
        """Verify every check queued so far and yield the tags of those that failed, in queue order."""
        checks, self._checks = self._checks, []
        tags, self._tags = self._tags, []
        chunks = [checks[start : start + CHUNK_SIZE] for start in range(0, len(checks), CHUNK_SIZE)]
        results: list[Future[list[int]] | list[int]]
        if self._pool is None or len(chunks) < 2:
            results = [_failed(chunk) for chunk in chunks]
        else:
            results = [self._pool.submit(_failed, chunk) for chunk in chunks]
            for index in reversed(range(len(chunks))):  # take back what no worker has started, from the back
                result = results[index]
                if isinstance(result, Future) and result.cancel():
                    results[index] = _failed(chunks[index])
        for index, result in enumerate(results):
            for position in result.result() if isinstance(result, Future) else result:
                yield tags[index * CHUNK_SIZE + position]
