"""Hash functions used by consensus: SHA-256, double SHA-256 and HASH160.

RIPEMD-160 comes from pycryptodome because hashlib's ripemd160 is missing on
OpenSSL 3 builds that drop legacy digests.
"""

from __future__ import annotations

import hashlib

from Crypto.Hash import RIPEMD160


def sha256(data: bytes) -> bytes:
    """Single SHA-256."""
    return hashlib.sha256(data).digest()


def sha256d(data: bytes) -> bytes:
    """Double SHA-256, Bitcoin's hash for txids, block hashes and checksums."""
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def ripemd160(data: bytes) -> bytes:
    """RIPEMD-160."""
    return RIPEMD160.new(data).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the public-key hash inside an address."""
    return ripemd160(sha256(data))
