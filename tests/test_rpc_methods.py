"""RPC methods against a real regtest chain: results in Bitcoin Core's shapes, errors with its codes."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from decimal import Decimal

import pytest
from chain_helpers import build_block, coinbase_spendable, make_key, outputs_of, p2pkh_for, pay, solve, spend
from functional.inprocess import TEST_CREDENTIALS, basic_auth, rpc_harness

from camelid.core.block import Block
from camelid.core.transaction import OutPoint, TxOut
from camelid.node.events import ShutdownRequested
from camelid.rpc.client import JSONRPCError

KEY = make_key(1)
ADDRESS = KEY.public_key.address("regtest")


@pytest.fixture
async def rpc(tmp_path):
    async with rpc_harness(tmp_path) as harness:
        yield harness


def next_block(rpc, txs=(), **overrides) -> Block:
    """A valid block on the tip (or `parent`) paying KEY, stamped with the current time."""
    chainstate = rpc.chain.chainstate
    parent = chainstate.get_entry(overrides.get("parent", chainstate.tip.hash))
    stamp = max(int(time.time()), parent.header.time + 1)
    return build_block(chainstate, txs, key=KEY, time=stamp, **overrides)


async def submit_blocks(rpc, count: int) -> list[Block]:
    blocks = []
    for _ in range(count):
        block = next_block(rpc)
        assert await rpc.call("submitblock", block.to_bytes().hex()) is None
        blocks.append(block)
    return blocks


async def expect_error(rpc, code: int, method: str, *params) -> str:
    with pytest.raises(JSONRPCError) as info:
        await rpc.call(method, *params)
    assert info.value.code == code, info.value.message
    return info.value.message


async def test_block_queries_follow_the_tip(rpc):
    blocks = await submit_blocks(rpc, 3)
    assert await rpc.call("getblockcount") == 3
    assert await rpc.call("getbestblockhash") == blocks[-1].hash()
    assert await rpc.call("getblockhash", 2) == blocks[1].hash()

    raw = await rpc.call("getblock", blocks[1].hash(), 0)
    assert Block.from_bytes(bytes.fromhex(raw)) == blocks[1]
    summary = await rpc.call("getblock", blocks[1].hash())
    assert summary["height"] == 2
    assert summary["confirmations"] == 2
    assert summary["tx"] == [blocks[1].transactions[0].txid()]
    assert summary["previousblockhash"] == blocks[0].hash()
    assert summary["nextblockhash"] == blocks[2].hash()
    detailed = await rpc.call("getblock", blocks[1].hash(), 2)
    assert detailed["tx"][0]["vout"][0]["scriptPubKey"]["address"] == ADDRESS
    assert detailed["tx"][0]["vout"][0]["value"] == Decimal("50.00000000")

    header = await rpc.call("getblockheader", blocks[2].hash())
    assert "nextblockhash" not in header and header["confirmations"] == 1
    assert await rpc.call("getblockheader", blocks[2].hash(), False) == blocks[2].header.to_bytes().hex()

    info = await rpc.call("getblockchaininfo")
    assert (info["chain"], info["blocks"], info["bestblockhash"]) == ("regtest", 3, blocks[-1].hash())
    assert await rpc.call("getdifficulty") == 1.0


async def test_amounts_are_written_with_eight_decimals(rpc):
    await submit_blocks(rpc, 1)
    _, reply = await rpc.post(json.dumps({"id": 1, "method": "gettxoutsetinfo"}))
    assert reply["result"]["total_amount"] == Decimal("50.00000000")
    request = json.dumps({"id": 1, "method": "gettxoutsetinfo"})
    async with rpc.session.post(rpc.url, data=request, headers={"Authorization": basic_auth(TEST_CREDENTIALS)}) as r:
        assert '"total_amount":50.00000000' in await r.text()


@pytest.mark.parametrize(
    ("params", "code", "fragment"),
    [
        (["zz"], -8, "must be hexadecimal string"),
        (["ab" * 31], -8, "must be of length 64"),
        (["00" * 32], -5, "Block not found"),
    ],
)
async def test_getblock_rejects_bad_hashes(rpc, params, code, fragment):
    assert fragment in await expect_error(rpc, code, "getblock", *params)


async def test_getblock_rejects_unknown_verbosity(rpc):
    genesis = await rpc.call("getblockhash", 0)
    await expect_error(rpc, -8, "getblock", genesis, 3)


async def test_getblockhash_out_of_range(rpc):
    assert await expect_error(rpc, -8, "getblockhash", 1) == "Block height out of range"
    await expect_error(rpc, -8, "getblockhash", -1)


async def test_submitblock_reports_bip22_results_and_changes_nothing_on_rejection(rpc):
    (first,) = await submit_blocks(rpc, 1)
    assert await rpc.call("submitblock", first.to_bytes().hex()) == "duplicate"

    genesis = rpc.chain.params.genesis_hash
    side = next_block(rpc, parent=genesis, extra_nonce=7)
    assert await rpc.call("submitblock", side.to_bytes().hex()) == "inconclusive"

    bad = next_block(rpc, merkle=bytes(32))
    assert await rpc.call("submitblock", bad.to_bytes().hex()) == "bad-txnmrklroot"
    template = next_block(rpc, solved=False)
    orphan = solve(replace(template, header=replace(template.header, prev_hash=bytes(range(32)))), 1 << 255)
    assert await rpc.call("submitblock", orphan.to_bytes().hex()) == "inconclusive"

    for junk in ("", "zz", "00" * 79, first.to_bytes().hex() + "00"):
        await expect_error(rpc, -22, "submitblock", junk)
    assert await rpc.call("getbestblockhash") == first.hash()


async def test_transactions_through_mempool_and_into_a_block(rpc):
    blocks = await submit_blocks(rpc, 101)  # the first coinbase matures at height 101
    coin = coinbase_spendable(blocks[0], KEY)
    tx = pay(coin, make_key(2))
    immature = pay(coinbase_spendable(blocks[50], KEY), make_key(2))

    assert "premature" in await expect_error(rpc, -26, "sendrawtransaction", immature.to_bytes().hex())
    missing = spend([replace(coin, outpoint=OutPoint(bytes(32), 5))], [TxOut(1, b"\x51")])
    await expect_error(rpc, -25, "sendrawtransaction", missing.to_bytes().hex())
    for junk in ("", "zz", "0100"):
        await expect_error(rpc, -22, "sendrawtransaction", junk)
        await expect_error(rpc, -22, "decoderawtransaction", junk)

    assert await rpc.call("sendrawtransaction", tx.to_bytes().hex()) == tx.txid()
    assert await rpc.call("sendrawtransaction", tx.to_bytes().hex()) == tx.txid()  # resubmitting is harmless
    assert await rpc.call("getrawmempool") == [tx.txid()]
    verbose_pool = await rpc.call("getrawmempool", True)
    assert verbose_pool[tx.txid()]["fee"] == Decimal("0.00001000")
    assert (await rpc.call("getmempoolinfo"))["size"] == 1
    assert await rpc.call("getrawtransaction", tx.txid()) == tx.to_bytes().hex()
    spent = coin.outpoint
    assert await rpc.call("gettxout", spent.txid[::-1].hex(), 0) is None
    assert (await rpc.call("gettxout", spent.txid[::-1].hex(), 0, False))["coinbase"] is True
    assert (await rpc.call("gettxout", tx.txid(), 0))["confirmations"] == 0

    mined = next_block(rpc, [tx], fees=1000)
    assert await rpc.call("submitblock", mined.to_bytes().hex()) is None
    assert await rpc.call("getrawmempool") == []
    found = await rpc.call("getrawtransaction", tx.txid(), True)
    assert (found["blockhash"], found["confirmations"]) == (mined.hash(), 1)
    assert found["vin"][0]["txid"] == coin.outpoint.txid[::-1].hex()
    out = await rpc.call("gettxout", tx.txid(), 0)
    assert (out["confirmations"], out["value"]) == (1, Decimal("49.99999000"))
    await expect_error(rpc, -27, "sendrawtransaction", tx.to_bytes().hex())
    await expect_error(rpc, -5, "getrawtransaction", "00" * 32)


async def test_a_relative_lock_is_refused_by_sendrawtransaction_and_submitblock_until_it_opens(rpc):
    blocks = await submit_blocks(rpc, 101)
    funding = pay(coinbase_spendable(blocks[0], KEY), KEY)
    assert await rpc.call("submitblock", next_block(rpc, [funding], fees=1000).to_bytes().hex()) is None
    [coin] = outputs_of(funding, KEY)
    locked = spend([coin], [TxOut(coin.value - 1000, p2pkh_for(KEY))], sequence=2, version=2)  # 2 blocks
    raw = locked.to_bytes().hex()
    decoded = await rpc.call("decoderawtransaction", raw)
    assert (decoded["version"], decoded["vin"][0]["sequence"]) == (2, 2)
    assert "non-BIP68-final" in await expect_error(rpc, -26, "sendrawtransaction", raw)
    assert await rpc.call("submitblock", next_block(rpc, [locked], fees=1000).to_bytes().hex()) == "bad-txns-nonfinal"
    await submit_blocks(rpc, 1)  # the next block is 2 after the coin's
    assert await rpc.call("sendrawtransaction", raw) == locked.txid()


async def test_gettxoutsetinfo_counts_the_utxo_set(rpc):
    before = await rpc.call("gettxoutsetinfo")
    await submit_blocks(rpc, 2)
    after = await rpc.call("gettxoutsetinfo")
    assert after["txouts"] == before["txouts"] + 2
    assert after["total_amount"] - before["total_amount"] == Decimal(100)
    assert after["hash_serialized"] != before["hash_serialized"]
    assert after["height"] == 2


async def test_validateaddress(rpc):
    assert (await rpc.call("validateaddress", ADDRESS))["isvalid"] is True
    mainnet = KEY.public_key.address("mainnet")
    for bad in (mainnet, "notanaddress", ADDRESS[:-1] + "x"):
        reply = await rpc.call("validateaddress", bad)
        assert reply["isvalid"] is False and reply["error"]


async def test_generatetoaddress_mines_on_the_tip(rpc):
    hashes = await rpc.call("generatetoaddress", 2, ADDRESS)
    assert len(hashes) == 2
    assert await rpc.call("getbestblockhash") == hashes[-1]
    coinbase = (await rpc.call("getblock", hashes[0], 2))["tx"][0]
    assert coinbase["vout"][0]["scriptPubKey"]["address"] == ADDRESS
    assert (await rpc.call("getmininginfo"))["blocks"] == 2
    await expect_error(rpc, -5, "generatetoaddress", 1, "notanaddress")
    await expect_error(rpc, -8, "generatetoaddress", -1, ADDRESS)


async def test_stop_publishes_a_shutdown_request(rpc):
    requests: list[str] = []

    async def record(event: ShutdownRequested) -> None:
        requests.append(event.reason)

    rpc.context.bus.subscribe(ShutdownRequested, record)
    assert await rpc.call("stop") == "CamelidCoin server stopping"
    await asyncio.wait_for(rpc.context.bus.drain(), timeout=5)
    assert requests == ["stop RPC"]
