"""Signature checks of a block spread over several threads, as Bitcoin Core's CCheckQueue does.

While the chain thread walks a block (UTXO lookups, sighashes, the interpreter for
anything non-standard), the ECDSA verifications of its standard inputs queue up here
in chunks, and worker threads run them: libsecp256k1 releases the GIL, so they use
the other cores. At the end the chain thread takes back every chunk no worker has
started and runs it itself, then reads the results in queue order.

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
"""Checks handed to a worker at once: enough to make a hand-off cheap beside the verifications."""


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
        self.threads = threads
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
        self._chunk: list[SignatureCheck] = []
        self._chunks: list[list[SignatureCheck]] = []
        self._results: list[Future[list[int]] | list[int]] = []
        self._tags: list[T] = []

    def add(self, check: SignatureCheck, tag: T) -> None:
        self._chunk.append(check)
        self._tags.append(tag)
        if len(self._chunk) == CHUNK_SIZE:
            self._hand_off()

    def _hand_off(self) -> None:
        chunk, self._chunk = self._chunk, []
        self._chunks.append(chunk)
        self._results.append(self._pool.submit(_failed, chunk) if self._pool is not None else _failed(chunk))

    def failures(self) -> Iterator[T]:
        """Wait for every check queued so far and yield the tags of those that failed, in queue order."""
        if self._chunk:
            self._chunks.append(self._chunk)
            self._results.append(_failed(self._chunk))
            self._chunk = []
        for index in reversed(range(len(self._results))):  # the workers take chunks from the front
            result = self._results[index]
            if isinstance(result, Future) and result.cancel():
                self._results[index] = _failed(self._chunks[index])
        for index, result in enumerate(self._results):
            for position in result.result() if isinstance(result, Future) else result:
                yield self._tags[index * CHUNK_SIZE + position]
