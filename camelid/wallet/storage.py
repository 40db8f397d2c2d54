"""The wallet file: one msgpack map per wallet, replaced atomically so a crash never leaves it half written.

The new content goes to a temporary file in the same directory, is fsynced, and
is renamed over the old one; the directory is fsynced so the rename itself
survives a power loss. A crash at any point leaves either the old file or the new
one, never a mixture. Files are created 0600: they hold keys.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import msgpack

FILE_MODE = 0o600
DIR_MODE = 0o700


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` (temp file, fsync, rename, fsync of the directory)."""
    path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def save_record(path: Path, record: dict[str, Any]) -> None:
    write_atomically(path, msgpack.packb(record, use_bin_type=True))


def load_record(path: Path) -> dict[str, Any]:
    """The map stored at `path`; ValueError naming the file if it is not a msgpack map."""
    data = path.read_bytes()
    try:
        record = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ValueError(f"{path} is not a wallet file: {exc}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path} is not a wallet file: top level is {type(record).__name__}, not a map")
    return record


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
