"""Wallet keys: addresses, import/export, encryption at rest, unlock timeouts, backups and the keypool."""

import asyncio
import os
import stat
import time

import pytest
from wallet_support import FAST_KDF, NETWORK, ToyChain, funding_tx, new_wallet, script_of

from camelid.crypto.address import address_to_hash160
from camelid.crypto.keys import PrivateKey
from camelid.wallet.crypter import ScryptParams
from camelid.wallet.errors import WalletError, WalletErrorCode
from camelid.wallet.keystore import MAX_UNLOCK_SECONDS
from camelid.wallet.wallet import Wallet, wallet_path


def _code(excinfo: pytest.ExceptionInfo[WalletError]) -> WalletErrorCode:
    return excinfo.value.code


def test_new_addresses_are_distinct_ours_and_of_the_network(tmp_path):
    wallet = new_wallet(tmp_path)
    first, second = wallet.get_new_address("rent"), wallet.get_new_address()
    assert first != second
    assert wallet.addresses == {first: "rent", second: ""}
    for address in (first, second):
        address_to_hash160(address, NETWORK)  # raises if not a regtest address
        assert wallet.is_mine(script_of(address))


def test_wallet_file_is_private_and_reopens_with_the_same_addresses(tmp_path):
    wallet = new_wallet(tmp_path)
    address = wallet.get_new_address("x")
    path = wallet_path(tmp_path, "w")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    reopened = Wallet.open(tmp_path, "w", NETWORK)
    assert reopened.addresses == {address: "x"}
    assert reopened.get_new_address() != address


def test_open_errors_name_the_problem(tmp_path):
    with pytest.raises(WalletError) as missing:
        Wallet.open(tmp_path, "nope", NETWORK)
    assert _code(missing) == WalletErrorCode.WALLET_NOT_FOUND
    new_wallet(tmp_path)
    with pytest.raises(WalletError, match="is for regtest, not mainnet"):
        Wallet.open(tmp_path, "w", "mainnet")
    with pytest.raises(WalletError, match="already exists"):
        new_wallet(tmp_path)
    with pytest.raises(WalletError, match="Invalid wallet name"):
        new_wallet(tmp_path, "../escape")
    wallet_path(tmp_path, "w").write_bytes(b"\xc1 not msgpack")
    with pytest.raises(WalletError, match="Cannot read wallet"):
        Wallet.open(tmp_path, "w", NETWORK)


def test_import_and_dump_round_trip_and_reject_other_networks(tmp_path):
    wallet = new_wallet(tmp_path)
    key = PrivateKey.generate(network=NETWORK)
    address = wallet.import_privkey(key.to_wif(), "imported")
    assert address == key.public_key.address(NETWORK)
    assert wallet.dump_privkey(address) == key.to_wif()
    own = wallet.get_new_address()
    assert PrivateKey.from_wif(wallet.dump_privkey(own)).public_key.address(NETWORK) == own
    with pytest.raises(WalletError) as foreign:
        wallet.import_privkey(PrivateKey.generate(network="mainnet").to_wif())
    assert _code(foreign) == WalletErrorCode.INVALID_ADDRESS_OR_KEY
    with pytest.raises(WalletError) as stranger:
        wallet.dump_privkey(PrivateKey.generate().public_key.address(NETWORK))
    assert _code(stranger) == WalletErrorCode.WALLET_ERROR
    with pytest.raises(WalletError) as bad_address:
        wallet.dump_privkey(PrivateKey.generate().public_key.address("mainnet"))
    assert _code(bad_address) == WalletErrorCode.INVALID_ADDRESS_OR_KEY


def test_uncompressed_imported_key_gets_its_own_address(tmp_path):
    wallet = new_wallet(tmp_path)
    key = PrivateKey.generate(compressed=False, network=NETWORK)
    address = wallet.import_privkey(key.to_wif())
    assert address == key.public_key.address(NETWORK, compressed=False)
    assert wallet.dump_privkey(address) == key.to_wif()


def test_encrypted_file_holds_no_plaintext_secret(tmp_path):
    wallet = new_wallet(tmp_path)
    imported = PrivateKey.generate(network=NETWORK)
    wallet.import_privkey(imported.to_wif())
    own_key = PrivateKey.from_wif(wallet.dump_privkey(wallet.get_new_address()))
    path = wallet_path(tmp_path, "w")
    seed = wallet._keys._seed
    assert seed in path.read_bytes()  # the check below can see a plaintext secret when there is one
    wallet.encrypt("correct horse", ScryptParams())  # the production cost parameters, once
    data = path.read_bytes()
    for secret in (seed, imported.secret, own_key.secret):
        for form in (secret, secret.hex().encode(), secret[::-1]):
            assert form not in data
    for wif in (imported.to_wif(), own_key.to_wif()):
        assert wif.encode() not in data
    assert wallet.is_locked
    reopened = Wallet.open(tmp_path, "w", NETWORK)
    assert reopened.is_encrypted and reopened.is_locked
    reopened.unlock("correct horse", 60)
    assert reopened.dump_privkey(imported.public_key.address(NETWORK)) == imported.to_wif()


