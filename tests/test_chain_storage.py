"""The storage seam: LevelDB behind KeyValueStore, atomic batches, prefix iteration and the datadir lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from camelid.chain.storage import LevelDBStore, StorageError, WriteBatch


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

