"""Bitcoin-style Merkle root over 32-byte hashes.

The root of a block's txids. An odd level duplicates its last hash, exactly as
Bitcoin does; that lets [a, b, c] and [a, b, c, c] share a root (CVE-2012-2459),
which block validation defeats by refusing duplicate transactions. Model ids and
checkpoint traces use a tree without the duplication (chunk_root), whose node
(level d, index j) over L leaves covers leaves [j 2^d, min((j + 1) 2^d, L)):
the dispute game's descent walks it (camelid.core.jobgame).
"""

from __future__ import annotations

from collections.abc import Sequence

from camelid.crypto.hashes import sha256d


def merkle_root(hashes: Sequence[bytes]) -> bytes:
    """Root of `hashes` (internal byte order); 32 zero bytes for an empty list."""
    if not hashes:
        return bytes(32)
    level = list(hashes)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def chunk_root(hashes: Sequence[bytes]) -> bytes:
    """Merkle root of chunk hashes, an odd level's last node carried up unchanged; 32 zero bytes for none."""
    if not hashes:
        return bytes(32)
    level = list(hashes)
    while len(level) > 1:
        level = _chunk_parents(level)
    return level[0]


def chunk_level(hashes: Sequence[bytes], depth: int) -> list[bytes]:
    """The nodes at level `depth` of chunk_root's tree over `hashes` (level 0: the hashes themselves)."""
    level = list(hashes)
    for _ in range(depth):
        level = _chunk_parents(level) if len(level) > 1 else level
    return level


def _chunk_parents(level: list[bytes]) -> list[bytes]:
    paired = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
    return paired + level[-1:] if len(level) % 2 else paired
