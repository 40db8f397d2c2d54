"""The mempool kept across a restart (Bitcoin Core's mempool.dat): written at shutdown, read back at start-up.

A restarted node would otherwise forget every unconfirmed transaction it held: a miner its fees, a relay
what it could serve, a compute node the escrows and payments of the jobs it is about to take. Only the
transactions and their arrival times are kept; each is validated again as it is read back, so the file
needs no trust, only a format: a magic, a version, a count, the entries parents first, and a SHA-256 of
everything before it, so that a torn or edited file is refused as a whole with the problem named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from camelid.atomicfile import write_atomically
from camelid.core.serialize import ByteReader, compact_size, var_bytes
from camelid.core.transaction import Transaction
from camelid.crypto.hashes import sha256

MEMPOOL_FILENAME = "mempool.dat"
MAGIC = b"camelid-mempool\x00"
VERSION = 1
_CHECKSUM_SIZE = 32
_MIN_ENTRY_SIZE = 8 + 1 + 10  # time, length, the smallest transaction


class MempoolFileError(ValueError):
    """The file is not a mempool this node wrote: the message names what is wrong."""


@dataclass(frozen=True)
class SavedTx:
    tx: Transaction
    time: int  # when it entered the mempool that saved it


def encode(saved: Iterable[SavedTx]) -> bytes:
    entries = list(saved)
    parts = [MAGIC, VERSION.to_bytes(4, "little"), compact_size(len(entries))]
    for entry in entries:
        parts.append(entry.time.to_bytes(8, "little"))
        parts.append(var_bytes(entry.tx.to_bytes()))
    body = b"".join(parts)
    return body + sha256(body)


def decode(data: bytes) -> list[SavedTx]:
    """The entries of a mempool file; MempoolFileError naming the problem if it is not one."""
    if len(data) < len(MAGIC) + 4 + 1 + _CHECKSUM_SIZE:
        raise MempoolFileError(f"{len(data)} bytes is too short for a mempool file")
    body, checksum = data[:-_CHECKSUM_SIZE], data[-_CHECKSUM_SIZE:]
    if not body.startswith(MAGIC):
        raise MempoolFileError("it does not start with the mempool file magic")
    if sha256(body) != checksum:
        raise MempoolFileError("its checksum does not match its content (torn or edited)")
    reader = ByteReader(body[len(MAGIC) :])
    try:
        version = reader.u32("version")
        if version != VERSION:
            raise MempoolFileError(f"version {version} is not the {VERSION} this node reads")
        entries = []
        for _ in range(reader.count("transaction", _MIN_ENTRY_SIZE)):
            time = reader.u64("entry time")
            entries.append(SavedTx(Transaction.from_bytes(reader.var_bytes("transaction")), time))
        reader.finish("mempool file")
    except ValueError as exc:
        if isinstance(exc, MempoolFileError):
            raise
        raise MempoolFileError(str(exc)) from None
    return entries


def save(path: Path, saved: Iterable[SavedTx]) -> None:
    """Replace `path` with `saved` (crash-safe: the old file or the new one, never a mixture)."""
    write_atomically(path, encode(saved), mode=0o600)


def load(path: Path) -> list[SavedTx]:
    """The entries saved at `path`, none if there is no file; MempoolFileError if it is unreadable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise MempoolFileError(f"it cannot be read: {exc.strerror}") from None
    return decode(data)
