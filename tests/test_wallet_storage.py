"""The wallet file is replaced atomically: a process killed mid-write leaves the previous file intact."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from camelid.wallet.storage import load_record, save_record

_KILLED_BEFORE_RENAME = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from camelid import atomicfile
    from camelid.wallet import storage

    def crash(src, dst):
        os.kill(os.getpid(), signal.SIGKILL)  # the new content is written and fsynced, the rename never happens

    atomicfile.os.replace = crash
    storage.save_record(Path(sys.argv[1]), {"generation": 2, "payload": b"new" * 1000})
    """
)


def test_kill_between_temp_write_and_rename_leaves_the_old_file(tmp_path):
    path = tmp_path / "wallets" / "w" / "wallet.dat"
    save_record(path, {"generation": 1, "payload": b"old"})
    result = subprocess.run([sys.executable, "-c", _KILLED_BEFORE_RENAME, str(path)], capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert load_record(path) == {"generation": 1, "payload": b"old"}
    leftovers = [p for p in path.parent.iterdir() if p != path]
    assert len(leftovers) == 1 and leftovers[0].name.endswith(".tmp")  # the abandoned write, never the wallet
    assert load_record(leftovers[0])["generation"] == 2


def test_failed_write_removes_its_temp_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "wallet.dat"
    save_record(path, {"generation": 1})

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_record(path, {"generation": 2})
    assert load_record(path) == {"generation": 1}
    assert list(tmp_path.iterdir()) == [path]


@pytest.mark.parametrize(("content", "problem"), [(b"\xc1", "not a wallet file"), (b"\x01", "not a map")])
def test_damaged_file_is_reported_with_its_path(tmp_path, content, problem):
    path = tmp_path / "wallet.dat"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=problem):
        load_record(path)
