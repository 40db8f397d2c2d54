"""Relative lock times (BIP68) and OP_CHECKSEQUENCEVERIFY (BIP112) on a real chain state and mempool.

Every lock is tried one block (or one second of median time past) too early, where blocks refuse it
as bad-txns-nonfinal and the mempool as non-BIP68-final, and then exactly when it opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from chain_helpers import (
    REGTEST_NOW,
    Spendable,
    build_block,
    coinbase_spendable,
    make_key,
    mine,
    outputs_of,
    p2pkh_for,
    pay,
    spend,
)

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import BlockRejected, TxRejected
from camelid.chain.mempool import Mempool
from camelid.core.block import Block
from camelid.core.consensus import SEQUENCE_LOCKTIME_DISABLE_FLAG, SEQUENCE_LOCKTIME_TYPE_FLAG
from camelid.core.opcodes import Opcode
from camelid.core.params import REGTEST
from camelid.core.script import build_script, p2pkh_script_sig
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut

KEY = make_key(1)
OTHER = make_key(2)
FEE = 1_000


class World:
    """A regtest chain whose coinbases of heights 1..10 are mature, and a mempool on it."""

    def __init__(self, path: Path) -> None:
        self.chain = ChainState.open(path, REGTEST)
        self.blocks = mine(self.chain, 110, key=KEY)
        self.pool = Mempool(self.chain)

    def coinbase(self, height: int) -> Spendable:
        return coinbase_spendable(self.blocks[height - 1], KEY)

    def confirm(self, txs: Sequence[Transaction]) -> Block:
        """Mine `txs` (each paying FEE) in the next block, which must connect."""
        block = build_block(self.chain, txs, fees=FEE * len(txs))
        assert self.chain.process_block(block, now=REGTEST_NOW).status == "connected"
        return block

    def fund(self, height: int, pieces: int = 1) -> tuple[list[Spendable], int]:
        """Outputs of a transaction confirmed in the next block, and that block's height."""
        tx = pay(self.coinbase(height), KEY, fee=FEE, pieces=pieces)
        self.confirm([tx])
        return outputs_of(tx, KEY), self.chain.tip.height

    def pool_reason(self, tx: Transaction) -> str:
        with pytest.raises(TxRejected) as caught:
            self.pool.accept(tx, now=REGTEST_NOW)
        return caught.value.reason

    def block_reason(self, txs: Sequence[Transaction]) -> str:
        tip = self.chain.tip
        with pytest.raises(BlockRejected) as caught:
            self.chain.process_block(build_block(self.chain, txs, fees=FEE * len(txs)), now=REGTEST_NOW)
        assert self.chain.tip is tip
        return caught.value.reason

    def median_time_past(self) -> int:
        return self.chain.median_time_past(self.chain.tip)

    def raise_median_time_past(self, target: int) -> None:
        """Mine blocks stamped `target` until the tip's median time past is `target` (at most 6)."""
        while self.median_time_past() < target:
            block = build_block(self.chain, time=target)
            assert self.chain.process_block(block, now=REGTEST_NOW).status == "connected"


@pytest.fixture
def world(tmp_path: Path) -> World:
    w = World(tmp_path / "chain")
    yield w
    w.chain.close()


def locked_spend(coin: Spendable, sequence: int, version: int = 2) -> Transaction:
    return spend([coin], [TxOut(coin.value - FEE, p2pkh_for(OTHER))], sequence=sequence, version=version)


def test_a_height_lock_opens_exactly_n_blocks_after_the_coins_block(world: World) -> None:
    [coin], height = world.fund(1)
    tx = locked_spend(coin, 5)
    mine(world.chain, 3)  # the next block, at height + 4, is one too early
    assert world.pool_reason(tx) == "non-BIP68-final"
    assert world.block_reason([tx]) == "bad-txns-nonfinal"
    mine(world.chain, 1)
    world.pool.accept(tx, now=REGTEST_NOW)
    assert world.confirm([tx]).transactions[1] == tx
    assert world.chain.tip.height == height + 5


def test_the_longest_input_lock_holds_the_whole_transaction(world: World) -> None:
    [short, long], _ = world.fund(1, pieces=2)
    tx = spend([short, long], [TxOut(short.value + long.value - FEE, p2pkh_for(OTHER))], sequence=[1, 3], version=2)
    mine(world.chain, 1)
    assert world.pool_reason(tx) == "non-BIP68-final"
    mine(world.chain, 1)
    world.pool.accept(tx, now=REGTEST_NOW)


def test_a_time_lock_counts_512_second_units_from_the_median_time_past_before_the_coins_block(world: World) -> None:
    [coin], _ = world.fund(1)
    start = world.chain.median_time_past(world.chain.get_entry(world.chain.tip.header.prev_hash))
    tx = locked_spend(coin, SEQUENCE_LOCKTIME_TYPE_FLAG | 2)
    opens = start + 2 * 512  # a block whose parent's median time past is this may include it
    world.raise_median_time_past(opens - 1)
    assert world.pool_reason(tx) == "non-BIP68-final"
    assert world.block_reason([tx]) == "bad-txns-nonfinal"
    world.raise_median_time_past(opens)
    world.pool.accept(tx, now=REGTEST_NOW)
    world.confirm([tx])


