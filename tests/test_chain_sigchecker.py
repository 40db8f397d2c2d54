"""The signature checker (sighash, hash type, CLTV, CSV) and the P2PKH shortcut's agreement with the interpreter."""

from __future__ import annotations

from dataclasses import replace

import pytest
from chain_helpers import Spendable, make_key, p2pkh_for, spend

from camelid.chain.checkqueue import CheckQueue
from camelid.chain.coins import Coin
from camelid.chain.errors import ValidationError
from camelid.chain.scripts import p2pkh_spend, verify_input_script
from camelid.chain.validation import raise_deferred_failure, verify_tx_scripts
from camelid.core.interpreter import verify_script
from camelid.core.script import ScriptError, build_script, p2pkh_script, p2pkh_script_sig, push_data
from camelid.core.sigchecker import SighashCache, TransactionSignatureChecker
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto.hashes import hash160

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


TIME = 1 << 22  # SEQUENCE_LOCKTIME_TYPE_FLAG
DISABLE = 1 << 31


@pytest.mark.parametrize(
    ("version", "sequence", "operand", "ok"),
    [
        (2, 10, 10, True),
        (2, 10, 9, True),
        (2, 10, 11, False),
        (2, 0, 0, True),
        (2, 0xFFFF, 0xFFFF, True),
        (1, 10, 10, False),  # BIP68 does not apply to version 1, so the input is not locked
        (0xFFFFFFFF, 10, 10, True),  # the version is unsigned: every version from 2 up enforces BIP68
        (2, DISABLE | 10, 10, False),  # an input that opted out of BIP68 is not locked
        (2, TIME | 10, 10, False),  # time versus blocks
        (2, 10, TIME | 10, False),
        (2, TIME | 10, TIME | 10, True),
        (2, TIME | 10, TIME | 11, False),
        (2, 1 << 16 | 10, 10, True),  # bits outside the type flag and the mask mean nothing
        (2, 10, 1 << 16 | 10, True),
        (2, 10, 1 << 30 | 11, False),
    ],
)
def test_check_sequence_follows_bip112(version: int, sequence: int, operand: int, ok: bool) -> None:
    tx = Transaction(version, [TxIn(b"\x01" * 32, 0, b"", sequence)], [TxOut(1, b"")])
    assert TransactionSignatureChecker(tx, 0, 1).check_sequence(operand) is ok


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


# The block path: standard P2PKH signature checks queued (camelid.chain.checkqueue), the rest interpreted.

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
AMOUNT = 50_000


