"""Crash safety, after Bitcoin Core's feature_dbcrash.py.

A node mining with --mine is SIGKILLed at random instants and restarted each
time. Every block it reported before a kill must survive, it must come back on
a consistent tip, and at the end its whole UTXO set must hash the same as that
of a control node fed the same blocks through submitblock.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time

import pytest

from .framework import wait_until
from .util import MINER_ADDRESS, active_chain_hashes, copy_blocks

pytestmark = pytest.mark.slow

KILLS = 12


def test_utxo_set_survives_repeated_sigkill_while_mining(camelid_nodes):
    mining_args = ["--mine", f"--mine-address={MINER_ADDRESS}", "--mine-processes=1"]
    crasher, control = camelid_nodes(2, [mining_args, ["--mine-processes=1"]])
    rng = random.Random()
    seed = rng.randrange(1 << 32)
    rng.seed(seed)
    print(f"crash test seed {seed}")

    for _ in range(KILLS):
        time.sleep(rng.uniform(0.05, 0.8))
        reported = crasher.getblockcount()
        crasher.kill()
        crasher.start()
        assert crasher.getblockcount() >= reported, f"blocks lost after a kill (seed {seed})"

    assert crasher.stop() == 0
    crasher.start(["--mine-processes=1"])  # no --mine: the chain holds still for the comparison
    assert crasher.getblockcount() > 0

    hashes = active_chain_hashes(crasher)
    assert all(answer is None for answer in copy_blocks(crasher, control, hashes))
    assert control.getbestblockhash() == crasher.getbestblockhash()
    crashed_utxos, control_utxos = crasher.gettxoutsetinfo(), control.gettxoutsetinfo()
    assert crashed_utxos["hash_serialized"] == control_utxos["hash_serialized"], f"seed {seed}"
    assert crashed_utxos == control_utxos


def test_sigkill_of_the_node_alone_leaves_no_mining_processes(camelid_nodes):
    """Workers are children of the forkserver, not the node; they must notice the node is gone."""
    (node,) = camelid_nodes(1, [["--mine", f"--mine-address={MINER_ADDRESS}", "--mine-processes=2"]])
    wait_until(lambda: node.getmininginfo()["blocks"] > 0, timeout=30, what="mining started")
    session = node.process.pid  # start_new_session: the session id is the node's pid
    node.process.send_signal(signal.SIGKILL)  # only the node, unlike kill(), which takes the whole group
    node.wait_for_exit()

    def session_empty() -> bool:
        found = subprocess.run(["pgrep", "-s", str(session)], capture_output=True, text=True)
        return found.stdout.strip() == ""

    wait_until(session_empty, timeout=15, what="mining workers to exit after the node died")
