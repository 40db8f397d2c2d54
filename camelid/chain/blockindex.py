"""The block index: every stored block's header, height, cumulative work and validity, plus the active chain.

Entries link to their parent in memory, so ancestors, fork points, median time
past and locators are pointer walks; the active chain is a height-indexed list,
so lookups on it are O(1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntFlag

from camelid.core.block import BlockHeader
from camelid.core.consensus import MEDIAN_TIME_SPAN
from camelid.core.serialize import ByteReader

_CHAINWORK_SIZE = 32


class BlockStatus(IntFlag):
    """Validity flags of a stored block."""

    NONE = 0
    VALID = 1  # connected at least once: every consensus rule, scripts included, passed
    FAILED = 2  # the block itself broke a rule
    FAILED_CHILD = 4  # an ancestor broke a rule

    @property
    def failed(self) -> bool:
        return bool(self & (BlockStatus.FAILED | BlockStatus.FAILED_CHILD))


@dataclass(eq=False)
class BlockIndexEntry:
    """One block known to the node. Identity comparison: there is one entry object per block."""

    header: BlockHeader
    height: int
    chainwork: int  # total expected hashes from genesis up to and including this block
    status: BlockStatus = BlockStatus.NONE
    prev: BlockIndexEntry | None = field(default=None, repr=False)
    sequence: int = 0  # arrival order this session; the earlier of two equal-work tips wins

    @property
    def hash(self) -> bytes:
        return self.header.hash_bytes

    def to_bytes(self) -> bytes:
        return (
            self.header.to_bytes()
            + self.height.to_bytes(4, "little")
            + self.chainwork.to_bytes(_CHAINWORK_SIZE, "big")
            + bytes([self.status])
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockIndexEntry:
        """Decode a stored entry; the parent link is set by the index when all entries are loaded."""
        r = ByteReader(data)
        header = BlockHeader.read(r)
        height = r.u32("index height")
        chainwork = int.from_bytes(r.read(_CHAINWORK_SIZE, "chainwork"), "big")
        status = BlockStatus(r.u8("index status"))
        r.finish("block index entry")
        return cls(header, height, chainwork, status)


class BlockIndex:
    """All entries by hash, and the active chain from genesis to the tip."""

    def __init__(self) -> None:
        self._entries: dict[bytes, BlockIndexEntry] = {}
        self._active: list[BlockIndexEntry] = []
        self._next_sequence = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[BlockIndexEntry]:
        return iter(self._entries.values())

    def get(self, block_hash: bytes) -> BlockIndexEntry | None:
        return self._entries.get(block_hash)

    def add(self, entry: BlockIndexEntry) -> None:
        entry.sequence = self._next_sequence
        self._next_sequence += 1
        self._entries[entry.hash] = entry

    def link_parents(self) -> None:
        """After loading stored entries: point each at its parent (the genesis entry has none)."""
        for entry in self._entries.values():
            if entry.height > 0:
                entry.prev = self._entries.get(entry.header.prev_hash)
                if entry.prev is None:
                    raise ValueError(f"block index entry at height {entry.height} has no stored parent")

    @property
    def tip(self) -> BlockIndexEntry:
        return self._active[-1]

    def at_height(self, height: int) -> BlockIndexEntry | None:
        """The active chain's entry at `height`."""
        return self._active[height] if 0 <= height < len(self._active) else None

    def is_active(self, entry: BlockIndexEntry) -> bool:
        return self.at_height(entry.height) is entry

    def set_tip(self, entry: BlockIndexEntry) -> None:
        """Make the chain ending at `entry` active, rewriting only the part above the fork."""
        branch = []
        walk: BlockIndexEntry | None = entry
        while walk is not None and not self.is_active(walk):
            branch.append(walk)
            walk = walk.prev
        del self._active[(walk.height + 1 if walk is not None else 0) :]
        self._active.extend(reversed(branch))

    def ancestor(self, entry: BlockIndexEntry, height: int) -> BlockIndexEntry:
        """The ancestor of `entry` at `height` (<= entry.height)."""
        if not 0 <= height <= entry.height:
            raise ValueError(f"no ancestor at height {height} for a block at height {entry.height}")
        walk = entry
        while walk.height > height:
            if self.is_active(walk):
                return self._active[height]
            assert walk.prev is not None
            walk = walk.prev
        return walk

    def fork_point(self, a: BlockIndexEntry, b: BlockIndexEntry) -> BlockIndexEntry:
        """The last block the chains ending at `a` and `b` share."""
        if a.height > b.height:
            a = self.ancestor(a, b.height)
        elif b.height > a.height:
            b = self.ancestor(b, a.height)
        while a is not b:
            assert a.prev is not None and b.prev is not None
            a, b = a.prev, b.prev
        return a

    def median_time_past(self, entry: BlockIndexEntry) -> int:
        """Median of the times of `entry` and up to 10 blocks before it (BIP113)."""
        times = []
        walk: BlockIndexEntry | None = entry
        while walk is not None and len(times) < MEDIAN_TIME_SPAN:
            times.append(walk.header.time)
            walk = walk.prev
        times.sort()
        return times[len(times) // 2]

    def locator(self) -> list[bytes]:
        """Active-chain hashes from the tip back: one apart at first, then doubling gaps, ending at genesis.

        The same walk as Bitcoin Core's, so a peer finds the fork point in one round trip.
        """
        hashes = []
        height, step = self.tip.height, 1
        while True:
            hashes.append(self._active[height].hash)
            if height == 0:
                return hashes
            height = max(height - step, 0)
            if len(hashes) > 10:
                step *= 2
