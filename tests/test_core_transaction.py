"""Transaction layout, txids, signature hashes and hostile-input decoding."""

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camelid.core.consensus import SEQUENCE_FINAL
from camelid.core.transaction import NULL_HASH, SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut

# Bitcoin's genesis coinbase in the legacy layout; CamelidCoin appends a 32-byte Job ID.
BITCOIN_GENESIS_COINBASE = bytes.fromhex(
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d0104"
    "455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365"
    "636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1"
    "a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b"
    "6bf11d5fac00000000"
)

hashes = st.binary(min_size=32, max_size=32)
u32 = st.integers(0, 2**32 - 1)
txins = st.builds(TxIn, hashes, u32, st.binary(max_size=120), u32)
txouts = st.builds(TxOut, st.integers(-(2**63), 2**63 - 1), st.binary(max_size=120))
transactions = st.builds(
    Transaction, u32, st.lists(txins, max_size=4), st.lists(txouts, max_size=4), u32, hashes
)


def test_bitcoin_legacy_layout_with_job_id_appended():
    tx = Transaction.from_bytes(BITCOIN_GENESIS_COINBASE + bytes(32))
    assert tx.is_coinbase()
    assert tx.outputs[0].value == 50 * 100_000_000
    assert tx.inputs[0].sequence == SEQUENCE_FINAL
    assert tx.to_bytes()[:-32] == BITCOIN_GENESIS_COINBASE
    # The Job ID is part of the hashed bytes, so the txid differs from Bitcoin's.
    assert tx.txid() != "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


def test_job_id_changes_txid_and_is_flagged():
    plain = Transaction(inputs=[TxIn(b"\x11" * 32, 0)], outputs=[TxOut(5, b"\x51")])
    job = Transaction(inputs=plain.inputs, outputs=plain.outputs, job_id=b"\x22" * 32)
    assert not plain.is_job_payment() and job.is_job_payment()
    assert plain.txid() != job.txid()
    assert plain.txid() == plain.hash[::-1].hex()


def test_job_id_must_be_32_bytes():
    with pytest.raises(ValueError, match="job_id must be 32 bytes"):
        Transaction(job_id=b"\x00" * 31)


@given(transactions)
def test_round_trip(tx):
    assert Transaction.from_bytes(tx.to_bytes()) == tx


@given(transactions, st.data())
def test_mutations_only_raise_value_error(tx, data):
    raw = bytearray(tx.to_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for candidate in (bytes(raw), bytes(raw[:cut]), bytes(raw) + b"\x00"):
        with contextlib.suppress(ValueError):
            Transaction.from_bytes(candidate)


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_value_error(raw):
    with contextlib.suppress(ValueError):
        Transaction.from_bytes(raw)


def test_rejects_trailing_truncated_and_absurd():
    raw = Transaction(inputs=[TxIn(b"\x01" * 32, 1)], outputs=[TxOut(1, b"")]).to_bytes()
    with pytest.raises(ValueError, match="trailing"):
        Transaction.from_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="truncated"):
        Transaction.from_bytes(raw[:-1])
    absurd = (1).to_bytes(4, "little") + b"\xfe" + (1_000_000).to_bytes(4, "little")
    with pytest.raises(ValueError, match="absurd"):
        Transaction.from_bytes(absurd)
    non_canonical = (1).to_bytes(4, "little") + b"\xfd\x01\x00"
    with pytest.raises(ValueError, match="non-canonical"):
        Transaction.from_bytes(non_canonical)


def test_signature_hash_commits_to_everything_it_must():
    tx = Transaction(
        inputs=[TxIn(b"\x01" * 32, 0, b"sig"), TxIn(b"\x02" * 32, 1)],
        outputs=[TxOut(10, b"\x51")],
        job_id=b"\x33" * 32,
    )
    base = tx.signature_hash(0, b"code", 100)
    assert base == tx.signature_hash(0, b"code", 100)
    # The existing scriptSigs are not committed to (they hold the signatures).
    resigned = Transaction(tx.version, [TxIn(b"\x01" * 32, 0, b"other"), tx.inputs[1]], tx.outputs, 0, tx.job_id)
    assert resigned.signature_hash(0, b"code", 100) == base
    changed = [
        tx.signature_hash(1, b"code", 100),
        tx.signature_hash(0, b"code2", 100),
        tx.signature_hash(0, b"code", 101),
        Transaction(tx.version, tx.inputs, tx.outputs, 0, b"\x34" * 32).signature_hash(0, b"code", 100),
        Transaction(tx.version, tx.inputs, [TxOut(11, b"\x51")], 0, tx.job_id).signature_hash(0, b"code", 100),
        Transaction(tx.version, tx.inputs, tx.outputs, 7, tx.job_id).signature_hash(0, b"code", 100),
    ]
    assert len({base, *changed}) == len(changed) + 1


def test_signature_hash_rejects_other_types_and_bad_index():
    tx = Transaction(inputs=[TxIn(NULL_HASH, 0)], outputs=[TxOut(1, b"")])
    with pytest.raises(ValueError, match="only SIGHASH_ALL"):
        tx.signature_hash(0, b"", 1, hash_type=0x03)
    with pytest.raises(ValueError, match="out of range"):
        tx.signature_hash(1, b"", 1, SIGHASH_ALL)


def test_outpoint_display():
    assert str(OutPoint(bytes(31) + b"\x01", 2)) == "01" + "00" * 31 + ":2"
