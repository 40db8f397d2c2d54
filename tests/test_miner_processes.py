"""The miner's worker processes: finding blocks, extra-nonce roll-over, abandoning stale work, shutdown.

GrindChain stands in for the chain service so the difficulty can be chosen freely
(1 in 1024, or practically impossible) and templates are deterministic.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator, Callable

import pytest

from camelid.core.block import Block, BlockHeader
from camelid.core.pow import bits_to_target
from camelid.core.script import push_int
from camelid.core.transaction import NULL_HASH, NULL_INDEX, Transaction, TxIn, TxOut
from camelid.crypto.merkle import merkle_root
from camelid.node.bus import EventBus
from camelid.node.events import TipChanged
from camelid.node.miner import Miner
from camelid.node.mining_worker import scan

ONE_IN_1024_BITS = 0x1F400000
IMPOSSIBLE_BITS = 0x03000001  # target 1
TEMPLATE_TIME = 1_795_565_000
PAYOUT = bytes.fromhex("76a914") + bytes(range(20)) + bytes.fromhex("88ac")
OTHER_PAYOUT = bytes.fromhex("51")
HUGE_CHUNK = 1 << 30  # minutes of hashing per job: only the abandon flag can end one within a test


class GrindChain:
    """A MiningChain with a chosen difficulty that records templates and accepts every solved block."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.tip_hash = bytes(32)
        self.bits_by_payout: dict[bytes, int] = {}  # other difficulties for templates paying these scripts
        self.parent_override: bytes | None = None  # build templates on this instead of the tip
        self.templates: list[tuple[bytes, int]] = []  # (parent, extra nonce) of each template handed out
        self.payouts: list[bytes] = []  # the coinbase script of each template
        self.submitted: list[Block] = []

    async def block_template(self, coinbase_script: bytes, extra_nonce: int) -> Block:
        parent = self.parent_override or self.tip_hash
        self.templates.append((parent, extra_nonce))
        self.payouts.append(coinbase_script)
        bits = self.bits_by_payout.get(coinbase_script, self.bits)
        return template_block(parent, len(self.submitted) + 1, extra_nonce, bits, coinbase_script)

    async def submit_block(self, block: Block) -> None:
        self.submitted.append(block)
        self.tip_hash = block.hash_bytes


def template_block(parent: bytes, height: int, extra_nonce: int, bits: int, payout: bytes) -> Block:
    script_sig = push_int(height) + push_int(extra_nonce)
    coinbase = Transaction(inputs=(TxIn(NULL_HASH, NULL_INDEX, script_sig),), outputs=(TxOut(50, payout),))
    header = BlockHeader(1, parent, merkle_root([coinbase.hash]), TEMPLATE_TIME, bits, 0)
    return Block(header, (coinbase,))


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    bus = EventBus()
    yield bus
    await bus.close()


@pytest.fixture
async def make_miner(bus) -> AsyncIterator[Callable[..., Miner]]:
    """Miners on the test's bus, closed (worker processes joined) when the test ends."""
    miners: list[Miner] = []

    def make(chain: GrindChain, coinbase_script: bytes | None = None, **settings) -> Miner:
        miners.append(Miner(bus, chain, coinbase_script, **settings))
        return miners[-1]

    yield make
    for miner in miners:
        await miner.close()


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def cancel_and_wait(task: asyncio.Task, timeout: float = 5.0) -> None:
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=timeout)
    assert task in done, "the miner did not stop within the timeout"
    assert task.cancelled()


async def test_generate_mines_a_chain_of_blocks_meeting_the_target(make_miner):
    chain = GrindChain(ONE_IN_1024_BITS)
    miner = make_miner(chain, None, processes=2)
    hashes = await miner.generate(3, PAYOUT)
    assert hashes == [block.hash_bytes for block in chain.submitted]
    parents = [bytes(32)] + hashes[:-1]
    for block, parent in zip(chain.submitted, parents, strict=True):
        assert block.header.prev_hash == parent
        assert block.header.check_pow(bits_to_target(ONE_IN_1024_BITS))
        assert block.transactions[0].outputs[0].script_pubkey == PAYOUT
    assert miner.hashrate > 0


async def test_used_up_nonce_space_moves_on_to_the_next_extra_nonce(make_miner):
    nonce_space = 16
    target = bits_to_target(ONE_IN_1024_BITS)
    expected_extra_nonce = 0
    while True:  # the templates are deterministic: find the first one with a hit among its 16 nonces
        header = template_block(bytes(32), 1, expected_extra_nonce, ONE_IN_1024_BITS, PAYOUT).header
        expected_nonce, _ = scan(header.to_bytes()[:76], target, 0, nonce_space)
        if expected_nonce is not None:
            break
        expected_extra_nonce += 1
    assert expected_extra_nonce > 0

    chain = GrindChain(ONE_IN_1024_BITS)
    miner = make_miner(chain, None, processes=1, nonce_space=nonce_space, chunk=4)
    [block_hash] = await miner.generate(1, PAYOUT)
    assert chain.templates == [(bytes(32), n) for n in range(expected_extra_nonce + 1)]
    [block] = chain.submitted
    assert block.hash_bytes == block_hash
    assert block.header.nonce == expected_nonce
    assert block.transactions[0].inputs[0].script_sig == push_int(1) + push_int(expected_extra_nonce)


