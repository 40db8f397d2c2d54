"""Wallet RPCs against a real regtest chain and wallet service in the test's event loop: Core's shapes and codes."""

from __future__ import annotations

from decimal import Decimal

import pytest
from chain_helpers import child_of, make_key
from functional.inprocess import rpc_harness

from camelid.node.events import BlockConnected, BlockDisconnected
from camelid.node.wallet_service import WalletService
from camelid.rpc.client import JSONRPCError
from camelid.rpc.errors import RPCError
from camelid.rpc.methods.wallet import parse_amount
from camelid.wallet.policy import MAX_DER_SIGNATURE

STRANGER = make_key(7).public_key.address("regtest")


@pytest.fixture
async def rpc(tmp_path):
    async with rpc_harness(tmp_path) as harness:
        service = WalletService(tmp_path, harness.chain, harness.context.bus)
        await service.start([])
        harness.context.wallet_service = service
        try:
            yield harness
        finally:
            await service.close()


async def expect_error(rpc, code: int, method: str, *params) -> str:
    with pytest.raises(JSONRPCError) as info:
        await rpc.call(method, *params)
    assert info.value.code == code, info.value.message
    return info.value.message


async def funded(rpc, name: str = "w") -> str:
    """Create wallet `name`, mine 101 blocks to it (one mature coinbase); its mining address."""
    await rpc.call("createwallet", name)
    address = await rpc.call("getnewaddress")
    await rpc.call("generatetoaddress", 101, address)
    await rpc.context.bus.drain()
    return address


def assert_fee_rate(paid: Decimal, tx: dict, rate: int) -> None:
    """The wallet pays `rate` per byte of its size estimate, which allows each signature its 72-byte maximum.

    A low-S DER signature is 70 or 71 bytes, and one in about 128 is shorter still (a leading zero byte
    in r or s), so the slack is read from the signatures the transaction carries.
    """
    size = len(bytes.fromhex(tx["hex"]))
    pushes = [bytes.fromhex(vin["scriptSig"]["hex"])[0] for vin in tx["vin"]]  # DER signature + sighash byte
    slack = sum(MAX_DER_SIGNATURE + 1 - push for push in pushes)
    assert rate * size <= paid * 10**8 <= rate * (size + slack), (paid, size, pushes)


@pytest.mark.parametrize(
    ("value", "base_units"),
    [(1.5, 150_000_000), ("0.00000001", 1), (0.1, 10_000_000), (21, 2_100_000_000), (1e-08, 1), ("0", 0)],
)
def test_amounts_parse_exactly(value, base_units):
    assert parse_amount(value) == base_units


@pytest.mark.parametrize("value", ["0.000000001", -1, "abc", "NaN", 1e300, "Infinity"])
def test_bad_amounts_are_type_errors(value):
    with pytest.raises(RPCError) as info:
        parse_amount(value)
    assert info.value.code == -3


async def test_no_wallet_loaded_is_minus_18(rpc):
    message = await expect_error(rpc, -18, "getbalance")
    assert message.startswith("No wallet is loaded")
    assert await rpc.call("listwallets") == []
    await expect_error(rpc, -18, "loadwallet", "missing")


async def test_disabled_wallet_answers_method_not_found(rpc):
    rpc.context.wallet_service = None
    await expect_error(rpc, -32601, "getnewaddress")


async def test_mined_coins_mature_after_100_blocks(rpc):
    await funded(rpc)
    assert await rpc.call("getbalance") == Decimal("50.00000000")
    balances = await rpc.call("getbalances")
    assert balances["mine"] == {
        "trusted": Decimal("50.00000000"),
        "untrusted_pending": Decimal("0E-8"),
        "immature": Decimal("5000.00000000"),
    }
    assert balances["lastprocessedblock"]["height"] == 101
    unspent = await rpc.call("listunspent")
    assert [(u["amount"], u["confirmations"]) for u in unspent] == [(Decimal("50.00000000"), 101)]
    lines = await rpc.call("listtransactions", "*", 200)
    assert [line["category"] for line in lines].count("generate") == 1
    assert [line["category"] for line in lines].count("immature") == 100


async def test_send_records_the_payment_and_its_fee(rpc):
    await funded(rpc)
    txid = await rpc.call("sendtoaddress", STRANGER, 1.5)
    assert txid in await rpc.call("getrawmempool")
    await rpc.context.bus.drain()
    send = next(line for line in await rpc.call("listtransactions") if line["category"] == "send")
    assert send["txid"] == txid
    assert send["amount"] == Decimal("-1.50000000")
    assert send["confirmations"] == 0
    assert await rpc.call("getbalance") == Decimal("50") - Decimal("1.5") + send["fee"]


async def test_sendmany_with_explicit_fee_rate_and_subtracted_fee(rpc):
    await funded(rpc)
    other = make_key(8).public_key.address("regtest")
    txid = await rpc.call("sendmany", "", {STRANGER: "2", other: 3}, None, "", [other], None, None, None, 5)
    tx = await rpc.call("getrawtransaction", txid, True)
    values = {out["scriptPubKey"]["address"]: out["value"] for out in tx["vout"]}
    paid = Decimal("50") - sum(values.values())
    assert values[STRANGER] == Decimal("2")
    assert values[other] == Decimal("3") - paid
    assert_fee_rate(paid, tx, 5)


async def test_insufficient_funds_leaves_the_wallet_unchanged(rpc):
    await funded(rpc)
    await expect_error(rpc, -6, "sendtoaddress", STRANGER, 50.00000001)
    await expect_error(rpc, -3, "sendtoaddress", STRANGER, 0)
    await expect_error(rpc, -5, "sendtoaddress", "notanaddress", 1)
    assert await rpc.call("getbalance") == Decimal("50")
    assert await rpc.call("getrawmempool") == []


