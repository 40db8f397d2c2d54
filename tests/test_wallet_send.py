"""Creating payments: real signatures checked by the consensus interpreter, coin selection, fees, errors."""

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wallet_support import (
    FAST_KDF,
    NETWORK,
    ToyChain,
    assert_signatures_verify,
    funding_tx,
    new_wallet,
    script_of,
    stranger_script,
)

from camelid.core.consensus import COIN
from camelid.core.transaction import Transaction, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.wallet.errors import WalletError, WalletErrorCode
from camelid.wallet.history import Balances
from camelid.wallet.policy import dust_threshold, output_size, p2pkh_input_size, tx_size
from camelid.wallet.wallet import Wallet, wallet_path

RATE = 10
DUST = dust_threshold()


def _funded(datadir: Path, values: list[int], **kwargs: object) -> tuple[Wallet, ToyChain]:
    wallet = new_wallet(datadir, **kwargs)
    chain = ToyChain()
    funding = [funding_tx((script_of(wallet.get_new_address()), value)) for value in values]
    chain.mine(wallet, *funding)
    return wallet, chain


def _prevouts(wallet: Wallet, tx: Transaction) -> dict[tuple[bytes, int], TxOut]:
    """The outputs `tx` spends, as the wallet recorded them."""
    ledger = wallet._ledger
    return {
        (txin.prev_txid, txin.prev_index): ledger.transactions[txin.prev_txid].tx.outputs[txin.prev_index]
        for txin in tx.inputs
    }


def _fee(wallet: Wallet, tx: Transaction) -> int:
    return sum(o.value for o in _prevouts(wallet, tx).values()) - sum(o.value for o in tx.outputs)


def _outsider() -> str:
    return PrivateKey.generate().public_key.address(NETWORK)


