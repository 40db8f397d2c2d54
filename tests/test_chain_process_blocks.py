"""ChainState.process_blocks: a run of blocks behaves as one process_block call per block, with one fsync."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chain_helpers import REGTEST_NOW, build_block, child_of, make_key, mine, p2pkh_for

from camelid.chain.chainstate import BlockResult, ChainState
from camelid.chain.errors import BlockRejected
from camelid.chain.storage import KeyValueStore, LevelDBStore, StorageError, WriteBatch
from camelid.chain.template import make_coinbase
from camelid.core.block import Block
from camelid.core.consensus import block_subsidy
from camelid.core.params import REGTEST

KEY = make_key(1)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[ChainState]:
    state = ChainState.open(tmp_path / "source", REGTEST)
    yield state
    state.close()


def outcome(result: BlockResult | BlockRejected) -> str:
    return f"rejected {result.reason}" if isinstance(result, BlockRejected) else result.status


def one_at_a_time(chain: ChainState, blocks: list[Block]) -> list[str]:
    outcomes = []
    for block in blocks:
        try:
            outcomes.append(outcome(chain.process_block(block, now=REGTEST_NOW)))
        except BlockRejected as rejected:
            outcomes.append(outcome(rejected))
    return outcomes


def test_an_invalid_block_in_a_run_is_refused_with_its_reason_and_the_blocks_before_it_stay(
    source: ChainState, tmp_path: Path
) -> None:
    valid = mine(source, 5, key=KEY)
    height = source.tip.height + 1
    greedy = make_coinbase(height, 0, p2pkh_for(KEY), block_subsidy(height) + 1)
    bad = build_block(source, coinbase=greedy)  # found out only when connected
    after_bad = child_of(bad, height + 1)
    unparsed = build_block(source, merkle=bytes(32), parent=valid[1].hash_bytes)  # found out before storing
    run = [*valid[:3], unparsed, *valid[3:], valid[0], bad, after_bad]

    batched = ChainState.open(tmp_path / "batched", REGTEST)
    outcomes = [outcome(result) for result in batched.process_blocks(run, now=REGTEST_NOW)]
    assert outcomes == [
        *["connected"] * 3, "rejected bad-txnmrklroot", *["connected"] * 2, "duplicate",
        "rejected bad-cb-amount", "rejected bad-prevblk",
    ]  # fmt: skip
    straight = ChainState.open(tmp_path / "straight", REGTEST)
    assert one_at_a_time(straight, run) == outcomes
    assert batched.tip.hash == straight.tip.hash == valid[-1].hash_bytes
    assert batched.utxo_set_stats() == straight.utxo_set_stats()
    assert batched.get_entry(bad.hash_bytes).status.failed
    stats = batched.utxo_set_stats()
    straight.close()
    batched.close()

    reopened = ChainState.open(tmp_path / "batched", REGTEST)
    assert reopened.tip.hash == valid[-1].hash_bytes
    assert reopened.utxo_set_stats() == stats
    reopened.close()


class DyingStore(KeyValueStore):
    """A LevelDB store that records whether each write was synced, and fails them from the `survive`+1-th on."""

    def __init__(self, inner: LevelDBStore, survive: int = 1 << 30) -> None:
        self.inner = inner
        self.left = survive
        self.synced: list[bool] = []

    def get(self, key: bytes) -> bytes | None:
        return self.inner.get(key)

    def put(self, key: bytes, value: bytes, sync: bool = False) -> None:
        raise AssertionError("the chain state writes batches only")

    def delete(self, key: bytes, sync: bool = False) -> None:
        raise AssertionError("the chain state writes batches only")

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return self.inner.iterate(prefix)

    def write(self, batch: WriteBatch, sync: bool = False) -> None:
        if self.left == 0:
            raise StorageError("killed")
        self.left -= 1
        self.synced.append(sync)
        self.inner.write(batch, sync)

    def close(self) -> None:
        self.inner.close()


def test_a_run_of_blocks_is_synced_to_disk_once(source: ChainState, tmp_path: Path) -> None:
    blocks = mine(source, 5, key=KEY)
    ChainState.open(tmp_path / "chain", REGTEST).close()
    store = DyingStore(LevelDBStore(tmp_path / "chain"))
    chain = ChainState(store, REGTEST)
    store.synced.clear()
    assert [outcome(result) for result in chain.process_blocks(blocks, now=REGTEST_NOW)] == ["connected"] * 5
    assert store.synced.count(True) == 1
    assert store.synced[-1]  # after everything else
    chain.close()


@pytest.mark.parametrize("survive", [0, 1, 2, 5, 8])
def test_a_run_cut_short_leaves_the_chain_state_of_a_prefix_of_its_blocks(
    source: ChainState, tmp_path: Path, survive: int
) -> None:
    blocks = mine(source, 4, key=KEY)
    ChainState.open(tmp_path / "cut", REGTEST).close()  # the genesis block is written
    cut = ChainState(DyingStore(LevelDBStore(tmp_path / "cut"), survive), REGTEST)
    with pytest.raises(StorageError, match="killed"):
        cut.process_blocks(blocks, now=REGTEST_NOW)
    cut.close()

    reopened = ChainState.open(tmp_path / "cut", REGTEST)
    height = reopened.tip.height
    assert reopened.tip.hash == (blocks[height - 1].hash_bytes if height else REGTEST.genesis_hash)
    reference = ChainState.open(tmp_path / "reference", REGTEST)
    for block in blocks[:height]:
        reference.process_block(block, now=REGTEST_NOW)
    assert reopened.utxo_set_stats() == reference.utxo_set_stats()
    reference.close()
    reopened.close()