def test_locked_wallet_refuses_keys_but_still_gives_addresses(tmp_path):
    wallet = new_wallet(tmp_path, passphrase="pw", kdf=FAST_KDF)
    assert wallet.is_locked and wallet.unlocked_until() == 0
    address = wallet.get_new_address()
    for action in (
        lambda: wallet.dump_privkey(address),
        lambda: wallet.import_privkey(PrivateKey.generate(network=NETWORK).to_wif()),
    ):
        with pytest.raises(WalletError) as locked:
            action()
        assert _code(locked) == WalletErrorCode.UNLOCK_NEEDED
    wallet.unlock("pw", 60)
    assert wallet.unlocked_until() == pytest.approx(time.time() + 60, abs=5)
    key = PrivateKey.from_wif(wallet.dump_privkey(address))
    assert key.public_key.address(NETWORK) == address
    wallet.lock()
    assert wallet.is_locked


def test_passphrase_errors_carry_core_codes(tmp_path):
    plain = new_wallet(tmp_path, "plain")
    for action in (lambda: plain.unlock("pw", 10), plain.lock, lambda: plain.change_passphrase("a", "b")):
        with pytest.raises(WalletError) as unencrypted:
            action()
        assert _code(unencrypted) == WalletErrorCode.WRONG_ENC_STATE
    with pytest.raises(WalletError) as empty:
        plain.encrypt("", FAST_KDF)
    assert _code(empty) == WalletErrorCode.INVALID_PARAMETER
    plain.encrypt("pw", FAST_KDF)
    with pytest.raises(WalletError) as again:
        plain.encrypt("pw", FAST_KDF)
    assert _code(again) == WalletErrorCode.WRONG_ENC_STATE
    with pytest.raises(WalletError, match="passphrase entered was incorrect") as wrong:
        plain.unlock("wrong", 10)
    assert _code(wrong) == WalletErrorCode.PASSPHRASE_INCORRECT
    assert plain.is_locked
    with pytest.raises(WalletError) as negative:
        plain.unlock("pw", -1)
    assert _code(negative) == WalletErrorCode.INVALID_PARAMETER


def test_change_passphrase_keeps_keys_and_retires_the_old_one(tmp_path):
    wallet = new_wallet(tmp_path, passphrase="old", kdf=FAST_KDF)
    address = wallet.get_new_address()
    with pytest.raises(WalletError) as wrong:
        wallet.change_passphrase("not old", "new")
    assert _code(wrong) == WalletErrorCode.PASSPHRASE_INCORRECT
    wallet.change_passphrase("old", "new")
    reopened = Wallet.open(tmp_path, "w", NETWORK)
    with pytest.raises(WalletError):
        reopened.unlock("old", 10)
    reopened.unlock("new", 10)
    assert PrivateKey.from_wif(reopened.dump_privkey(address)).public_key.address(NETWORK) == address


def test_unlock_expires_after_its_timeout(tmp_path):
    wallet = new_wallet(tmp_path, passphrase="pw", kdf=FAST_KDF)
    address = wallet.get_new_address()
    wallet.unlock("pw", 0.2)
    wallet.dump_privkey(address)
    time.sleep(0.3)
    with pytest.raises(WalletError) as expired:
        wallet.dump_privkey(address)
    assert _code(expired) == WalletErrorCode.UNLOCK_NEEDED
    assert wallet.is_locked


def test_unlock_timeout_is_capped_like_core(tmp_path):
    wallet = new_wallet(tmp_path, passphrase="pw", kdf=FAST_KDF)
    wallet.unlock("pw", 10**12)
    assert wallet.unlocked_until() == pytest.approx(time.time() + MAX_UNLOCK_SECONDS, abs=5)


async def test_event_loop_timer_drops_the_master_key_on_time(tmp_path):
    wallet = new_wallet(tmp_path, passphrase="pw", kdf=FAST_KDF)
    wallet.unlock("pw", 0.05)
    keys = wallet._keys
    assert keys._master_key is not None
    await asyncio.sleep(0.2)
    assert keys._master_key is None  # gone from memory without anyone asking


def test_backup_restores_addresses_handed_out_after_it(tmp_path):
    wallet = new_wallet(tmp_path, keypool_size=20)
    early = wallet.get_new_address()
    backup = wallet.backup(tmp_path / "backup.dat")
    later = [wallet.get_new_address() for _ in range(30)]  # more than one keypool's worth
    chain = ToyChain()
    # Paid in order, as a merchant's customers would; each payment moves the restored keypool forward.
    for address in [early, *later]:
        chain.mine(wallet, funding_tx((script_of(address), 1000)))
    restored = Wallet.restore(tmp_path, "restored", NETWORK, backup)
    restored.rescan(chain.blocks, 0)
    assert restored.get_balance() == wallet.get_balance() == 31 * 1000
    assert {u.address for u in restored.list_unspent()} == {early, *later}
    assert restored.get_new_address() == wallet.get_new_address()


def test_backup_into_a_directory_and_not_over_itself(tmp_path):
    wallet = new_wallet(tmp_path)
    (tmp_path / "backups").mkdir()
    target = wallet.backup(tmp_path / "backups")
    assert target == tmp_path / "backups" / "wallet.dat"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    with pytest.raises(WalletError, match="backup failed"):
        wallet.backup(wallet_path(tmp_path, "w"))