def test_payment_is_signed_balanced_and_sends_change_to_a_fresh_key(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN, 2 * COIN])
    handed_out = set(wallet.addresses)
    payee = _outsider()
    created = wallet.create_transaction([(payee, COIN // 2)], fee_rate=RATE)
    tx = created.tx
    assert_signatures_verify(tx, _prevouts(wallet, tx))
    assert created.fee == _fee(wallet, tx) >= RATE * tx.size
    # Paid for the largest possible signatures, so at most 2 bytes an input too many.
    assert created.fee <= RATE * (tx.size + 2 * len(tx.inputs))
    assert TxOut(COIN // 2, script_of(payee)) in tx.outputs
    change = tx.outputs[created.change_index]
    assert wallet.is_mine(change.script_pubkey)
    assert all(script_of(a) != change.script_pubkey for a in handed_out)


def test_commit_spends_the_coins_and_its_change_can_be_spent_again(tmp_path):
    wallet, chain = _funded(tmp_path, [COIN])
    created = wallet.create_transaction([(_outsider(), COIN // 4)], fee_rate=RATE)
    wallet.commit_transaction(created.tx)
    change = created.tx.outputs[created.change_index].value
    assert wallet.get_balances() == Balances(trusted=change, untrusted_pending=0, immature=0)
    [send] = [e for e in wallet.list_transactions() if e.category == "send"]
    assert (send.amount, send.fee, send.confirmations) == (-(COIN // 4), -created.fee, 0)
    # Our own unconfirmed change is trusted, so it funds the next payment (Core's second eligibility tier).
    second = wallet.create_transaction([(_outsider(), COIN // 4)], fee_rate=RATE)
    assert [txin.prev_txid for txin in second.tx.inputs] == [created.tx.hash]
    assert_signatures_verify(second.tx, _prevouts(wallet, second.tx))
    chain.mine(wallet, created.tx)
    assert wallet.get_balance(1) == change


def test_uncommitted_or_failed_send_leaves_the_wallet_unchanged(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN])
    path = wallet_path(tmp_path, "w")
    before = path.read_bytes()
    first = wallet.create_transaction([(_outsider(), COIN // 2)], fee_rate=RATE)
    with pytest.raises(WalletError):
        wallet.create_transaction([(_outsider(), 2 * COIN)], fee_rate=RATE)
    assert path.read_bytes() == before
    assert wallet.get_balance() == COIN
    # The same coin and the same change key are offered again: nothing was reserved.
    again = wallet.create_transaction([(_outsider(), COIN // 2)], fee_rate=RATE)
    assert again.tx.inputs[0].prevout == first.tx.inputs[0].prevout
    assert again.tx.outputs[again.change_index].script_pubkey == first.tx.outputs[first.change_index].script_pubkey


def test_exact_match_needs_no_change(tmp_path):
    coin_value = COIN
    fee = RATE * tx_size([p2pkh_input_size()], [output_size()])
    wallet, _ = _funded(tmp_path, [coin_value, 3 * COIN])
    created = wallet.create_transaction([(_outsider(), coin_value - fee)], fee_rate=RATE)
    assert created.change_index is None
    assert len(created.tx.inputs) == 1 and len(created.tx.outputs) == 1
    assert created.fee == fee == _fee(wallet, created.tx)


@pytest.mark.parametrize(
    ("rate", "leftover"),
    [
        (10, DUST - 1),  # within branch and bound's cost-of-change window: a changeless match
        (1, 300),  # beyond that window, so the change-making selection runs and finds the change is dust
    ],
)
def test_dust_change_is_added_to_the_fee(tmp_path, rate, leftover):
    wallet, _ = _funded(tmp_path, [COIN])
    with_change = rate * tx_size([p2pkh_input_size()], [output_size(), output_size()])
    created = wallet.create_transaction([(_outsider(), COIN - with_change - leftover)], fee_rate=rate)
    assert created.change_index is None and len(created.tx.outputs) == 1
    assert created.fee == with_change + leftover == _fee(wallet, created.tx)


def test_change_of_exactly_the_dust_threshold_is_kept(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN])
    with_change = tx_size([p2pkh_input_size()], [output_size(), output_size()])
    created = wallet.create_transaction([(_outsider(), COIN - with_change - DUST)], fee_rate=1)
    assert created.tx.outputs[created.change_index].value == DUST
    assert created.fee == with_change


def test_insufficient_funds_names_the_amounts(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN, COIN])
    with pytest.raises(WalletError, match=r"sending 5\.00000000 .* only 2\.00000000 is spendable") as short:
        wallet.create_transaction([(_outsider(), 5 * COIN)], fee_rate=RATE)
    assert short.value.code == WalletErrorCode.INSUFFICIENT_FUNDS


def test_immature_and_untrusted_coins_do_not_fund_payments(tmp_path):
    wallet = new_wallet(tmp_path)
    chain = ToyChain()
    chain.extend(wallet, 1, coinbase_to=script_of(wallet.get_new_address()), value=10 * COIN)
    wallet.add_mempool_tx(funding_tx((script_of(wallet.get_new_address()), 10 * COIN)))
    with pytest.raises(WalletError, match=r"only 0\.00000000 is spendable"):
        wallet.create_transaction([(_outsider(), COIN)], fee_rate=RATE)


def test_subtract_fee_from_amount(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN])
    first, second = _outsider(), _outsider()
    created = wallet.create_transaction([(first, COIN // 2), (second, COIN // 4)], RATE, subtract_fee_from=[0, 1])
    tx = created.tx
    paid = {o.script_pubkey: o.value for o in tx.outputs}
    share, remainder = divmod(created.fee, 2)
    assert paid[script_of(first)] == COIN // 2 - share - remainder
    assert paid[script_of(second)] == COIN // 4 - share
    assert created.fee == _fee(wallet, tx) >= RATE * tx.size
    assert_signatures_verify(tx, _prevouts(wallet, tx))


def test_sweeping_everything_with_subtract_fee(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN, COIN // 3])
    total = COIN + COIN // 3
    created = wallet.create_transaction([(_outsider(), total)], RATE, subtract_fee_from=[0])
    assert created.change_index is None and len(created.tx.inputs) == 2
    assert created.tx.outputs[0].value == total - created.fee
    assert created.fee == RATE * tx_size([p2pkh_input_size()] * 2, [output_size()])


def test_job_id_and_explicit_change_address(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN])
    change_to = _outsider()
    job = bytes(range(32))
    created = wallet.create_transaction([(_outsider(), COIN // 2)], RATE, job_id=job, change_address=change_to)
    assert created.tx.job_id == job
    assert created.tx.outputs[created.change_index].script_pubkey == script_of(change_to)
    assert_signatures_verify(created.tx, _prevouts(wallet, created.tx))


def test_default_fee_rate_is_settable_and_persisted(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN])
    wallet.set_fee_rate(50)
    assert Wallet.open(tmp_path, "w", NETWORK).fee_rate == 50
    created = wallet.create_transaction([(_outsider(), COIN // 2)])
    assert 50 * created.tx.size <= created.fee <= 50 * (created.tx.size + 2)
    for bad_rate in (-1, 10**9):
        with pytest.raises(WalletError) as refused:
            wallet.set_fee_rate(bad_rate)
        assert refused.value.code == WalletErrorCode.INVALID_PARAMETER
    wallet.set_fee_rate(0)
    assert wallet.fee_rate == 20


@pytest.mark.parametrize(
    ("recipients", "kwargs", "code", "message"),
    [
        ([("not an address", 1000)], {}, WalletErrorCode.INVALID_ADDRESS_OR_KEY, "Invalid CamelidCoin address"),
        (
            [(PrivateKey.generate().public_key.address("mainnet"), 1000)],
            {},
            WalletErrorCode.INVALID_ADDRESS_OR_KEY,
            "not regtest's",
        ),
        ([("OUTSIDER", 0)], {}, WalletErrorCode.TYPE_ERROR, "Invalid amount"),
        ([("OUTSIDER", -5)], {}, WalletErrorCode.TYPE_ERROR, "Invalid amount"),
        ([("OUTSIDER", DUST - 1)], {}, WalletErrorCode.INSUFFICIENT_FUNDS, "amount too small"),
        ([("OUTSIDER", 1000), ("OUTSIDER", 2000)], {}, WalletErrorCode.INVALID_PARAMETER, "duplicated address"),
        ([("OUTSIDER", 1000)], {"subtract_fee_from": [1]}, WalletErrorCode.INVALID_PARAMETER, "no recipient at"),
        ([("OUTSIDER", 1000)], {"fee_rate": 0}, WalletErrorCode.INVALID_PARAMETER, "below the minimum relay"),
        ([("OUTSIDER", 1000)], {"subtract_fee_from": [0]}, WalletErrorCode.INSUFFICIENT_FUNDS, "too small to pay"),
        ([], {}, WalletErrorCode.INVALID_PARAMETER, "at least one recipient"),
    ],
)
def test_bad_requests_carry_core_codes(tmp_path, recipients, kwargs, code, message):
    wallet, _ = _funded(tmp_path, [COIN])
    outsider = _outsider()
    recipients = [(outsider if a == "OUTSIDER" else a, amount) for a, amount in recipients]
    with pytest.raises(WalletError, match=message) as refused:
        wallet.create_transaction(recipients, **{"fee_rate": RATE, **kwargs})
    assert refused.value.code == code


def test_locked_wallet_cannot_send(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN], passphrase="pw", kdf=FAST_KDF)
    with pytest.raises(WalletError) as locked:
        wallet.create_transaction([(_outsider(), 1000)], fee_rate=RATE)
    assert locked.value.code == WalletErrorCode.UNLOCK_NEEDED
    wallet.unlock("pw", 30)
    created = wallet.create_transaction([(_outsider(), 1000)], fee_rate=RATE)
    assert_signatures_verify(created.tx, _prevouts(wallet, created.tx))


def test_coin_of_an_imported_uncompressed_key_is_spendable(tmp_path):
    wallet = new_wallet(tmp_path)
    key = PrivateKey.generate(compressed=False, network=NETWORK)
    chain = ToyChain()
    chain.mine(wallet, funding_tx((script_of(wallet.import_privkey(key.to_wif())), COIN)))
    created = wallet.create_transaction([(_outsider(), COIN // 2)], fee_rate=RATE)
    assert len(created.tx.inputs[0].script_sig) > 65
    assert created.fee >= RATE * created.tx.size
    assert_signatures_verify(created.tx, _prevouts(wallet, created.tx))


def test_commit_refuses_a_transaction_that_spends_nothing_of_ours(tmp_path):
    wallet, _ = _funded(tmp_path, [COIN])
    with pytest.raises(WalletError, match="spends no coins"):
        wallet.commit_transaction(funding_tx((stranger_script(), 1000)))


coin_values = st.lists(st.integers(DUST, 5 * COIN), min_size=1, max_size=8)
payments = st.lists(st.integers(DUST, 3 * COIN), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(coin_values, payments, st.integers(1, 200), st.booleans())
def test_random_payments_balance_and_verify(values, amounts, rate, subtract):
    with tempfile.TemporaryDirectory() as datadir:
        wallet, _ = _funded(Path(datadir), values, keypool_size=3)
        recipients = [(_outsider(), amount) for amount in amounts]
        try:
            created = wallet.create_transaction(recipients, rate, subtract_fee_from=[0] if subtract else ())
        except WalletError as refused:
            assert refused.code == WalletErrorCode.INSUFFICIENT_FUNDS
            return
        tx = created.tx
        prevouts = _prevouts(wallet, tx)
        assert sum(o.value for o in prevouts.values()) == sum(o.value for o in tx.outputs) + created.fee
        assert created.fee >= rate * tx.size
        assert all(o.value >= DUST for o in tx.outputs)
        if not subtract:
            assert [o.value for o in tx.outputs if o.script_pubkey != _change(created)] == amounts
        assert_signatures_verify(tx, prevouts)


def _change(created) -> bytes | None:
    return None if created.change_index is None else created.tx.outputs[created.change_index].script_pubkey
