"""Key-value storage behind the chain state: one small interface, LevelDB underneath.

Chain code talks only to `KeyValueStore`, so the engine can be swapped (or faked
by an in-memory store elsewhere) without touching consensus code; ElectrumX keeps
the same seam. Atomicity is the one property the chain state relies on: a
`WriteBatch` lands completely or not at all, and with sync=True it is on disk
before `write` returns, so a node killed at any instant restarts consistent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

import plyvel


class StorageError(RuntimeError):
    """The database could not be opened or used."""


class WriteBatch:
    """Puts and deletes collected in memory and applied atomically by `KeyValueStore.write`.

    A later operation on the same key replaces an earlier one, so callers can stage
    "delete then put" without caring about order.
    """

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: dict[bytes, bytes | None] = {}

    def put(self, key: bytes, value: bytes) -> None:
        self.ops[key] = value

    def delete(self, key: bytes) -> None:
        self.ops[key] = None

    def __len__(self) -> int:
        return len(self.ops)


class KeyValueStore(ABC):
    """Ordered byte-string keys to byte-string values."""

    @abstractmethod
    def get(self, key: bytes) -> bytes | None: ...

    @abstractmethod
    def put(self, key: bytes, value: bytes, sync: bool = False) -> None: ...

    @abstractmethod
    def delete(self, key: bytes, sync: bool = False) -> None: ...

    @abstractmethod
    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix`, in ascending key order."""

    @abstractmethod
    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        """Apply every operation of `batch` atomically; with sync, durably before returning."""

    @abstractmethod
    def close(self) -> None: ...


class LevelDBStore(KeyValueStore):
    """LevelDB through plyvel; the directory's LOCK file keeps a second process out."""

    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        try:
            self._db = plyvel.DB(str(path), create_if_missing=True)
        except plyvel.IOError as exc:
            if "lock" in str(exc).lower():
                raise StorageError(
                    f"cannot lock the database at {path}: is another camelidd running on this datadir?"
                ) from exc
            raise StorageError(f"cannot open the database at {path}: {exc}") from exc
        except plyvel.Error as exc:
            raise StorageError(f"cannot open the database at {path}: {exc}") from exc

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def put(self, key: bytes, value: bytes, sync: bool = False) -> None:
        self._db.put(key, value, sync=sync)

    def delete(self, key: bytes, sync: bool = False) -> None:
        self._db.delete(key, sync=sync)

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._db.iterator(prefix=prefix) as it:
            yield from it

    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        with self._db.write_batch(sync=sync) as wb:
            for key, value in batch.ops.items():
                if value is None:
                    wb.delete(key)
                else:
                    wb.put(key, value)

    def close(self) -> None:
        self._db.close()
