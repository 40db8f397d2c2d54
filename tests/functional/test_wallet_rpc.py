"""Two real nodes with a wallet each: mining, paying across, encryption, keys, backup, restart and a reorganisation.

There is no P2P relay yet, so blocks move between the nodes with getblock + submitblock;
a payment confirms on the node that made it and the block carries it to the other.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest

from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .util import OTHER_ADDRESS, copy_blocks

pytestmark = pytest.mark.slow


def synced(node: TestNode) -> None:
    """Wait until the node's wallet has processed its chain tip (the wallet follows block events asynchronously)."""
    wait_until(
        lambda: node.getwalletinfo()["lastprocessedblock"]["hash"] == node.getbestblockhash(),
        what=f"node{node.index} wallet at the tip",
    )


def mine(node: TestNode, count: int, address: str, *others: TestNode) -> list[str]:
    """Mine on `node`, hand the blocks to `others`, and wait for every wallet to catch up."""
    hashes = node.generatetoaddress(count, address)
    for other in others:
        assert copy_blocks(node, other, hashes) == [None] * count
    for each in (node, *others):
        synced(each)
    return hashes


def expect_error(code: int, call, *args) -> None:
    with pytest.raises(JSONRPCError) as info:
        call(*args)
    assert info.value.code == code, info.value.message


