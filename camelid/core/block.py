"""Block headers (Bitcoin's 80-byte layout) and blocks.

    header = version u32 | prev_hash[32] | merkle_root[32] | time u32 | bits u32 | nonce u32
    block  = header | CompactSize n | n transactions

The header hash is sha256d of the 80 bytes; proof of work holds when that hash,
read as a little-endian integer, is at most the target encoded in bits.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from camelid.core.pow import bits_to_target, hash_meets_target
from camelid.core.serialize import ByteReader, compact_size, hash_to_hex
from camelid.core.transaction import Transaction
from camelid.crypto.hashes import sha256d
from camelid.crypto.merkle import merkle_root

HEADER_SIZE = 80
_MIN_TX_SIZE = 4 + 1 + 1 + 4 + 32  # version, two empty counts, lock_time, job id


@dataclass(frozen=True)
class BlockHeader:
    version: int
    prev_hash: bytes  # internal byte order
    merkle_root: bytes
    time: int
    bits: int
    nonce: int

    def to_bytes(self) -> bytes:
        return (
            self.version.to_bytes(4, "little")
            + self.prev_hash
            + self.merkle_root
            + self.time.to_bytes(4, "little")
            + self.bits.to_bytes(4, "little")
            + self.nonce.to_bytes(4, "little")
        )

    @classmethod
    def read(cls, r: ByteReader) -> BlockHeader:
        return cls(
            r.u32("header version"),
            r.read(32, "previous block hash"),
            r.read(32, "merkle root"),
            r.u32("header time"),
            r.u32("header bits"),
            r.u32("header nonce"),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> BlockHeader:
        if len(data) != HEADER_SIZE:
            raise ValueError(f"block header must be {HEADER_SIZE} bytes, got {len(data)}")
        return cls.read(ByteReader(data))

    @cached_property
    def hash_bytes(self) -> bytes:
        """sha256d of the header, internal byte order."""
        return sha256d(self.to_bytes())

    def hash(self) -> str:
        """Display form (reversed hex), as Bitcoin prints block hashes."""
        return hash_to_hex(self.hash_bytes)

    @property
    def target(self) -> int:
        return bits_to_target(self.bits)

    def check_pow(self, pow_limit: int) -> bool:
        """True when the bits are a valid target within pow_limit and the hash meets it."""
        try:
            target = self.target
        except ValueError:
            return False
        return 0 < target <= pow_limit and hash_meets_target(self.hash_bytes, target)

    def with_nonce(self, nonce: int) -> BlockHeader:
        return replace(self, nonce=nonce)


@dataclass(frozen=True)
class Block:
    header: BlockHeader
    transactions: tuple[Transaction, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "transactions", tuple(self.transactions))

    @cached_property
    def _raw(self) -> bytes:
        parts = [self.header.to_bytes(), compact_size(len(self.transactions))]
        parts += [tx.to_bytes() for tx in self.transactions]
        return b"".join(parts)

    def to_bytes(self) -> bytes:
        return self._raw

    @classmethod
    def from_bytes(cls, data: bytes) -> Block:
        """Decode exactly one block; ValueError on truncation, trailing bytes or absurd counts."""
        r = ByteReader(data)
        header = BlockHeader.read(r)
        txs = tuple(Transaction.read(r) for _ in range(r.count("transaction", _MIN_TX_SIZE)))
        r.finish("block")
        return cls(header, txs)

    @property
    def hash_bytes(self) -> bytes:
        return self.header.hash_bytes

    def hash(self) -> str:
        return self.header.hash()

    @property
    def size(self) -> int:
        return len(self._raw)

    def compute_merkle_root(self) -> bytes:
        return merkle_root([tx.hash for tx in self.transactions])
