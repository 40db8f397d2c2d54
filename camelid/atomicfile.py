"""Crash-safe replacement of small files (wallets, address book, ban list, model manifests and progress).

The new content goes to a uniquely named temporary file in the same directory, is fsynced, and is
renamed over the old file; the directory is then fsynced so the rename itself survives a power loss.
A crash at any point leaves either the old file or the new one, never a mixture. This module imports
nothing from camelid, so every layer that keeps state on disk can use it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int = 0o644, dir_mode: int = 0o755) -> None:
    """Replace `path` with `data`, creating the directory (with `dir_mode`) and the file (with `mode`)."""
    path.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as temp:
            temp.write(data)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
