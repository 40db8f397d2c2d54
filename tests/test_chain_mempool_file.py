"""mempool.dat's format: what is written is read back, and every kind of damage is refused with its name."""

from __future__ import annotations

import pytest
from chain_helpers import make_key, p2pkh_for

from camelid.chain.mempool_file import MAGIC, MempoolFileError, SavedTx, decode, encode, load, save
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto.hashes import sha256


def saved(n: int) -> list[SavedTx]:
    script = p2pkh_for(make_key(1))
    txs = [Transaction(inputs=(TxIn(bytes([i]) * 32, i),), outputs=(TxOut(1_000 + i, script),)) for i in range(n)]
    return [SavedTx(tx, 1_700_000_000 + i) for i, tx in enumerate(txs)]


def resealed(body: bytes) -> bytes:
    """`body` with a valid checksum, so that the check behind the checksum is the one that fails."""
    return body + sha256(body)


def test_saved_transactions_come_back_in_order_with_their_times(tmp_path):
    path = tmp_path / "mempool.dat"
    assert load(path) == []  # no file yet: an empty mempool, no error
    save(path, saved(3))
    assert load(path) == saved(3)
    assert path.stat().st_mode & 0o777 == 0o600
    save(path, [])
    assert load(path) == []


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda data: data[:10], "too short"),
        (lambda data: b"X" + data[1:], "magic"),
        (lambda data: data[:-40] + bytes([data[-40] ^ 1]) + data[-39:], "checksum does not match"),
        (lambda data: resealed(MAGIC + (2).to_bytes(4, "little") + data[len(MAGIC) + 4 : -32]), "version 2"),
        (lambda data: resealed(data[:-32] + b"\x00"), "trailing"),
        (lambda data: resealed(data[:-33]), "truncated"),
        (lambda data: resealed(MAGIC + (1).to_bytes(4, "little") + b"\xfd\xff\xff"), "absurd"),
    ],
)
def test_a_damaged_file_is_refused_naming_the_problem(damage, problem):
    with pytest.raises(MempoolFileError, match=problem):
        decode(damage(encode(saved(2))))


def test_an_unreadable_file_is_refused_naming_the_problem(tmp_path):
    (tmp_path / "mempool.dat").mkdir()
    with pytest.raises(MempoolFileError, match="cannot be read"):
        load(tmp_path / "mempool.dat")
