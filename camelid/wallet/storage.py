"""The wallet file: one msgpack map per wallet, replaced atomically so a crash never leaves it half written.

Writes go through camelid.atomicfile (temp file, fsync, rename, directory fsync), so a crash
leaves either the old file or the new one. Files are created 0600 in 0700 directories: they hold keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack

from camelid.atomicfile import write_atomically

FILE_MODE = 0o600
DIR_MODE = 0o700


def save_record(path: Path, record: dict[str, Any]) -> None:
    write_atomically(path, msgpack.packb(record, use_bin_type=True), mode=FILE_MODE, dir_mode=DIR_MODE)


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