@pytest.mark.parametrize(
    ("sequence", "version"),
    [
        (SEQUENCE_LOCKTIME_DISABLE_FLAG | 5, 2),  # the input opted out
        (5, 1),  # BIP68 does not apply to version 1
        (SEQUENCE_LOCKTIME_DISABLE_FLAG | SEQUENCE_LOCKTIME_TYPE_FLAG | 0xFFFF, 2),
        (SEQUENCE_LOCKTIME_TYPE_FLAG | 0xFFFF, 1),
    ],
)
def test_disabled_inputs_and_version_1_are_not_locked(world: World, sequence: int, version: int) -> None:
    [coin], _ = world.fund(1)
    tx = locked_spend(coin, sequence, version)
    world.pool.accept(tx, now=REGTEST_NOW)
    world.confirm([tx])


def test_a_coin_of_the_same_block_or_the_pool_counts_as_mined_in_the_next_block(world: World) -> None:
    parent = pay(world.coinbase(1), KEY, fee=FEE, pieces=3)
    free, by_height, by_time = outputs_of(parent, KEY)
    unlocked = locked_spend(free, 0)
    one_block = locked_spend(by_height, 1)
    one_unit = locked_spend(by_time, SEQUENCE_LOCKTIME_TYPE_FLAG | 1)
    world.pool.accept(parent, now=REGTEST_NOW)
    assert world.pool_reason(one_block) == "non-BIP68-final"
    assert world.pool_reason(one_unit) == "non-BIP68-final"
    world.pool.accept(unlocked, now=REGTEST_NOW)
    assert world.block_reason([parent, one_block]) == "bad-txns-nonfinal"
    assert world.block_reason([parent, one_unit]) == "bad-txns-nonfinal"
    block = world.confirm([parent, unlocked])
    world.pool.remove_for_block(block)
    world.pool.accept(one_block, now=REGTEST_NOW)  # the next block is one after its coin's


def test_a_reorg_that_mines_the_coin_later_evicts_its_locked_spend(world: World) -> None:
    fork = world.chain.tip
    funding = pay(world.coinbase(1), KEY, fee=FEE)
    world.confirm([funding])  # the coin at fork + 1
    [coin] = outputs_of(funding, KEY)
    tx = locked_spend(coin, 3)
    mine(world.chain, 2)
    world.pool.accept(tx, now=REGTEST_NOW)  # the next block, fork + 4, is 3 after the coin's
    side = fork.hash
    for txs in ([], [], [funding], []):  # the coin at fork + 3 on a branch one block longer
        block = build_block(world.chain, txs, parent=side, fees=FEE * len(txs))
        result = world.chain.process_block(block, now=REGTEST_NOW)
        side = block.hash_bytes
    assert world.chain.tip.hash == side and len(result.disconnected) == 3
    for block in result.connected:
        world.pool.remove_for_block(block)
    world.pool.add_disconnected(result.disconnected, now=REGTEST_NOW)
    assert tx.hash not in world.pool  # the next block, fork + 5, is only 2 after the coin's
    assert world.pool_reason(tx) == "non-BIP68-final"
    mine(world.chain, 1)
    world.pool.accept(tx, now=REGTEST_NOW)


CSV_SCRIPT = build_script(5, Opcode.OP_CHECKSEQUENCEVERIFY, Opcode.OP_DROP) + p2pkh_for(KEY)


def csv_spend(funding: Transaction, sequence: int, version: int = 2) -> Transaction:
    """Spend output 0 of `funding`, locked by CSV_SCRIPT, to OTHER."""
    value = funding.outputs[0].value
    unsigned = Transaction(version, [TxIn(funding.hash, 0, b"", sequence)], [TxOut(value - FEE, p2pkh_for(OTHER))])
    sig = KEY.sign(unsigned.signature_hash(0, CSV_SCRIPT, value)) + bytes([SIGHASH_ALL])
    script_sig = p2pkh_script_sig(sig, KEY.public_key.to_bytes())
    return replace(unsigned, inputs=(replace(unsigned.inputs[0], script_sig=script_sig),))


def test_a_csv_output_is_spendable_only_by_a_version_2_input_locked_at_least_as_long(world: World) -> None:
    coin = world.coinbase(1)
    funding = spend([coin], [TxOut(coin.value - FEE, CSV_SCRIPT)])
    world.confirm([funding])
    mine(world.chain, 3)  # the next block is 4 after the coin's
    unsatisfied = "mandatory-script-verify-flag-failed (UNSATISFIED_LOCKTIME)"
    assert world.pool_reason(csv_spend(funding, 4)) == unsatisfied  # its BIP68 lock opens, CSV wants 5
    assert world.block_reason([csv_spend(funding, 4)]) == unsatisfied
    assert world.pool_reason(csv_spend(funding, 5, version=1)) == unsatisfied
    assert world.pool_reason(csv_spend(funding, SEQUENCE_LOCKTIME_DISABLE_FLAG | 5)) == unsatisfied
    assert world.pool_reason(csv_spend(funding, SEQUENCE_LOCKTIME_TYPE_FLAG)) == unsatisfied  # time, not blocks
    good = csv_spend(funding, 5)
    assert world.pool_reason(good) == "non-BIP68-final"
    mine(world.chain, 1)
    world.pool.accept(good, now=REGTEST_NOW)
    world.confirm([good])
    assert world.chain.get_coin(OutPoint(good.hash, 0)) is not None
