"""Following the chain: balances by confirmations, immature coinbase, reorgs, mempool trust and the history lists."""

import pytest
from wallet_support import MATURITY, NETWORK, ToyChain, funding_tx, new_wallet, script_of, stranger_script

from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.wallet.errors import WalletError, WalletErrorCode
from camelid.wallet.history import Balances
from camelid.wallet.wallet import Wallet


@pytest.fixture
def wallet(tmp_path):
    return new_wallet(tmp_path)


def test_confirmed_payment_counts_by_minconf(wallet):
    chain = ToyChain()
    script = script_of(wallet.get_new_address())
    chain.extend(wallet, 3)
    chain.mine(wallet, funding_tx((script, 7000), (stranger_script(), 99)))
    assert wallet.get_balance() == wallet.get_balance(1) == 7000
    assert wallet.get_balance(2) == 0
    chain.extend(wallet, 5)
    assert wallet.get_balance(6) == 7000
    assert wallet.get_balance(7) == 0
    [unspent] = wallet.list_unspent()
    assert (unspent.amount, unspent.confirmations, unspent.safe) == (7000, 6, True)
    assert wallet.list_unspent(minconf=7) == []
    assert wallet.list_unspent(maxconf=5) == []


def test_coinbase_is_immature_until_maturity_plus_one_confirmations(wallet):
    chain = ToyChain()
    mine_to = script_of(wallet.get_new_address())
    chain.extend(wallet, 1, coinbase_to=mine_to, value=5000)
    assert wallet.get_balances() == Balances(trusted=0, untrusted_pending=0, immature=5000)
    assert wallet.list_transactions()[-1].category == "immature"
    chain.extend(wallet, MATURITY - 1)  # MATURITY confirmations: consensus would allow it, Core's wallet waits one more
    assert wallet.get_balance() == 0 and wallet.list_unspent() == []
    chain.extend(wallet, 1)
    assert wallet.get_balances() == Balances(trusted=5000, untrusted_pending=0, immature=0)
    assert wallet.list_transactions()[-1].category == "generate"
    assert wallet.list_unspent()[0].confirmations == MATURITY + 1


def test_reorg_undoes_coinbase_and_unconfirms_payments(wallet):
    chain = ToyChain()
    script = script_of(wallet.get_new_address())
    chain.extend(wallet, 2)
    payment = funding_tx((script, 4000))
    chain.mine(wallet, payment)
    chain.extend(wallet, 1, coinbase_to=script, value=5000)
    assert wallet.get_balances() == Balances(4000, 0, 5000)
    chain.pop(wallet)
    chain.pop(wallet)
    # The payment waits to be mined again, as a mempool would hold it; the coinbase is gone for good.
    assert wallet.get_balances() == Balances(trusted=0, untrusted_pending=4000, immature=0)
    assert wallet.tip_height == 1 and wallet.tip_hash == chain.blocks[-1].hash_bytes
    chain.mine(wallet, payment)
    assert wallet.get_balances() == Balances(4000, 0, 0)
    assert [e.txid for e in wallet.list_transactions()] == [payment.txid()]


def test_state_survives_reopening(tmp_path, wallet):
    chain = ToyChain()
    script = script_of(wallet.get_new_address("pay"))
    chain.mine(wallet, funding_tx((script, 1234)))
    reopened = Wallet.open(tmp_path, "w", NETWORK)
    assert reopened.get_balance() == 1234
    assert reopened.tip_height == 0 and reopened.tip_hash == chain.blocks[0].hash_bytes
    assert reopened.list_transactions() == wallet.list_transactions()


def test_unconfirmed_receipt_is_untrusted_until_mined(wallet):
    chain = ToyChain()
    chain.extend(wallet, 1)
    payment = funding_tx((script_of(wallet.get_new_address()), 800))
    assert wallet.add_mempool_tx(payment)
    assert not wallet.add_mempool_tx(payment)
    assert not wallet.add_mempool_tx(funding_tx((stranger_script(), 5)))
    assert wallet.get_balances() == Balances(trusted=0, untrusted_pending=800, immature=0)
    assert wallet.get_balance(0) == 0
    assert wallet.list_unspent(minconf=0) == []  # others' unconfirmed coins are not safe to spend
    [entry] = wallet.list_transactions()
    assert (entry.category, entry.confirmations, entry.trusted) == ("receive", 0, False)
    chain.mine(wallet, payment)
    assert wallet.get_balances() == Balances(trusted=800, untrusted_pending=0, immature=0)


