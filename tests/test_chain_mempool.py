"""Mempool admission, ordering, eviction, block and reorg updates, and block templates."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_helpers import (
    REGTEST_NOW,
    build_block,
    coinbase_spendable,
    make_key,
    mine,
    outputs_of,
    p2pkh_for,
    pay,
    solve,
    spend,
)

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import TxRejected
from camelid.chain.mempool import ENTRY_OVERHEAD, Mempool
from camelid.chain.template import build_block_template
from camelid.core.block import Block
from camelid.core.consensus import block_subsidy
from camelid.core.params import REGTEST
from camelid.core.transaction import TxOut

KEY = make_key(1)
OTHER = make_key(2)


@pytest.fixture
def chain(tmp_path: Path) -> ChainState:
    state = ChainState.open(tmp_path / "chain", REGTEST)
    state.blocks = mine(state, 105, key=KEY)  # coinbases of heights 1..5 are mature for height 106
    yield state
    state.close()


@pytest.fixture
def pool(chain: ChainState) -> Mempool:
    return Mempool(chain)


def _coin(chain: ChainState, height: int):
    return coinbase_spendable(chain.blocks[height - 1], KEY)


def _reason(pool: Mempool, tx) -> str:
    with pytest.raises(TxRejected) as caught:
        pool.accept(tx, now=REGTEST_NOW)
    return caught.value.reason


def test_accepts_a_valid_spend_and_reports_it(chain: ChainState, pool: Mempool) -> None:
    tx = pay(_coin(chain, 1), OTHER, fee=5_000)
    entry = pool.accept(tx, now=REGTEST_NOW)
    assert entry.fee == 5_000 and entry.size == tx.size
    assert tx.hash in pool and len(pool) == 1 and pool.get(tx.hash) is entry
    info = pool.info()
    assert info["size"] == 1 and info["bytes"] == tx.size and info["total_fee"] == 5_000
    assert info["usage"] == tx.size + ENTRY_OVERHEAD and info["min_fee_rate"] == 1


def test_rejections_name_their_rule(chain: ChainState, pool: Mempool) -> None:
    coin = _coin(chain, 1)
    tx = pay(coin, OTHER)
    pool.accept(tx, now=REGTEST_NOW)
    assert _reason(pool, tx) == "txn-already-in-mempool"
    assert _reason(pool, pay(coin, OTHER, fee=50_000)) == "txn-mempool-conflict"
    assert _reason(pool, chain.blocks[0].transactions[0]) == "coinbase"
    assert _reason(pool, pay(_coin(chain, 2), OTHER, fee=10)) == "min relay fee not met"
    assert _reason(pool, pay(coinbase_spendable(chain.blocks[10], KEY), OTHER)) == (
        "bad-txns-premature-spend-of-coinbase"
    )
    wrong_key = spend([coinbase_spendable(chain.blocks[2], OTHER)], [TxOut(1_000, p2pkh_for(OTHER))])
    assert _reason(pool, wrong_key) == "mandatory-script-verify-flag-failed (EQUALVERIFY)"
    locked = spend([_coin(chain, 4)], [TxOut(10**8, p2pkh_for(OTHER))], lock_time=107, sequence=0)
    assert _reason(pool, locked) == "non-final"
    assert _reason(pool, spend([_coin(chain, 5)], [TxOut(-1, b"")])) == "bad-txns-vout-negative"
    assert len(pool) == 1


def test_confirmed_transaction_is_already_known(chain: ChainState, pool: Mempool) -> None:
    tx = pay(_coin(chain, 1), OTHER)
    chain.process_block(build_block(chain, [tx], fees=1_000), now=REGTEST_NOW)
    assert _reason(pool, tx) == "txn-already-known"


def test_chains_of_unconfirmed_spends_and_selection_order(chain: ChainState, pool: Mempool) -> None:
    parent = pay(_coin(chain, 1), OTHER, fee=1_000)  # low fee rate
    child = pay(outputs_of(parent, OTHER)[0], KEY, fee=50_000)  # high, but needs its parent first
    rich = pay(_coin(chain, 2), OTHER, fee=20_000)
    for tx in (parent, child, rich):
        pool.accept(tx, now=REGTEST_NOW)
    assert pool.get(child.hash).parents == {parent.hash}
    assert pool.select(10**6) == [rich, parent, child]
    assert pool.select(rich.size + parent.size) == [rich, parent]
    assert [e.tx for e in pool.entries()] == [parent, child, rich]


def test_eviction_drops_lowest_fee_rate_with_descendants(chain: ChainState) -> None:
    filler = pay(_coin(chain, 4), OTHER, fee=40_000)
    cheap = pay(_coin(chain, 1), OTHER, fee=300)
    cheap_child = pay(outputs_of(cheap, OTHER)[0], KEY, fee=50_000)
    dear = pay(_coin(chain, 2), OTHER, fee=30_000)
    room = sum(tx.size + ENTRY_OVERHEAD for tx in (filler, cheap, cheap_child))
    pool = Mempool(chain, max_bytes=room + 10)
    for tx in (filler, cheap, cheap_child, dear):
        pool.accept(tx, now=REGTEST_NOW)
    assert [e.tx for e in pool.entries()] == [filler, dear]
    assert pool.min_fee_rate() == pytest.approx(300 / cheap.size + 1)
    assert _reason(pool, pay(_coin(chain, 3), OTHER, fee=300)) == "mempool min fee not met"


def test_new_lowest_transaction_is_refused_when_full(chain: ChainState) -> None:
    dear = pay(_coin(chain, 1), OTHER, fee=30_000)
    pool = Mempool(chain, max_bytes=dear.size + ENTRY_OVERHEAD)
    pool.accept(dear, now=REGTEST_NOW)
    with pytest.raises(TxRejected, match="mempool full"):
        pool.accept(pay(_coin(chain, 2), OTHER, fee=400), now=REGTEST_NOW)
    assert list(pool.entries())[0].tx == dear


def test_block_removes_mined_and_conflicting_transactions(chain: ChainState, pool: Mempool) -> None:
    mined = pay(_coin(chain, 1), OTHER)
    child = pay(outputs_of(mined, OTHER)[0], KEY)
    loser = pay(_coin(chain, 2), OTHER)
    loser_child = pay(outputs_of(loser, OTHER)[0], KEY)
    for tx in (mined, child, loser, loser_child):
        pool.accept(tx, now=REGTEST_NOW)
    winner = pay(_coin(chain, 2), KEY, fee=7_000)  # spends the same coin as `loser`
    block = build_block(chain, [mined, winner], fees=8_000)
    result = chain.process_block(block, now=REGTEST_NOW)
    for connected in result.connected:
        pool.remove_for_block(connected)
    assert [e.tx for e in pool.entries()] == [child]
    assert pool.get(child.hash).parents == set()


def test_reorg_returns_transactions_that_still_validate(chain: ChainState, pool: Mempool) -> None:
    fork = chain.tip.hash
    returning = pay(_coin(chain, 1), OTHER)
    double_spent = pay(_coin(chain, 2), OTHER)
    block = build_block(chain, [returning, double_spent], fees=2_000)
    chain.process_block(block, now=REGTEST_NOW)
    side_tx = pay(_coin(chain, 2), KEY, fee=3_000)
    side = build_block(chain, [side_tx], parent=fork, fees=3_000)
    chain.process_block(side, now=REGTEST_NOW)
    result = chain.process_block(build_block(chain, parent=side.hash_bytes), now=REGTEST_NOW)
    assert result.disconnected == [block]
    for connected in result.connected:
        pool.remove_for_block(connected)
    pool.add_disconnected(result.disconnected, now=REGTEST_NOW)
    assert [e.tx for e in pool.entries()] == [returning]


def test_template_pays_subsidy_plus_fees_and_connects(chain: ChainState, pool: Mempool) -> None:
    parent = pay(_coin(chain, 1), OTHER, fee=2_000)
    child = pay(outputs_of(parent, OTHER)[0], KEY, fee=3_000)
    pool.accept(parent, now=REGTEST_NOW)
    pool.accept(child, now=REGTEST_NOW)
    template = build_block_template(chain, pool, p2pkh_for(KEY), extra_nonce=9, now=REGTEST_NOW)
    assert template.header.nonce == 0 and template.header.prev_hash == chain.tip.hash
    assert template.transactions[1:] == (parent, child)
    assert template.transactions[0].outputs[0].value == block_subsidy(106) + 5_000
    block: Block = solve(template, REGTEST.pow_limit)
    assert chain.process_block(block, now=REGTEST_NOW).status == "connected"
    other = build_block_template(chain, pool, p2pkh_for(KEY), extra_nonce=10, now=0)
    assert other.header.time == chain.median_time_past(chain.tip) + 1
