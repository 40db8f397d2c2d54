"""Blocks whose parent has not arrived yet, held briefly in memory.

Peers may deliver blocks out of order; keeping a few lets them connect as soon as
the parent shows up. The pool is bounded in count and age because an orphan cannot
be fully validated, so anyone can send junk that merely carries valid proof of work.
"""

from __future__ import annotations

from dataclasses import dataclass

from camelid.core.block import Block

DEFAULT_MAX_ORPHANS = 100
DEFAULT_ORPHAN_EXPIRY = 20 * 60  # seconds


@dataclass(frozen=True)
class _Orphan:
    block: Block
    received: int


class OrphanPool:
    """Orphan blocks by hash, with an index from the missing parent to its waiting children."""

    def __init__(self, max_count: int = DEFAULT_MAX_ORPHANS, expiry: int = DEFAULT_ORPHAN_EXPIRY) -> None:
        self.max_count = max_count
        self.expiry = expiry
        self._orphans: dict[bytes, _Orphan] = {}  # insertion order = arrival order

    def __len__(self) -> int:
        return len(self._orphans)

    def __contains__(self, block_hash: bytes) -> bool:
        return block_hash in self._orphans

    def add(self, block: Block, now: int) -> None:
        """Keep `block`, first dropping expired orphans and, when full, the oldest one."""
        for block_hash in [h for h, o in self._orphans.items() if now - o.received > self.expiry]:
            del self._orphans[block_hash]
        while len(self._orphans) >= self.max_count:
            del self._orphans[next(iter(self._orphans))]
        self._orphans[block.hash_bytes] = _Orphan(block, now)

    def pop_children(self, parent_hash: bytes) -> list[Block]:
        """Remove and return the orphans waiting for `parent_hash`, oldest first."""
        children = [o.block for o in self._orphans.values() if o.block.header.prev_hash == parent_hash]
        for block in children:
            del self._orphans[block.hash_bytes]
        return children