def test_block_conflicting_with_an_unconfirmed_transaction_drops_it(wallet):
    chain = ToyChain()
    outside = funding_tx((stranger_script(), 10_000))
    ours = Transaction(
        inputs=(TxIn(outside.hash, 0, b"\x00"),), outputs=(TxOut(9000, script_of(wallet.get_new_address())),)
    )
    wallet.add_mempool_tx(ours)
    double_spend = Transaction(inputs=(TxIn(outside.hash, 0, b"\x01"),), outputs=(TxOut(9000, stranger_script()),))
    chain.mine(wallet, double_spend)
    assert wallet.get_balances() == Balances(0, 0, 0)
    assert wallet.list_transactions() == []


def test_abandon_forgets_an_unconfirmed_transaction_only(wallet):
    chain = ToyChain()
    pending = funding_tx((script_of(wallet.get_new_address()), 800))
    mined = funding_tx((script_of(wallet.get_new_address()), 900))
    wallet.add_mempool_tx(pending)
    chain.mine(wallet, mined)
    with pytest.raises(WalletError, match="not eligible"):
        wallet.abandon_transaction(mined.txid())
    with pytest.raises(WalletError) as unknown:
        wallet.abandon_transaction("00" * 32)
    assert unknown.value.code == WalletErrorCode.INVALID_ADDRESS_OR_KEY
    wallet.abandon_transaction(pending.txid())
    assert wallet.get_balances() == Balances(900, 0, 0)


def test_rescan_rebuilds_history_and_repairs_a_missed_reorg(wallet):
    chain = ToyChain()
    script = script_of(wallet.get_new_address())
    chain.extend(wallet, 2)
    chain.mine(wallet, funding_tx((script, 100)))
    stale_coinbase = chain.next_block(coinbase_to=script, value=500)
    wallet.apply_block(stale_coinbase, 3)
    # While the wallet was offline, block 3 was replaced by one paying it differently.
    chain.blocks.pop()
    chain.next_block((funding_tx((script, 300)),))
    wallet.rescan(chain.blocks[3:], 3)
    assert wallet.get_balances() == Balances(trusted=400, untrusted_pending=0, immature=0)
    assert wallet.tip_height == 3 and wallet.tip_hash == chain.blocks[-1].hash_bytes


def test_list_transactions_pages_from_the_newest(wallet):
    chain = ToyChain()
    script = script_of(wallet.get_new_address("shop"))
    payments = [funding_tx((script, 1000 + i)) for i in range(5)]
    for payment in payments:
        chain.mine(wallet, payment)
    assert [e.amount for e in wallet.list_transactions()] == [1000, 1001, 1002, 1003, 1004]
    assert [e.amount for e in wallet.list_transactions(count=2)] == [1003, 1004]
    assert [e.amount for e in wallet.list_transactions(count=2, skip=1)] == [1002, 1003]
    assert wallet.list_transactions(count=2, skip=10) == []
    first = wallet.list_transactions()[0]
    assert (first.label, first.confirmations, first.blockheight) == ("shop", 5, 0)
    assert first.blockhash == chain.blocks[0].hash()
    with pytest.raises(WalletError, match="Negative count"):
        wallet.list_transactions(count=-1)


def test_list_unspent_filters_by_address(wallet):
    chain = ToyChain()
    first, second = wallet.get_new_address(), wallet.get_new_address()
    chain.mine(wallet, funding_tx((script_of(first), 10), (script_of(second), 20)))
    assert [u.amount for u in wallet.list_unspent(addresses=[second])] == [20]
    with pytest.raises(WalletError) as bad:
        wallet.list_unspent(addresses=["not-an-address"])
    assert bad.value.code == WalletErrorCode.INVALID_ADDRESS_OR_KEY
