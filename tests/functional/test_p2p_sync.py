"""Real nodes talking P2P: headers-first sync, transaction and block relay, peer RPCs, and a healed partition."""

from __future__ import annotations

import pytest
from chain_helpers import coinbase_spendable, pay

from camelid.core.block import Block
from camelid.rpc.client import JSONRPCError

from .framework import TestNode, wait_until
from .util import MINER_ADDRESS, MINER_KEY, OTHER_ADDRESS

pytestmark = pytest.mark.slow

MINE = ["--mine-processes=1"]


def same_tip(*nodes: TestNode) -> bool:
    return len({node.getbestblockhash() for node in nodes}) == 1


def test_a_new_node_syncs_and_relays_transactions_and_blocks(camelid_nodes):
    (node0,) = camelid_nodes(1, [MINE])
    mined = node0.generatetoaddress(200, MINER_ADDRESS)
    (node1,) = camelid_nodes(1, [[*MINE, f"--connect=127.0.0.1:{node0.p2p_port}"]])

    wait_until(lambda: node1.getbestblockhash() == mined[-1], what="node1 synced to node0's tip")
    assert node1.getblockcount() == 200
    assert node1.gettxoutsetinfo()["hash_serialized"] == node0.gettxoutsetinfo()["hash_serialized"]

    # Both see the one connection, and a ping round trip is measured.
    node1.ping()
    peer = wait_until(lambda: [p for p in node1.getpeerinfo() if "pingtime" in p], what="node1 ping time")[0]
    assert peer["addr"] == f"127.0.0.1:{node0.p2p_port}" and peer["inbound"] is False
    assert peer["nodeid"] == node0.getnetworkinfo()["nodeid"]
    assert [p["inbound"] for p in node0.getpeerinfo()] == [True]
    assert node0.getconnectioncount() == node1.getconnectioncount() == 1

    # A transaction sent to node0 reaches node1's mempool.
    first_block = Block.from_bytes(bytes.fromhex(node0.getblock(mined[0], 0)))
    tx = pay(coinbase_spendable(first_block, MINER_KEY), MINER_KEY, fee=10_000)
    txid = node0.sendrawtransaction(tx.to_bytes().hex())
    wait_until(lambda: txid in node1.getrawmempool(), what="the transaction in node1's mempool")

    # A block mined on node1 (carrying it) reaches node0, which drops the transaction from its pool.
    (block_hash,) = node1.generatetoaddress(1, OTHER_ADDRESS)
    wait_until(lambda: node0.getbestblockhash() == block_hash, what="node1's block on node0")
    assert txid in node0.getblock(block_hash)["tx"]
    assert node0.getrawmempool() == []

    # Disconnected, node1 dials its --connect peer again.
    node0.disconnectnode(nodeid=node0.getpeerinfo()[0]["id"])
    with pytest.raises(JSONRPCError) as missing:
        node0.disconnectnode(nodeid=999)
    assert missing.value.code == -29
    wait_until(lambda: node0.getconnectioncount() == 1, timeout=20, what="node1 reconnected")


def test_nodes_mining_apart_converge_on_the_most_work_chain_once_connected(camelid_nodes):
    node0, node1 = camelid_nodes(2, [MINE, MINE])
    short = node0.generatetoaddress(3, MINER_ADDRESS)
    long = node1.generatetoaddress(5, OTHER_ADDRESS)
    assert node0.getconnectioncount() == node1.getconnectioncount() == 0

    node0.addnode(f"127.0.0.1:{node1.p2p_port}", "add")
    wait_until(lambda: same_tip(node0, node1), what="both nodes on one tip")
    assert node0.getbestblockhash() == long[-1]
    assert node0.getblockheader(short[-1])["confirmations"] == -1

    # node0 mines on the winning chain and node1 follows.
    (extended,) = node0.generatetoaddress(1, MINER_ADDRESS)
    wait_until(lambda: node1.getbestblockhash() == extended, what="node0's new block on node1")


def test_a_banned_address_is_dropped_and_refused_until_the_ban_is_lifted(camelid_nodes):
    (node0,) = camelid_nodes(1)
    (node1,) = camelid_nodes(1, [[f"--connect=127.0.0.1:{node0.p2p_port}"]])
    wait_until(lambda: node0.getconnectioncount() == 1, what="node1 connected")

    node0.setban("127.0.0.1", "add", 3600)
    assert [b["address"] for b in node0.listbanned()] == ["127.0.0.1/32"]
    wait_until(lambda: node1.getconnectioncount() == 0, what="node1 dropped")
    with pytest.raises(JSONRPCError) as again:
        node0.setban("127.0.0.1", "add")
    assert again.value.code == -23

    node0.clearbanned()
    assert node0.listbanned() == []
    wait_until(lambda: node0.getconnectioncount() == 1, timeout=20, what="node1 back after the ban")