def cli(node: TestNode, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "camelid.cli.camelid_cli", "--regtest", f"--datadir={node.datadir}", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def the_line(node: TestNode, txid: str, category: str) -> dict:
    (line,) = [x for x in node.listtransactions("*", 1000) if x["txid"] == txid and x["category"] == category]
    return line


def test_wallet_pays_across_nodes_and_follows_the_chain(camelid_nodes, tmp_path):
    node0, node1 = camelid_nodes(2, [["--mine-processes=1"]] * 2)
    for node in (node0, node1):
        assert node.createwallet("default") == {"name": "default", "warning": ""}
    address0 = node0.getnewaddress()
    address1 = node1.getnewaddress("from node0")

    # 101 blocks: the first coinbase matures, 100 are immature.
    mine(node0, 101, address0, node1)
    assert node0.getbalance() == Decimal("50")
    assert node0.getbalances()["mine"] == {"trusted": 50, "untrusted_pending": 0, "immature": 5000}

    # camelid-cli: amounts as Core prints them, and a payment from the command line.
    assert cli(node0, "getbalance") == "50.00000000"
    assert node0.validateaddress(cli(node0, "getnewaddress", "cli"))["isvalid"]
    txid = cli(node0, "sendtoaddress", address1, "1.5")
    assert txid in node0.getrawmempool()

    # The block carrying it confirms the payment on both sides, with the exact amounts and fee.
    mine(node0, 1, OTHER_ADDRESS, node1)
    send = the_line(node0, txid, "send")
    assert (send["amount"], send["confirmations"]) == (Decimal("-1.5"), 1)
    fee = send["fee"]
    assert fee < 0
    raw = node0.getrawtransaction(txid, True)
    assert sum(out["value"] for out in raw["vout"]) == Decimal("50") + fee  # one 50-coin coinbase spent
    assert node0.getbalance() == Decimal("100") - Decimal("1.5") + fee  # block 2's coinbase matured too
    receive = the_line(node1, txid, "receive")
    assert (receive["amount"], receive["label"], receive["confirmations"]) == (Decimal("1.5"), "from node0", 1)
    assert node1.getbalance() == Decimal("1.5")

    # Spending more than the wallet holds fails and changes nothing.
    expect_error(-6, node1.sendtoaddress, address0, 2)
    assert node1.getbalance() == Decimal("1.5")
    assert node1.getrawmempool() == []

    # An encrypted wallet signs only while unlocked.
    node1.encryptwallet("camel hump")
    expect_error(-13, node1.sendtoaddress, address0, Decimal("0.5"))
    expect_error(-14, node1.walletpassphrase, "llama", 30)
    node1.walletpassphrase("camel hump", 30)
    paid_back = node1.sendtoaddress(address0, Decimal("0.5"))
    node1.walletlock()
    expect_error(-13, node1.sendtoaddress, address0, Decimal("0.1"))
    mine(node1, 1, OTHER_ADDRESS, node0)
    assert node1.getbalance() == Decimal("1") + the_line(node1, paid_back, "send")["fee"]
    assert the_line(node0, paid_back, "receive")["amount"] == Decimal("0.5")

    # A key dumped by one wallet imports into another.
    fresh = node0.getnewaddress()
    wif = node0.dumpprivkey(fresh)
    node1.walletpassphrase("camel hump", 30)
    node1.importprivkey(wif, "imported", False)
    assert node1.dumpprivkey(fresh) == wif
    node1.walletlock()

    # A backup restores to the same balances.
    balances0 = node0.getbalances()["mine"]
    backup = tmp_path / "node0-backup.dat"
    node0.backupwallet(str(backup))
    node0.unloadwallet()
    assert node0.restorewallet("restored", str(backup))["name"] == "restored"
    assert node0.getbalances()["mine"] == balances0
    node0.unloadwallet("restored")
    node0.loadwallet("default")

    # A restart loads the "default" wallet again, balances and encryption intact.
    balances1 = node1.getbalances()["mine"]
    node0.restart()
    node1.restart()
    assert node0.listwallets() == ["default"]
    assert node0.getbalances()["mine"] == balances0
    assert node1.getbalances()["mine"] == balances1
    assert node1.getwalletinfo()["unlocked_until"] == 0

    # node0 confirms a payment and a coinbase of its own; node1's heavier branch replaces that block.
    reorged = node0.sendtoaddress(address1, 3)
    (orphaned,) = mine(node0, 1, address0)
    assert the_line(node0, reorged, "send")["confirmations"] == 1
    assert node0.getbalances()["mine"]["immature"] > Decimal("4850")  # heights 5..101 and 104 (with fees)
    mine(node1, 2, OTHER_ADDRESS)
    answers = copy_blocks(node1, node0, [node1.getblockhash(104), node1.getblockhash(105)])
    assert answers == ["inconclusive", None]
    synced(node0)
    assert node0.getblockcount() == 105
    assert node0.getbalances()["mine"]["immature"] == Decimal("4800")  # heights 6..101: block 104's coinbase is gone
    assert all(line.get("blockhash") != orphaned for line in node0.listtransactions("*", 1000))
    assert the_line(node0, reorged, "send")["confirmations"] == 0
    assert reorged in node0.getrawmempool()


def test_wallet_flags_at_startup(camelid_nodes):
    (node,) = camelid_nodes(1, [["--disablewallet"]])
    expect_error(-32601, node.getnewaddress)
    node.stop()

    node.start(["--wallet=nope"], wait=False)
    assert node.wait_for_exit() == 1
    assert "cannot load wallet: Wallet file not found" in node.debug_log.read_text()

    node.start([])
    assert node.listwallets() == []  # no "default" wallet yet: nothing loads
    node.createwallet("mine")
    node.restart(["--wallet=mine"])
    assert node.listwallets() == ["mine"]


def test_a_restarted_node_puts_its_wallets_unconfirmed_transactions_back_in_the_mempool(camelid_nodes):
    (node,) = camelid_nodes(1)
    node.createwallet("default")
    node.generatetoaddress(101, node.getnewaddress())
    first = node.sendtoaddress(node.getnewaddress(), 5)
    second = node.sendtoaddress(node.getnewaddress(), 3)  # spends the change of the first
    assert set(node.getrawmempool()) == {first, second}
    with node.assert_debug_log([f"wallet transaction {first} resubmitted", f"wallet transaction {second} resubmitted"]):
        node.restart()  # the mempool is not kept across restarts; the wallet's transactions are
    assert set(node.getrawmempool()) == {first, second}
    node.generatetoaddress(1, node.getnewaddress())
    assert node.getrawmempool() == []
    assert {tx["txid"]: tx["confirmations"] for tx in node.listtransactions()}[second] == 1
