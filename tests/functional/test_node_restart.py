"""A regtest node mines 200 blocks, shuts down cleanly and comes back from disk with the same chain."""

from __future__ import annotations

import pytest

from .util import MINER_ADDRESS

pytestmark = pytest.mark.slow


def test_mined_chain_survives_restart_and_reindex(camelid_nodes):
    (node,) = camelid_nodes(1, [["--mine-processes=1"]])
    pid_file = node.net_datadir / "camelidd.pid"
    cookie = node.net_datadir / ".cookie"
    assert int(pid_file.read_text()) == node.process.pid
    assert cookie.stat().st_mode & 0o777 == 0o600

    with node.assert_debug_log(["new tip", "at height 200"]):
        hashes = []
        for _ in range(4):
            hashes += node.generatetoaddress(50, MINER_ADDRESS)
    assert len(set(hashes)) == 200
    assert node.getblockcount() == 200
    assert node.getbestblockhash() == hashes[-1]
    utxo = node.gettxoutsetinfo()
    assert utxo["txouts"] == 200 and utxo["total_amount"] == 200 * 50

    assert node.stop() == 0
    assert not pid_file.exists() and not cookie.exists()
    with node.assert_debug_log(["tip " + hashes[-1] + " at height 200"]):
        node.start()
    assert node.getbestblockhash() == hashes[-1]
    assert node.gettxoutsetinfo() == utxo

    node.stop()
    with node.assert_debug_log(["reindexing"]):
        node.start(["--mine-processes=1", "--reindex"])
    assert node.getbestblockhash() == hashes[-1]
    assert node.gettxoutsetinfo() == utxo
