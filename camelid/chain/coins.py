"""Unspent transaction outputs ("coins") and a write-back view of the UTXO set.

A block or a whole reorganisation is applied to a `CoinsView` in memory first;
only when every block has validated are the changes put into one write batch, so
an invalid block never leaves half its spends on disk.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from camelid.chain.layout import coin_key
from camelid.chain.storage import KeyValueStore, WriteBatch
from camelid.core.serialize import ByteReader, var_bytes
from camelid.core.transaction import OutPoint, TxOut

_HEAD = struct.Struct("<IBq")  # height, flags, value
_SCRIPT_AT = _HEAD.size + 1  # after the script's one-byte length
_UNCHANGED = object()


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output with what consensus needs to know about where it came from."""

    tx_out: TxOut
    height: int  # height of the block that created it
    is_coinbase: bool  # coinbase outputs mature only after params.coinbase_maturity blocks

    def to_bytes(self) -> bytes:
        return _HEAD.pack(self.height, self.is_coinbase, self.tx_out.value) + var_bytes(self.tx_out.script_pubkey)

    @classmethod
    def read(cls, r: ByteReader) -> Coin:
        height = r.u32("coin height")
        flag = r.u8("coin flags")
        if flag > 1:
            raise ValueError(f"coin flags {flag:#x} are not 0 or 1")
        value = r.i64("coin value")
        return cls(TxOut(value, r.var_bytes("coin script")), height, flag == 1)

    @classmethod
    def from_bytes(cls, data: bytes) -> Coin:
        # Every block input reads one coin: the usual record (a script under 253 bytes) skips the reader.
        if len(data) >= _SCRIPT_AT and data[_SCRIPT_AT - 1] < 0xFD and len(data) == _SCRIPT_AT + data[_SCRIPT_AT - 1]:
            height, flag, value = _HEAD.unpack_from(data)
            if flag <= 1:
                return cls(TxOut(value, data[_SCRIPT_AT:]), height, flag == 1)
        r = ByteReader(data)
        coin = cls.read(r)
        r.finish("coin")
        return coin


class CoinsView:
    """The UTXO set as stored plus pending additions and spends kept in memory."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store
        self._changes: dict[bytes, Coin | None] = {}  # by coin_key: bytes hash in C, and the store needs the key

    def get(self, outpoint: OutPoint) -> Coin | None:
        key = coin_key(outpoint)
        coin = self._changes.get(key, _UNCHANGED)
        if coin is not _UNCHANGED:
            return coin
        raw = self._store.get(key)
        return Coin.from_bytes(raw) if raw is not None else None

    def add(self, outpoint: OutPoint, coin: Coin) -> None:
        self._changes[coin_key(outpoint)] = coin

    def spend(self, outpoint: OutPoint) -> None:
        """Mark the coin spent (callers have already fetched and checked it)."""
        self._changes[coin_key(outpoint)] = None

    def write_to(self, batch: WriteBatch) -> None:
        """Stage the accumulated changes into `batch` (the caller writes it)."""
        for key, coin in self._changes.items():
            if coin is None:
                batch.delete(key)
            else:
                batch.put(key, coin.to_bytes())
