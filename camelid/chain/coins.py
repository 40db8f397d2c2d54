"""Unspent transaction outputs ("coins") and a write-back view of the UTXO set.

A block or a whole reorganisation is applied to a `CoinsView` in memory first;
only when every block has validated are the changes put into one write batch, so
an invalid block never leaves half its spends on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

from camelid.chain.layout import coin_key
from camelid.chain.storage import KeyValueStore, WriteBatch
from camelid.core.serialize import ByteReader, var_bytes
from camelid.core.transaction import OutPoint, TxOut


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output with what consensus needs to know about where it came from."""

    tx_out: TxOut
    height: int  # height of the block that created it
    is_coinbase: bool  # coinbase outputs mature only after params.coinbase_maturity blocks

    def to_bytes(self) -> bytes:
        return (
            self.height.to_bytes(4, "little")
            + (b"\x01" if self.is_coinbase else b"\x00")
            + self.tx_out.value.to_bytes(8, "little", signed=True)
            + var_bytes(self.tx_out.script_pubkey)
        )

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
        r = ByteReader(data)
        coin = cls.read(r)
        r.finish("coin")
        return coin


class CoinsView:
    """The UTXO set as stored plus pending additions and spends kept in memory."""

    def __init__(self, store: KeyValueStore) -> None:
        self._store = store
        self._changes: dict[OutPoint, Coin | None] = {}

    def get(self, outpoint: OutPoint) -> Coin | None:
        if outpoint in self._changes:
            return self._changes[outpoint]
        raw = self._store.get(coin_key(outpoint))
        return Coin.from_bytes(raw) if raw is not None else None

    def add(self, outpoint: OutPoint, coin: Coin) -> None:
        self._changes[outpoint] = coin

    def spend(self, outpoint: OutPoint) -> None:
        """Mark the coin spent (callers have already fetched and checked it)."""
        self._changes[outpoint] = None

    def write_to(self, batch: WriteBatch) -> None:
        """Stage the accumulated changes into `batch` (the caller writes it)."""
        for outpoint, coin in self._changes.items():
            if coin is None:
                batch.delete(coin_key(outpoint))
            else:
                batch.put(coin_key(outpoint), coin.to_bytes())
