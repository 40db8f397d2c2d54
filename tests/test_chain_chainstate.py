"""Chain state behaviour: connect/disconnect, reorganisations, orphans, restart and reindex."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from chain_helpers import (
    REGTEST_NOW,
    build_block,
    child_of,
    coinbase_spendable,
    make_key,
    mine,
    outputs_of,
    pay,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import BlockRejected
from camelid.chain.storage import StorageError
from camelid.core.block import Block
from camelid.core.params import REGTEST, TESTNET
from camelid.core.transaction import OutPoint

KEY = make_key(1)
OTHER = make_key(2)


@pytest.fixture
def chain(tmp_path: Path) -> ChainState:
    state = ChainState.open(tmp_path / "chain", REGTEST)
    yield state
    state.close()


def _with_spends(chain: ChainState) -> tuple[list[Block], Block]:
    """101 blocks, then one spending the first coinbase into three outputs and one of those again."""
    blocks = mine(chain, 101, key=KEY)
    first = pay(coinbase_spendable(blocks[0], KEY), OTHER, pieces=3)
    second = pay(outputs_of(first, OTHER)[1], KEY)
    block = build_block(chain, [first, second], fees=2_000)
    assert chain.process_block(block, now=REGTEST_NOW).status == "connected"
    return blocks, block


def test_new_chain_starts_at_genesis(chain: ChainState) -> None:
    assert chain.tip.hash == REGTEST.genesis_hash
    assert chain.tip.height == 0
    assert chain.get_hash_at_height(0) == REGTEST.genesis_hash
    assert chain.get_block(REGTEST.genesis_hash) == REGTEST.genesis


def test_connect_then_reorg_away_restores_the_same_utxo_hash(chain: ChainState) -> None:
    mine(chain, 101, key=KEY)
    before = chain.utxo_set_stats()
    fork_point = chain.tip.hash
    _, spending_block = _spends_on_tip(chain)
    assert chain.utxo_set_stats() != before
    # Two empty blocks on the fork point outweigh the one block with spends and disconnect it.
    side = mine(chain, 2, key=OTHER, parent=fork_point)
    assert chain.tip.hash == side[-1].hash_bytes
    assert not chain.is_in_active_chain(spending_block.hash_bytes)
    assert chain.get_block(spending_block.hash_bytes) == spending_block
    restored = chain.utxo_set_stats()
    assert restored.count == before.count + 2
    assert restored.total_amount == before.total_amount + 2 * side[0].transactions[0].outputs[0].value


def _spends_on_tip(chain: ChainState) -> tuple[Block, Block]:
    coin = coinbase_spendable(chain.get_block(chain.get_hash_at_height(1)), KEY)
    tx = pay(coin, OTHER, pieces=2)
    block = build_block(chain, [tx], fees=1_000)
    chain.process_block(block, now=REGTEST_NOW)
    return tx, block


def test_disconnect_round_trip_gives_identical_utxo_hash(tmp_path: Path) -> None:
    """Chain A+B reorganised to A+C and back to A+B+D: the UTXO set equals a node that only saw A+B+D."""
    reorged = ChainState.open(tmp_path / "reorged", REGTEST)
    straight = ChainState.open(tmp_path / "straight", REGTEST)
    common = mine(reorged, 101, key=KEY)
    for block in common:
        straight.process_block(block, now=REGTEST_NOW)
    tx, with_spend = _spends_on_tip(reorged)
    straight.process_block(with_spend, now=REGTEST_NOW)
    side = mine(reorged, 2, key=OTHER, parent=common[-1].hash_bytes)
    assert reorged.tip.hash == side[-1].hash_bytes
    assert reorged.find_transaction(tx.hash) is None
    back = mine(reorged, 2, key=KEY, parent=with_spend.hash_bytes)
    for block in back:
        straight.process_block(block, now=REGTEST_NOW)
    assert reorged.tip.hash == straight.tip.hash == back[-1].hash_bytes
    assert reorged.utxo_set_stats() == straight.utxo_set_stats()
    assert reorged.find_transaction(tx.hash) == (tx, with_spend.hash_bytes)
    reorged.close()
    straight.close()


def test_reorg_reports_disconnected_and_connected_blocks(chain: ChainState) -> None:
    base = mine(chain, 3, key=KEY)
    old = mine(chain, 2, key=KEY)
    side = [build_block(chain, parent=base[-1].hash_bytes, key=OTHER)]
    assert chain.process_block(side[0], now=REGTEST_NOW).status == "side-chain"
    side.append(build_block(chain, parent=side[0].hash_bytes, key=OTHER))
    assert chain.process_block(side[1], now=REGTEST_NOW).status == "side-chain"  # equal work: first seen stays
    side.append(build_block(chain, parent=side[1].hash_bytes, key=OTHER))
    result = chain.process_block(side[2], now=REGTEST_NOW)
    assert result.status == "connected"
    assert result.disconnected == [old[1], old[0]]
    assert result.connected == side
    assert chain.get_hash_at_height(4) == side[0].hash_bytes


def test_duplicate_block_is_reported(chain: ChainState) -> None:
    block = mine(chain, 1)[0]
    assert chain.process_block(block, now=REGTEST_NOW).status == "duplicate"


def test_orphans_connect_when_their_parent_arrives(chain: ChainState, tmp_path: Path) -> None:
    source = ChainState.open(tmp_path / "source", REGTEST)
    blocks = mine(source, 4)
    source.close()
    for block in reversed(blocks[1:]):
        assert chain.process_block(block, now=REGTEST_NOW).status == "orphan"
    assert chain.process_block(blocks[2], now=REGTEST_NOW).status == "duplicate"
    assert len(chain.orphans) == 3
    result = chain.process_block(blocks[0], now=REGTEST_NOW)
    assert result.status == "connected"
    assert result.connected == blocks
    assert chain.tip.hash == blocks[-1].hash_bytes
    assert len(chain.orphans) == 0


def test_orphan_pool_is_bounded_and_expires(chain: ChainState, tmp_path: Path) -> None:
    source = ChainState.open(tmp_path / "source", REGTEST)
    blocks = mine(source, 5)
    source.close()
    chain.orphans.max_count = 2
    for block in blocks[1:4]:
        chain.process_block(block, now=REGTEST_NOW)
    assert blocks[1].hash_bytes not in chain.orphans  # oldest dropped when full
    assert len(chain.orphans) == 2
    chain.process_block(blocks[4], now=REGTEST_NOW + chain.orphans.expiry + 1)
    assert len(chain.orphans) == 1  # the two earlier ones expired


def test_restart_keeps_tip_and_utxo_set(tmp_path: Path) -> None:
    chain = ChainState.open(tmp_path / "chain", REGTEST)
    _with_spends(chain)
    tip, stats, locator = chain.tip.hash, chain.utxo_set_stats(), chain.locator()
    chain.close()
    reopened = ChainState.open(tmp_path / "chain", REGTEST)
    assert reopened.tip.hash == tip
    assert reopened.tip.height == 102
    assert reopened.utxo_set_stats() == stats
    assert reopened.locator() == locator
    reopened.close()


def test_reindex_rebuilds_the_same_state(chain: ChainState) -> None:
    blocks, spending = _with_spends(chain)
    mine(chain, 1, parent=blocks[-1].hash_bytes)  # a side branch the reindex must not pick
    tip, stats = chain.tip.hash, chain.utxo_set_stats()
    spent_tx = spending.transactions[1]
    chain.reindex()
    assert chain.tip.hash == tip
    assert chain.utxo_set_stats() == stats
    assert chain.find_transaction(spent_tx.hash) == (spent_tx, spending.hash_bytes)


def test_reorg_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    params = replace(REGTEST, max_reorg_depth=3)
    chain = ChainState.open(tmp_path / "chain", params)
    base = mine(chain, 1)
    mine(chain, 4)
    tip = chain.tip
    with pytest.raises(BlockRejected, match="reorg-too-deep"):
        chain.process_block(build_block(chain, parent=base[0].hash_bytes, key=OTHER), now=REGTEST_NOW)
    assert chain.tip is tip
    chain.close()


def test_block_invalid_in_the_middle_of_a_reorg_leaves_the_old_tip(chain: ChainState) -> None:
    blocks = mine(chain, 101, key=KEY)
    old = mine(chain, 2, key=KEY)
    tip, stats = chain.tip, chain.utxo_set_stats()
    side = [build_block(chain, parent=blocks[-1].hash_bytes, key=OTHER)]
    chain.process_block(side[0], now=REGTEST_NOW)
    # The second side block double-spends within itself: only found when connecting it during the reorg.
    coin = coinbase_spendable(blocks[0], KEY)
    bad = build_block(chain, [pay(coin, OTHER), pay(coin, OTHER, fee=2_000)], parent=side[0].hash_bytes, fees=3_000)
    chain.process_block(bad, now=REGTEST_NOW)  # equal work to the tip: stored, not yet connected
    heavier = build_block(chain, parent=bad.hash_bytes, key=OTHER)
    with pytest.raises(BlockRejected, match="bad-prevblk.*bad-txns-inputs-missingorspent"):
        chain.process_block(heavier, now=REGTEST_NOW)
    assert chain.tip is tip
    assert chain.utxo_set_stats() == stats
    assert chain.is_in_active_chain(old[-1].hash_bytes)
    assert chain.get_entry(bad.hash_bytes).status.failed
    assert chain.get_entry(heavier.hash_bytes).status.failed
    assert not chain.get_entry(side[0].hash_bytes).status.failed


def test_invalid_orphan_does_not_stop_its_parent_connecting(chain: ChainState) -> None:
    blocks = mine(chain, 101, key=KEY)
    side = mine(chain, 1, key=OTHER, parent=blocks[-2].hash_bytes)  # equal work to the tip: side-chain
    side_tip = build_block(chain, parent=side[0].hash_bytes, key=OTHER)
    coin = coinbase_spendable(blocks[0], KEY)
    bad = child_of(side_tip, 103, [pay(coin, OTHER), pay(coin, OTHER, fee=2_000)], fees=3_000)
    assert chain.process_block(bad, now=REGTEST_NOW).status == "orphan"
    result = chain.process_block(side_tip, now=REGTEST_NOW)
    assert result.status == "connected"
    assert result.connected == [side[0], side_tip]
    assert result.disconnected == [blocks[-1]]
    assert chain.tip.hash == side_tip.hash_bytes
    assert chain.get_entry(bad.hash_bytes).status.failed


def test_utxo_stats_count_amount_and_hash(chain: ChainState) -> None:
    empty = chain.utxo_set_stats()
    blocks = mine(chain, 2, key=KEY)
    stats = chain.utxo_set_stats()
    assert stats.count == 2
    assert stats.total_amount == sum(b.transactions[0].outputs[0].value for b in blocks)
    assert len(stats.hash) == 32 and stats.hash != empty.hash


def test_find_transaction_and_coins(chain: ChainState) -> None:
    _, spending = _with_spends(chain)
    first = spending.transactions[1]
    assert chain.find_transaction(first.hash) == (first, spending.hash_bytes)
    assert chain.find_transaction(b"\x00" * 32) is None
    assert chain.get_coin(OutPoint(first.hash, 0)).tx_out == first.outputs[0]
    assert chain.get_coin(OutPoint(first.hash, 1)) is None  # spent by the second transaction
    assert chain.get_coin(first.inputs[0].prevout) is None


def test_locator_starts_at_tip_and_ends_at_genesis(chain: ChainState) -> None:
    mine(chain, 150)
    locator = chain.locator()
    assert locator[0] == chain.tip.hash
    assert locator[-1] == REGTEST.genesis_hash
    assert len(locator) <= 101
    heights = [chain.get_entry(h).height for h in locator]
    assert heights[:12] == list(range(150, 138, -1))
    assert heights[12:15] == [137, 133, 125]
    assert heights == sorted(heights, reverse=True)


def test_second_process_on_the_same_datadir_is_refused(chain: ChainState, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="another camelidd"):
        ChainState.open(tmp_path / "chain", REGTEST)


def test_datadir_of_another_network_is_refused(tmp_path: Path) -> None:
    ChainState.open(tmp_path / "chain", REGTEST).close()
    with pytest.raises(StorageError, match="regtest"):
        ChainState.open(tmp_path / "chain", TESTNET)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_decode_to_a_block_or_raise_value_error(data: bytes) -> None:
    try:
        block = Block.from_bytes(data)
    except ValueError:
        return
    assert block.to_bytes() == data