def _der(r: int, s: int) -> bytes:
    def integer(value: int) -> bytes:
        raw = value.to_bytes((value.bit_length() + 8) // 8, "big")  # a leading zero keeps it positive
        return b"\x02" + bytes([len(raw)]) + raw

    body = integer(r) + integer(s)
    return b"\x30" + bytes([len(body)]) + body


def _high_s(der: bytes) -> bytes:
    r_size = der[3]
    r = int.from_bytes(der[4 : 4 + r_size], "big")
    s = int.from_bytes(der[6 + r_size :], "big")
    return _der(r, SECP256K1_ORDER - s)


def _spend_variants() -> list[tuple[str, bytes, bytes]]:
    """(name, scriptSig, pubkey the spent P2PKH output pays to), valid and invalid in every way the fast
    path must either judge exactly as the interpreter does or leave to it."""
    compressed = KEY.public_key.to_bytes()
    uncompressed = KEY.public_key.to_bytes(compressed=False)
    hybrid = bytes([6 + uncompressed[-1] % 2]) + uncompressed[1:]  # libsecp256k1 parses it; consensus does not
    off_curve = b"\x02" + bytes(31) + b"\x05"
    variants = []
    for name, pubkey in (("compressed", compressed), ("uncompressed", uncompressed), ("hybrid", hybrid)):
        der = KEY.sign(_sighash(pubkey))
        sig = der + bytes([SIGHASH_ALL])
        variants += [
            (f"{name} valid", p2pkh_script_sig(sig, pubkey), pubkey),
            (f"{name} hash type 2", p2pkh_script_sig(der + b"\x02", pubkey), pubkey),
            (f"{name} high S", p2pkh_script_sig(_high_s(der) + bytes([SIGHASH_ALL]), pubkey), pubkey),
            (f"{name} other digest", p2pkh_script_sig(KEY.sign(bytes(32)) + b"\x01", pubkey), pubkey),
            (f"{name} not DER", p2pkh_script_sig(bytes(70) + b"\x01", pubkey), pubkey),
            (f"{name} two-byte sig", p2pkh_script_sig(b"\x30\x01", pubkey), pubkey),
            (f"{name} one-byte sig", p2pkh_script_sig(b"\x01", pubkey), pubkey),
            (f"{name} empty sig", p2pkh_script_sig(b"", pubkey), pubkey),
            (f"{name} PUSHDATA1 sig", b"\x4c" + bytes([len(sig)]) + sig + push_data(pubkey), pubkey),
            (f"{name} extra item", p2pkh_script_sig(sig, pubkey) + b"\x51", pubkey),
            (f"{name} only sig", push_data(sig), pubkey),
            (f"{name} key of other hash", p2pkh_script_sig(sig, pubkey), OTHER.public_key.to_bytes()),
        ]
    variants += [
        ("off-curve key", p2pkh_script_sig(b"\x30\x06" + bytes(5) + b"\x01", off_curve), off_curve),
        ("34-byte key", p2pkh_script_sig(KEY.sign(bytes(32)) + b"\x01", compressed + b"\x00"), compressed + b"\x00"),
        ("truncated key push", push_data(b"\x30\x01") + b"\x21" + compressed[:10], compressed),
        ("empty scriptSig", b"", compressed),
    ]
    return variants


def _unsigned() -> Transaction:
    return Transaction(inputs=[TxIn(b"\x05" * 32, 1, b"", 3)], outputs=[TxOut(AMOUNT - 100, p2pkh_for(OTHER))])


def _sighash(pubkey: bytes) -> bytes:
    return _unsigned().signature_hash(0, p2pkh_script(hash160(pubkey)), AMOUNT)


def _block_verdict(tx: Transaction, coin: Coin, threads: int) -> str:
    queue = CheckQueue(threads)
    try:
        deferred = queue.session()
        verify_tx_scripts(tx, [coin], None, deferred)
        raise_deferred_failure(deferred)
    except ValidationError as exc:
        return exc.reason
    finally:
        queue.close()
    return "ok"


VARIANTS = _spend_variants()


@pytest.mark.parametrize(("name", "script_sig", "paid_to"), VARIANTS, ids=[name for name, *_ in VARIANTS])
def test_queued_and_immediate_checks_give_the_interpreters_verdict(name: str, script_sig: bytes, paid_to: bytes):
    script_pubkey = p2pkh_script(hash160(paid_to))
    tx = replace(_unsigned(), inputs=(replace(_unsigned().inputs[0], script_sig=script_sig),))
    coin = Coin(TxOut(AMOUNT, script_pubkey), 1, False)
    interpreted = _verdict(verify_script, script_sig, script_pubkey, TransactionSignatureChecker(tx, 0, AMOUNT))
    expected = "ok" if interpreted == "ok" else f"mandatory-script-verify-flag-failed ({interpreted})"
    try:
        verify_tx_scripts(tx, [coin])
        immediate = "ok"
    except ValidationError as exc:
        immediate = exc.reason
    assert immediate == expected
    assert _block_verdict(tx, coin, 1) == _block_verdict(tx, coin, 3) == expected
    assert (expected == "ok") == name.endswith(("compressed valid", "uncompressed valid"))


def test_only_standard_spends_are_queued() -> None:
    pubkey = KEY.public_key.to_bytes()
    sig = KEY.sign(_sighash(pubkey)) + bytes([SIGHASH_ALL])
    assert p2pkh_spend(p2pkh_script_sig(sig, pubkey), p2pkh_script(hash160(pubkey))) == (sig, pubkey)
    assert p2pkh_spend(p2pkh_script_sig(sig, pubkey), p2pkh_script(hash160(pubkey)) + b"\x00") is None
    assert p2pkh_spend(p2pkh_script_sig(sig, pubkey), p2pkh_for(OTHER)) is None
    assert p2pkh_spend(b"\x4c" + bytes([len(sig)]) + sig + push_data(pubkey), p2pkh_script(hash160(pubkey))) is None


def test_sighash_cache_handles_long_script_sigs_and_many_inputs() -> None:
    inputs = [TxIn(bytes([n]) * 32, n, bytes([n]) * (n * 40), n) for n in range(12)]  # up to 440-byte scriptSigs
    tx = Transaction(inputs=inputs, outputs=[TxOut(9, bytes(300))], lock_time=77, job_id=b"\x09" * 32)
    tx = Transaction.from_bytes(tx.to_bytes())
    cache = SighashCache(tx)
    for index in range(len(inputs)):
        assert cache.digest(index, p2pkh_for(KEY), index) == tx.signature_hash(index, p2pkh_for(KEY), index)