async def test_settxfee_takes_coins_per_kb(rpc):
    await funded(rpc)
    assert await rpc.call("settxfee", 0.00005) is True
    assert (await rpc.call("getwalletinfo"))["paytxfee"] == Decimal("0.00005000")
    await expect_error(rpc, -8, "settxfee", "0.000015")  # 1.5 base units per byte
    txid = await rpc.call("sendtoaddress", STRANGER, 1)
    tx = await rpc.call("getrawtransaction", txid, True)
    assert_fee_rate(Decimal("50") - sum(out["value"] for out in tx["vout"]), tx, 5)


async def test_encrypted_wallet_needs_the_passphrase_to_send(rpc):
    await funded(rpc)
    await rpc.call("encryptwallet", "secret words")
    assert (await rpc.call("getwalletinfo"))["unlocked_until"] == 0
    await expect_error(rpc, -13, "sendtoaddress", STRANGER, 1)
    await expect_error(rpc, -14, "walletpassphrase", "wrong", 60)
    await rpc.call("walletpassphrase", "secret words", 60)
    assert (await rpc.call("getwalletinfo"))["unlocked_until"] > 0
    await rpc.call("sendtoaddress", STRANGER, 1)
    await rpc.call("walletlock")
    await expect_error(rpc, -13, "sendtoaddress", STRANGER, 1)
    await rpc.call("walletpassphrasechange", "secret words", "new words")
    await expect_error(rpc, -14, "walletpassphrase", "secret words", 60)
    await rpc.call("walletpassphrase", "new words", 60)


async def test_private_key_round_trip_finds_past_payments(rpc):
    address = await funded(rpc, "first")
    wif = await rpc.call("dumpprivkey", address)
    await rpc.call("unloadwallet")
    await rpc.call("createwallet", "second")
    assert await rpc.call("getbalance") == 0
    await rpc.call("importprivkey", wif, "imported")
    assert await rpc.call("getbalance") == Decimal("50")
    assert await rpc.call("dumpprivkey", address) == wif
    await expect_error(rpc, -5, "importprivkey", "not a key")


async def test_two_loaded_wallets_need_one_unloaded(rpc):
    await rpc.call("createwallet", "a")
    await rpc.call("createwallet", "b")
    assert await rpc.call("listwallets") == ["a", "b"]
    await expect_error(rpc, -19, "getnewaddress")
    await expect_error(rpc, -35, "loadwallet", "a")
    await rpc.call("unloadwallet", "b")
    assert await rpc.call("listwallets") == ["a"]


async def test_loading_catches_up_with_blocks_missed_while_unloaded(rpc, tmp_path):
    address = await funded(rpc)
    await rpc.call("unloadwallet")
    await rpc.call("generatetoaddress", 5, address)
    await rpc.call("loadwallet", "w")
    assert await rpc.call("getbalance") == Decimal("300")
    assert (await rpc.call("getwalletinfo"))["lastprocessedblock"]["height"] == 106


async def test_backup_restores_to_the_same_balance(rpc, tmp_path):
    await funded(rpc)
    await rpc.call("backupwallet", str(tmp_path / "backup.dat"))
    await rpc.call("unloadwallet")
    await rpc.call("restorewallet", "restored", str(tmp_path / "backup.dat"))
    assert await rpc.call("getbalance") == Decimal("50")


async def test_reorganisation_moves_the_balance_back(rpc):
    await funded(rpc)
    chainstate = rpc.chain.chainstate
    fork = chainstate.get_block(chainstate.get_hash_at_height(99))
    parent = fork
    for height in range(100, 103):  # three blocks paying a stranger replace our blocks 100 and 101
        parent = child_of(parent, height, key=make_key(7))
        await rpc.call("submitblock", parent.to_bytes().hex())
    await rpc.context.bus.drain()
    assert await rpc.call("getblockcount") == 102
    # Our coinbases at heights 100 and 101 are gone; those at 1 and 2 now have the 101 confirmations to mature.
    mine = (await rpc.call("getbalances"))["mine"]
    assert (mine["trusted"], mine["immature"]) == (Decimal("100"), Decimal("4850"))
    assert (await rpc.call("getwalletinfo"))["lastprocessedblock"]["hash"] == parent.hash()


async def test_a_block_event_the_wallet_already_holds_changes_nothing(rpc):
    await funded(rpc)
    chainstate = rpc.chain.chainstate
    tip = chainstate.get_block(chainstate.tip.hash)
    await rpc.context.bus.publish(BlockConnected(tip, 101))  # as if queued while the wallet was loading
    await rpc.context.bus.publish(BlockDisconnected(chainstate.get_block(chainstate.get_hash_at_height(50)), 50))
    await rpc.context.bus.drain()
    assert (await rpc.call("getbalances"))["mine"]["immature"] == Decimal("5000")
    assert (await rpc.call("getwalletinfo"))["lastprocessedblock"]["height"] == 101


async def test_listtransactions_filters_by_label(rpc):
    await rpc.call("createwallet", "w")
    savings = await rpc.call("getnewaddress", "savings")
    await rpc.call("generatetoaddress", 2, savings)
    await rpc.call("generatetoaddress", 1, await rpc.call("getnewaddress", "other"))
    await rpc.context.bus.drain()
    lines = await rpc.call("listtransactions", "savings", 1)
    assert [(line["label"], line["blockheight"]) for line in lines] == [("savings", 2)]
    assert len(await rpc.call("listtransactions", "savings", 10, 1)) == 1
    assert await rpc.call("listtransactions", "nobody") == []
    await expect_error(rpc, -8, "listtransactions", "savings", -1)
