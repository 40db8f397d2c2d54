"""The storage seam: LevelDB behind KeyValueStore, atomic batches, prefix iteration, the datadir lock, coin records."""

from __future__ import annotations

from pathlib import Path

import pytest

from camelid.chain.coins import Coin
from camelid.chain.storage import LevelDBStore, StorageError, WriteBatch
from camelid.core.transaction import TxOut


@pytest.fixture
def store(tmp_path: Path) -> LevelDBStore:
    db = LevelDBStore(tmp_path / "db")
    yield db
    db.close()


def test_get_put_delete(store: LevelDBStore) -> None:
    assert store.get(b"k") is None
    store.put(b"k", b"v", sync=True)
    assert store.get(b"k") == b"v"
    store.delete(b"k")
    assert store.get(b"k") is None


def test_iterate_returns_only_the_prefix_in_key_order(store: LevelDBStore) -> None:
    for key in (b"b2", b"a1", b"b1", b"c1", b"b\xff"):
        store.put(key, key.upper())
    assert list(store.iterate(b"b")) == [(b"b1", b"B1"), (b"b2", b"B2"), (b"b\xff", b"B\xff")]


def test_batch_applies_the_last_operation_per_key(store: LevelDBStore) -> None:
    store.put(b"old", b"1")
    batch = WriteBatch()
    batch.put(b"new", b"2")
    batch.delete(b"old")
    batch.delete(b"new")
    batch.put(b"new", b"3")
    assert len(batch) == 2
    store.write(batch, sync=True)
    assert store.get(b"old") is None
    assert store.get(b"new") == b"3"


def test_data_survives_reopen(tmp_path: Path) -> None:
    db = LevelDBStore(tmp_path / "db")
    batch = WriteBatch()
    batch.put(b"x", b"y")
    db.write(batch, sync=True)
    db.close()
    db = LevelDBStore(tmp_path / "db")
    assert db.get(b"x") == b"y"
    db.close()


def test_second_opener_gets_a_clear_error(store: LevelDBStore, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is another camelidd running on this datadir"):
        LevelDBStore(tmp_path / "db")



@pytest.mark.parametrize("script_size", [0, 1, 25, 252, 253, 300, 70_000])
@pytest.mark.parametrize("is_coinbase", [False, True])
def test_coin_records_round_trip_whichever_decoder_reads_them(script_size: int, is_coinbase: bool) -> None:
    coin = Coin(TxOut(-1 if script_size == 1 else 5_000_000_000, bytes([7]) * script_size), 654_321, is_coinbase)
    assert Coin.from_bytes(coin.to_bytes()) == coin


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw[:4] + b"\x02" + raw[5:], "coin flags 0x2"),
        (lambda raw: raw[:-1], "truncated"),
        (lambda raw: raw + b"\x00", "trailing"),
        (lambda raw: raw[:13] + b"\xfd\x19\x00" + raw[14:], "non-canonical"),
    ],
)
def test_malformed_coin_records_are_refused_with_a_reason(mutate, message: str) -> None:
    raw = Coin(TxOut(1, bytes(25)), 1, False).to_bytes()
    with pytest.raises(ValueError, match=message):
        Coin.from_bytes(mutate(raw))
