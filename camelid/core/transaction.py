"""Transactions (whitepaper 2.3): Bitcoin's legacy layout with a 32-byte Job ID appended.

    version u32 | CompactSize n | inputs | CompactSize m | outputs | lock_time u32 | job_id[32]
    input  = prev_txid[32] | prev_index u32 | var_bytes script_sig | sequence u32
    output = value i64 | var_bytes script_pubkey

Integers are little-endian and hashes are in internal byte order; txid() prints
them reversed, as Bitcoin does. The Job ID is zero for ordinary payments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

from camelid.core.consensus import SEQUENCE_FINAL
from camelid.core.serialize import ByteReader, compact_size, hash_to_hex, var_bytes
from camelid.crypto.hashes import sha256d

NULL_HASH = bytes(32)
NULL_INDEX = 0xFFFFFFFF
SIGHASH_ALL = 0x01
_MIN_TXIN_SIZE = 32 + 4 + 1 + 4
_MIN_TXOUT_SIZE = 8 + 1


@dataclass(frozen=True, slots=True)
class OutPoint:
    """A reference to one output of an earlier transaction."""

    txid: bytes  # internal byte order
    index: int

    def to_bytes(self) -> bytes:
        return self.txid + self.index.to_bytes(4, "little")

    def __str__(self) -> str:
        return f"{hash_to_hex(self.txid)}:{self.index}"


@dataclass(frozen=True, slots=True)
class TxIn:
    prev_txid: bytes
    prev_index: int
    script_sig: bytes = b""
    sequence: int = SEQUENCE_FINAL

    @property
    def prevout(self) -> OutPoint:
        return OutPoint(self.prev_txid, self.prev_index)

    def to_bytes(self) -> bytes:
        return (
            self.prev_txid
            + self.prev_index.to_bytes(4, "little")
            + var_bytes(self.script_sig)
            + self.sequence.to_bytes(4, "little")
        )

    @classmethod
    def read(cls, r: ByteReader) -> TxIn:
        return cls(r.read(32, "input txid"), r.u32("input index"), r.var_bytes("scriptSig"), r.u32("sequence"))


@dataclass(frozen=True, slots=True)
class TxOut:
    value: int
    script_pubkey: bytes

    def to_bytes(self) -> bytes:
        return self.value.to_bytes(8, "little", signed=True) + var_bytes(self.script_pubkey)

    @classmethod
    def read(cls, r: ByteReader) -> TxOut:
        return cls(r.i64("output value"), r.var_bytes("scriptPubKey"))


@dataclass(frozen=True)
class Transaction:
    version: int = 1
    inputs: tuple[TxIn, ...] = ()
    outputs: tuple[TxOut, ...] = ()
    lock_time: int = 0
    job_id: bytes = NULL_HASH

    def __post_init__(self) -> None:
        # Accept lists for convenience but store tuples so the object stays hashable and immutable.
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        if len(self.job_id) != 32:
            raise ValueError(f"job_id must be 32 bytes, got {len(self.job_id)}")

    @cached_property
    def _raw(self) -> bytes:
        return self._serialize(self.inputs)

    def to_bytes(self) -> bytes:
        return self._raw

    def _serialize(self, inputs: tuple[TxIn, ...]) -> bytes:
        parts = [self.version.to_bytes(4, "little"), compact_size(len(inputs))]
        parts += [i.to_bytes() for i in inputs]
        parts.append(compact_size(len(self.outputs)))
        parts += [o.to_bytes() for o in self.outputs]
        parts += [self.lock_time.to_bytes(4, "little"), self.job_id]
        return b"".join(parts)

    @classmethod
    def read(cls, r: ByteReader) -> Transaction:
        start = r.position
        version = r.u32("version")
        inputs = tuple(TxIn.read(r) for _ in range(r.count("input", _MIN_TXIN_SIZE)))
        outputs = tuple(TxOut.read(r) for _ in range(r.count("output", _MIN_TXOUT_SIZE)))
        tx = cls(version, inputs, outputs, r.u32("lock_time"), r.read(32, "job id"))
        # Keep the decoded bytes: hashing a block off the wire then needs no re-serialization.
        tx.__dict__["_raw"] = r.since(start)
        return tx

    @classmethod
    def from_bytes(cls, data: bytes) -> Transaction:
        """Decode exactly one transaction; ValueError on truncation, trailing bytes or absurd counts."""
        r = ByteReader(data)
        tx = cls.read(r)
        r.finish("transaction")
        return tx

    @cached_property
    def hash(self) -> bytes:
        """sha256d of the serialization, internal byte order."""
        return sha256d(self.to_bytes())

    def txid(self) -> str:
        """Display form of the hash (reversed hex), as Bitcoin prints txids."""
        return hash_to_hex(self.hash)

    @property
    def size(self) -> int:
        return len(self.to_bytes())

    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0].prev_txid == NULL_HASH and (
            self.inputs[0].prev_index == NULL_INDEX
        )

    def is_job_payment(self) -> bool:
        return self.job_id != NULL_HASH

    def signature_hash(self, index: int, script_code: bytes, amount: int, hash_type: int = SIGHASH_ALL) -> bytes:
        """Digest an input's signature commits to (SIGHASH_ALL only).

        Bitcoin's legacy algorithm -- every scriptSig emptied except input `index`, which
        carries script_code -- over the whole transaction, Job ID included, followed by the
        value of the output being spent (as BIP143 does, so an offline signer knows the fee)
        and the 4-byte hash type.
        """
        if hash_type != SIGHASH_ALL:
            raise ValueError(f"unsupported sighash type {hash_type:#x}; only SIGHASH_ALL exists")
        if not 0 <= index < len(self.inputs):
            raise ValueError(f"input index {index} out of range for {len(self.inputs)} inputs")
        inputs = tuple(
            replace(txin, script_sig=script_code if i == index else b"") for i, txin in enumerate(self.inputs)
        )
        preimage = self._serialize(inputs) + amount.to_bytes(8, "little", signed=True)
        return sha256d(preimage + hash_type.to_bytes(4, "little"))