async def test_cancelling_run_stops_the_workers_promptly_and_reaps_them(make_miner):
    before = set(multiprocessing.active_children())
    chain = GrindChain(IMPOSSIBLE_BITS)
    miner = make_miner(chain, PAYOUT, processes=2, chunk=HUGE_CHUNK)
    task = asyncio.create_task(miner.run())
    await wait_until(lambda: len(set(multiprocessing.active_children()) - before) == 2)
    await asyncio.sleep(0.2)  # let the workers get into their jobs
    await cancel_and_wait(task)
    assert set(multiprocessing.active_children()) - before == set()
    assert chain.submitted == []


async def test_a_new_tip_abandons_the_stale_template_at_once(bus, make_miner):
    chain = GrindChain(IMPOSSIBLE_BITS)
    miner = make_miner(chain, PAYOUT, processes=2, chunk=HUGE_CHUNK)
    task = asyncio.create_task(miner.run())
    try:
        await wait_until(lambda: len(chain.templates) == 1)
        await asyncio.sleep(0.2)
        new_tip = bytes([7]) * 32
        chain.tip_hash = new_tip
        await bus.publish(TipChanged(new_tip, 1))
        await wait_until(lambda: len(chain.templates) == 2, timeout=5)
        assert chain.templates[1] == (new_tip, 0)
    finally:
        await cancel_and_wait(task)


async def test_generate_takes_over_from_run_between_blocks(make_miner):
    chain = GrindChain(ONE_IN_1024_BITS)
    chain.bits_by_payout[PAYOUT] = IMPOSSIBLE_BITS  # run() alone would grind for ever
    miner = make_miner(chain, PAYOUT, processes=2, chunk=HUGE_CHUNK)
    task = asyncio.create_task(miner.run())
    try:
        await wait_until(lambda: len(chain.templates) == 1)
        hashes = await asyncio.wait_for(miner.generate(2, OTHER_PAYOUT), timeout=5)
        assert hashes == [block.hash_bytes for block in chain.submitted]
        assert [block.transactions[0].outputs[0].script_pubkey for block in chain.submitted] == [OTHER_PAYOUT] * 2
        await wait_until(lambda: chain.payouts[-1] == PAYOUT)  # run() is back at work on the new tip
        assert chain.templates[-1] == (hashes[-1], 0)
    finally:
        await cancel_and_wait(task)


async def test_generate_keeps_the_workers_for_the_next_call_until_close(make_miner):
    before = set(multiprocessing.active_children())
    miner = make_miner(GrindChain(ONE_IN_1024_BITS), processes=2)
    await miner.generate(1, PAYOUT)
    workers = set(multiprocessing.active_children()) - before
    assert len(workers) == 2
    await miner.generate(1, PAYOUT)
    assert set(multiprocessing.active_children()) - before == workers
    await miner.close()
    assert set(multiprocessing.active_children()) - before == set()
    assert not any(worker.is_alive() for worker in workers)


async def test_a_block_solved_on_a_parent_that_is_no_longer_the_tip_is_dropped(make_miner):
    chain = GrindChain(ONE_IN_1024_BITS)
    chain.parent_override = bytes([9]) * 32
    miner = make_miner(chain, None, processes=2)
    assert await miner.generate(1, PAYOUT, max_tries=20_000) == []
    assert chain.submitted == []
    assert len(chain.templates) >= 1


async def test_max_tries_ends_generate_without_a_block(make_miner):
    chain = GrindChain(IMPOSSIBLE_BITS)
    miner = make_miner(chain, None, processes=2, chunk=1000)
    assert await miner.generate(2, PAYOUT, max_tries=5500) == []
    assert len(chain.templates) == 1
    assert chain.submitted == []


async def test_run_needs_a_coinbase_script(make_miner):
    miner = make_miner(GrindChain(ONE_IN_1024_BITS), None, processes=1)
    with pytest.raises(ValueError, match="coinbase script"):
        await miner.run()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"processes": 0}, "at least 1 process"),
        ({"nonce_space": 0}, "nonce space"),
        ({"nonce_space": (1 << 32) + 1}, "nonce space"),
        ({"chunk": 0}, "chunk"),
    ],
)
async def test_miner_settings_are_checked(make_miner, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_miner(GrindChain(ONE_IN_1024_BITS), None, **kwargs)


@pytest.mark.parametrize(("n", "max_tries", "message"), [(-1, None, "block count"), (1, 0, "max_tries")])
async def test_generate_arguments_are_checked(make_miner, n, max_tries, message):
    miner = make_miner(GrindChain(ONE_IN_1024_BITS), None, processes=1)
    with pytest.raises(ValueError, match=message):
        await miner.generate(n, PAYOUT, max_tries)
