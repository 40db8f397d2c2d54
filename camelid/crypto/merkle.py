"""Bitcoin-style Merkle root over 32-byte hashes.

The root of a block's txids. An odd level duplicates its last hash, exactly as
Bitcoin does; that lets [a, b, c] and [a, b, c, c] share a root (CVE-2012-2459),
which block validation defeats by refusing duplicate transactions. Model ids use
a tree without the duplication (camelid.compute.model_id.chunk_root).
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
