"""Bitcoin-style Merkle root over 32-byte hashes.

Shared by block headers (root of txids) and model ids (root of chunk hashes).
An odd level duplicates its last hash, exactly as Bitcoin does.
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
