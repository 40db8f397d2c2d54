"""The signature checker (sighash, hash type, CLTV) and the P2PKH shortcut's agreement with the interpreter."""

from __future__ import annotations

import pytest
from chain_helpers import Spendable, make_key, p2pkh_for, spend

from camelid.chain.scripts import verify_input_script
from camelid.core.interpreter import verify_script
from camelid.core.script import ScriptError, build_script, p2pkh_script_sig, push_data
from camelid.core.sigchecker import SighashCache, TransactionSignatureChecker
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut

KEY = make_key(1)
OTHER = make_key(2)


def _three_input_tx() -> Transaction:
    coins = [Spendable(OutPoint(bytes([n]) * 32, n), 1_000 * (n + 1), KEY) for n in range(3)]
    return spend(coins, [TxOut(500, p2pkh_for(OTHER)), TxOut(700, b"\x6a")], lock_time=1234, sequence=7)


def test_sighash_cache_matches_transaction_signature_hash() -> None:
    tx = _three_input_tx()
    cache = SighashCache(tx)
    for index in range(3):
        for code in (b"", p2pkh_for(KEY), bytes(300)):
            assert cache.digest(index, code, 4242) == tx.signature_hash(index, code, 4242, SIGHASH_ALL)
    with pytest.raises(ValueError, match="out of range"):
        cache.digest(3, b"", 0)


def _checker_and_sig(amount: int = 1_000) -> tuple[TransactionSignatureChecker, bytes, bytes]:
    tx = _three_input_tx()
    code = p2pkh_for(KEY)
    sig = KEY.sign(tx.signature_hash(0, code, amount)) + bytes([SIGHASH_ALL])
    return TransactionSignatureChecker(tx, 0, amount), sig, code


def test_check_sig_accepts_the_right_signature_only() -> None:
    checker, sig, code = _checker_and_sig()
    pub = KEY.public_key.to_bytes()
    assert checker.check_sig(sig, pub, code)
    assert not checker.check_sig(sig[:-1] + b"\x02", pub, code)  # only SIGHASH_ALL exists
    assert not checker.check_sig(sig[:-1] + b"\x81", pub, code)
    assert not checker.check_sig(sig, OTHER.public_key.to_bytes(), code)
    assert not checker.check_sig(sig, b"\x02" + bytes(32), code)  # not a curve point
    assert not checker.check_sig(sig, b"", code)
    assert not checker.check_sig(b"\x01", pub, code)
    assert not checker.check_sig(sig, pub, code + b"\x00")  # different script code, different digest
    assert not TransactionSignatureChecker(checker.tx, 0, 999).check_sig(sig, pub, code)  # amount is signed


@pytest.mark.parametrize(
    ("tx_locktime", "sequence", "locktime", "ok"),
    [
        (100, 0, 100, True),
        (100, 0, 99, True),
        (100, 0, 101, False),
        (100, 0xFFFFFFFF, 50, False),  # a final input disables the transaction's lock time
        (100, 0, 500_000_000, False),  # height versus time
        (500_000_100, 0, 500_000_000, True),
        (500_000_100, 0, 100, False),
    ],
)
def test_check_locktime_follows_bip65(tx_locktime: int, sequence: int, locktime: int, ok: bool) -> None:
    tx = Transaction(inputs=[TxIn(b"\x01" * 32, 0, b"", sequence)], outputs=[TxOut(1, b"")], lock_time=tx_locktime)
    assert TransactionSignatureChecker(tx, 0, 1).check_locktime(locktime) is ok


def test_checker_rejects_an_input_index_out_of_range() -> None:
    with pytest.raises(ValueError, match="out of range"):
        TransactionSignatureChecker(_three_input_tx(), 3, 0)


def _verdict(verify, script_sig: bytes, script_pubkey: bytes, checker: TransactionSignatureChecker) -> str:
    try:
        verify(script_sig, script_pubkey, checker)
    except ScriptError as exc:
        return str(exc.reason)
    return "ok"


def test_p2pkh_shortcut_agrees_with_the_interpreter() -> None:
    checker, sig, code = _checker_and_sig()
    pub = KEY.public_key.to_bytes()
    variants = [
        p2pkh_script_sig(sig, pub),
        p2pkh_script_sig(sig[:-1] + b"\x02", pub),
        p2pkh_script_sig(sig, OTHER.public_key.to_bytes()),
        p2pkh_script_sig(b"", pub),
        p2pkh_script_sig(sig, b""),
        push_data(sig),
        p2pkh_script_sig(sig, pub) + b"\x51",
        b"\x4c" + bytes([len(sig)]) + sig + push_data(pub),  # non-minimal push of the signature
        push_data(sig) + b"\x21" + pub[:10],  # truncated push
        build_script(1, pub),
        p2pkh_script_sig(sig, pub + b"\x00"),
        b"",
    ]
    for script_sig in variants:
        assert _verdict(verify_input_script, script_sig, code, checker) == _verdict(
            verify_script, script_sig, code, checker
        ), script_sig.hex()
    assert _verdict(verify_input_script, variants[0], code, checker) == "ok"
    assert _verdict(verify_input_script, variants[0], p2pkh_for(OTHER), checker) == "EQUALVERIFY"
