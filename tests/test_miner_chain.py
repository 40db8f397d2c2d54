"""The miner against a real in-process chain: regtest chain state, mempool and chain service."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from camelid.chain.validation import coinbase_height_prefix
from camelid.core.params import REGTEST, ChainParams
from camelid.core.pow import bits_to_target
from camelid.core.script import push_int
from camelid.node.bus import EventBus
from camelid.node.chain_service import ChainService
from camelid.node.events import TipChanged
from camelid.node.miner import Miner
from camelid.node.mining_worker import NONCE_LIMIT, scan

PAYOUT = bytes.fromhex("76a914") + bytes(range(20)) + bytes.fromhex("88ac")
ONE_IN_1024_BITS = 0x1F400000


def one_in_1024_regtest() -> ChainParams:
    """Regtest at a difficulty where a hit takes about a thousand tries, with a genesis that meets it."""
    params = replace(REGTEST, genesis_bits=ONE_IN_1024_BITS, pow_limit_bits=ONE_IN_1024_BITS)
    nonce, _ = scan(params.genesis.header.to_bytes()[:76], bits_to_target(ONE_IN_1024_BITS), 0, NONCE_LIMIT)
    assert nonce is not None
    return replace(params, genesis_nonce=nonce)


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    bus = EventBus()
    yield bus
    await bus.close()


async def open_chain(tmp_path, bus: EventBus, params: ChainParams = REGTEST) -> ChainService:
    return await ChainService.open(tmp_path / "chain", params, bus, mempool_bytes=10_000_000)


async def test_generate_extends_the_active_chain(tmp_path, bus):
    chain = await open_chain(tmp_path, bus)
    tips: list[int] = []

    async def on_tip(event: TipChanged) -> None:
        tips.append(event.height)

    bus.subscribe(TipChanged, on_tip)
    miner = Miner(bus, chain, None, processes=2)
    try:
        hashes = await miner.generate(5, PAYOUT)
        await bus.drain()
        state = chain.chainstate
        assert state.tip.height == 5
        assert hashes == [state.get_hash_at_height(h) for h in range(1, 6)]
        assert tips == [1, 2, 3, 4, 5]
        for height, block_hash in enumerate(hashes, start=1):
            block = state.get_block(block_hash)
            coinbase = block.transactions[0]
            assert coinbase.outputs[0].script_pubkey == PAYOUT
            assert coinbase.inputs[0].script_sig.startswith(coinbase_height_prefix(height))
    finally:
        await miner.close()
        await chain.close()


async def test_the_extra_nonce_moves_on_when_the_nonce_space_runs_out(tmp_path, bus):
    # One nonce per template: every block needs about a thousand templates, told apart only by the extra nonce.
    chain = await open_chain(tmp_path, bus, one_in_1024_regtest())
    miner = Miner(bus, chain, None, processes=2, nonce_space=1)
    try:
        hashes = await miner.generate(3, PAYOUT)
        blocks = [chain.chainstate.get_block(block_hash) for block_hash in hashes]
        assert chain.chainstate.tip.height == 3
        assert all(block.header.nonce == 0 for block in blocks)
        extra_nonce_pushes = [
            block.transactions[0].inputs[0].script_sig.removeprefix(coinbase_height_prefix(height))
            for height, block in enumerate(blocks, start=1)
        ]
        assert any(push != push_int(0) for push in extra_nonce_pushes)  # all three at extra nonce 0: p = 2**-30
    finally:
        await miner.close()
        await chain.close()


async def test_run_mines_on_each_new_tip_until_cancelled(tmp_path, bus):
    before = set(multiprocessing.active_children())
    chain = await open_chain(tmp_path, bus)
    miner = Miner(bus, chain, PAYOUT, processes=2)
    try:
        task = asyncio.create_task(miner.run())
        async with asyncio.timeout(10):
            while chain.chainstate.tip.height < 4:
                await asyncio.sleep(0.01)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=5)
        assert task in done and task.cancelled()
        assert set(multiprocessing.active_children()) - before == set()
        state = chain.chainstate
        height = state.tip.height
        blocks = [state.get_block(state.get_hash_at_height(h)) for h in range(1, height + 1)]
        assert [block.header.prev_hash for block in blocks] == [state.get_hash_at_height(h) for h in range(height)]
        assert miner.hashrate > 0
    finally:
        await miner.close()
        await chain.close()
