"""The wallet's job support: paying a raw job script (ESCROW, STAKE) with a Job ID, and the job keys."""

from __future__ import annotations

import time

import pytest
from wallet_support import FAST_KDF, ToyChain, assert_signatures_verify, funding_tx, new_wallet, script_of

from camelid.core.consensus import COIN
from camelid.core.jobscripts import escrow_script, match_escrow
from camelid.crypto import ecies
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PrivateKey, PublicKey
from camelid.wallet.errors import WalletError, WalletErrorCode

JOB = bytes(range(32))


def _funded(tmp_path, **kwargs):
    wallet = new_wallet(tmp_path, **kwargs)
    funding = funding_tx((script_of(wallet.get_new_address()), 2 * COIN))
    ToyChain().mine(wallet, funding)
    return wallet, funding


def test_a_raw_script_payment_carries_the_job_id_and_is_signed(tmp_path):
    wallet, funding = _funded(tmp_path)
    client_key = wallet.new_job_key()
    escrow = escrow_script(JOB, client_key, 1_700_000_000, 1_700_000_700)
    created = wallet.create_script_payment(escrow, COIN, JOB, fee_rate=10)
    assert created.tx.job_id == JOB
    (paid,) = [out for out in created.tx.outputs if out.script_pubkey == escrow]
    assert paid.value == COIN and match_escrow(paid.script_pubkey).client_pubkey == client_key
    assert_signatures_verify(created.tx, {(funding.hash, 0): funding.outputs[0]})
    wallet.commit_transaction(created.tx)
    assert wallet.get_balance() == 2 * COIN - COIN - created.fee


def test_a_job_key_signs_inside_the_wallet_and_is_fresh_each_time(tmp_path):
    wallet, _ = _funded(tmp_path)
    first, second = wallet.new_job_key(), wallet.new_job_key()
    assert first != second
    digest = sha256d(b"testament")
    assert PublicKey.from_bytes(first).verify(wallet.sign_job_digest(first, digest), digest)
    sealed = ecies.encrypt(PublicKey.from_bytes(first), b"tokens", aad=JOB)
    assert wallet.open_job_delivery(first, sealed, JOB) == b"tokens"
    stranger = PrivateKey.generate().public_key.to_bytes()
    with pytest.raises(WalletError) as unknown:
        wallet.sign_job_digest(stranger, digest)
    assert unknown.value.code == WalletErrorCode.INVALID_ADDRESS_OR_KEY


def test_a_locked_wallet_neither_funds_nor_opens_jobs(tmp_path):
    wallet, _ = _funded(tmp_path, passphrase="pw", kdf=FAST_KDF)
    key = wallet.new_job_key()  # handing out a public key works while locked, as getnewaddress does
    calls = (
        lambda: wallet.create_script_payment(b"\x51", COIN, JOB),
        lambda: wallet.sign_job_digest(key, bytes(32)),
        lambda: wallet.hold_job_key(key, time.time() + 60),
    )
    for call in calls:
        with pytest.raises(WalletError) as locked:
            call()
        assert locked.value.code == WalletErrorCode.UNLOCK_NEEDED


def test_a_held_job_key_signs_after_the_wallet_relocks_until_its_time(tmp_path):
    """A compute node must sign its delivery and releases until D + W whatever the operator's unlock timeout."""
    wallet, _ = _funded(tmp_path, passphrase="pw", kdf=FAST_KDF)
    held, other = wallet.new_job_key(), wallet.new_job_key()
    wallet.unlock("pw", 60)
    wallet.hold_job_key(held, time.time() + 60)
    wallet.hold_job_key(other, time.time() - 1)  # already past its time
    wallet.lock()
    digest = sha256d(b"delivery")
    assert PublicKey.from_bytes(held).verify(wallet.sign_job_digest(held, digest), digest)
    with pytest.raises(WalletError) as locked:
        wallet.sign_job_digest(other, digest)
    assert locked.value.code == WalletErrorCode.UNLOCK_NEEDED


def test_a_job_id_of_the_wrong_size_is_refused(tmp_path):
    wallet, _ = _funded(tmp_path)
    with pytest.raises(WalletError, match="job id must be 32 bytes"):
        wallet.create_script_payment(b"\x51", COIN, b"\x01" * 31)
