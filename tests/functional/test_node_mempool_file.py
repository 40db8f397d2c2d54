"""The mempool survives a clean restart (mempool.dat), and a damaged file costs only itself, never the node."""

from __future__ import annotations

import pytest

from camelid.chain.mempool_file import MEMPOOL_FILENAME
from camelid.core.transaction import OutPoint, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.contract import Spent

from .hostile import fund, p2pkh_spend

pytestmark = pytest.mark.slow

FEE = 10_000


def test_unconfirmed_transactions_come_back_after_a_restart_and_a_torn_file_is_set_aside(camelid_nodes):
    (node,) = camelid_nodes(1)
    node.createwallet("miner")
    mine_to = node.getnewaddress()
    node.generatetoaddress(101, mine_to)
    key = PrivateKey.generate(network="regtest")  # not the wallet's: only the file can bring its spends back
    coin = fund(node, mine_to, key)
    parent = p2pkh_spend(coin, key, (TxOut(coin.out.value - FEE, coin.out.script_pubkey),))
    child = p2pkh_spend(Spent(OutPoint(parent.hash, 0), parent.outputs[0]), key,
                        (TxOut(parent.outputs[0].value - FEE, coin.out.script_pubkey),))
    for tx in (parent, child):
        node.sendrawtransaction(tx.to_bytes().hex())
    in_pool = sorted(node.getrawmempool())
    times = {txid: entry["time"] for txid, entry in node.getrawmempool(True).items()}

    height = node.getblockcount()
    node.stop()
    saved = node.net_datadir / MEMPOOL_FILENAME
    assert saved.exists()
    with node.assert_debug_log(["mempool restored from mempool.dat: 2 of 2 transactions accepted"]):
        node.start()
    assert sorted(node.getrawmempool()) == in_pool
    assert {txid: entry["time"] for txid, entry in node.getrawmempool(True).items()} == times

    node.stop()
    saved.write_bytes(saved.read_bytes()[:-7])  # torn, as by a disk that lost the last write
    with node.assert_debug_log(["is not a mempool this node can read (its checksum does not match",
                                "moved to mempool.dat.bad"]):
        node.start()
    assert node.getrawmempool() == []
    assert (node.net_datadir / (MEMPOOL_FILENAME + ".bad")).exists()
    assert node.getblockcount() == height
