"""Undo data: the coins a block spent, so that disconnecting it can put them back exactly."""

from __future__ import annotations

from camelid.chain.coins import Coin
from camelid.core.serialize import ByteReader, compact_size

_MIN_COIN_SIZE = 4 + 1 + 8 + 1


def encode_undo(spent: list[Coin]) -> bytes:
    """Spent coins in the order the block spent them (transaction order, then input order)."""
    return compact_size(len(spent)) + b"".join(coin.to_bytes() for coin in spent)


def decode_undo(data: bytes) -> list[Coin]:
    r = ByteReader(data)
    spent = [Coin.read(r) for _ in range(r.count("undo coin", _MIN_COIN_SIZE))]
    r.finish("undo data")
    return spent
