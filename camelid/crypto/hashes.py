"""Hash functions used by consensus: SHA-256, double SHA-256 and HASH160.

RIPEMD-160 comes from OpenSSL through hashlib where the build still offers it
(about 4x faster: it sits on the block-validation hot path) and from pycryptodome
where OpenSSL 3 dropped legacy digests; both give the same bytes.
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


def _openssl_ripemd160_available() -> bool:
    try:
        hashlib.new("ripemd160", b"")
    except ValueError:
        return False
    return True


if _openssl_ripemd160_available():
    _RIPEMD160 = hashlib.new("ripemd160")  # copied, never updated: copy() skips hashlib.new's name lookup

    def ripemd160(data: bytes) -> bytes:
        """RIPEMD-160 (OpenSSL)."""
        hasher = _RIPEMD160.copy()
        hasher.update(data)
        return hasher.digest()

else:

    def ripemd160(data: bytes) -> bytes:
        """RIPEMD-160 (pycryptodome; this OpenSSL has no legacy digests)."""
        return RIPEMD160.new(data).digest()


def hash160(data: bytes) -> bytes:
    """RIPEMD-160 of SHA-256: the public-key hash inside an address."""
    return ripemd160(sha256(data))
