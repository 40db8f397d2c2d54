"""Two nodes fork; the one on the lighter branch reorganises onto the heavier one it is given."""

from __future__ import annotations

import pytest

from .util import MINER_ADDRESS, OTHER_ADDRESS, active_chain_hashes, copy_blocks

pytestmark = pytest.mark.slow


def test_node_reorganises_onto_a_heavier_competing_chain(camelid_nodes):
    node0, node1 = camelid_nodes(2, [["--mine-processes=1"]] * 2)
    shared = node0.generatetoaddress(10, MINER_ADDRESS)
    assert copy_blocks(node0, node1, shared) == [None] * 10
    assert node1.getbestblockhash() == shared[-1]

    # Fork: node0 extends by 3, node1 by 5 (more work, as every regtest block has the same target).
    light = node0.generatetoaddress(3, MINER_ADDRESS)
    heavy = node1.generatetoaddress(5, OTHER_ADDRESS)

    # The first heavy blocks only tie or trail node0's work: it keeps its tip until the branch is heavier.
    answers = copy_blocks(node1, node0, heavy)
    assert answers[:3] == ["inconclusive"] * 3
    assert answers[3:] == [None, None]
    assert node0.getbestblockhash() == heavy[-1]
    assert node0.getblockcount() == 15
    assert active_chain_hashes(node0) == active_chain_hashes(node1)
    assert node0.gettxoutsetinfo() == node1.gettxoutsetinfo()
    for orphaned in light:
        assert node0.getblockheader(orphaned)["confirmations"] == -1

    # The reorganisation persists across a restart.
    node0.restart()
    assert node0.getbestblockhash() == heavy[-1]
    assert node0.gettxoutsetinfo()["hash_serialized"] == node1.gettxoutsetinfo()["hash_serialized"]
