"""A node that dies while the demo or a test waits on it fails the wait at once, naming it, its signal and its log.

Each test kills a real camelidd process with a real signal in the middle of a wait whose timeout is a
minute, and expects the failure within seconds. test_demo.py does the same to `make demo` itself.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from camelid import demo
from camelid.regtest_network import NodeFailed, RegtestNetwork

from .framework import wait_until
from .test_demo import processes_naming

pytestmark = pytest.mark.slow

WAIT = 60.0
"""The timeout of the waits the kills interrupt."""
PROMPT = 5.0
"""How soon the failure must arrive: a small part of WAIT."""


def kill_soon(pid: int, signum: int, delay: float = 0.5) -> threading.Timer:
    """Send `signum` to `pid` from another thread after `delay` s, while this one waits."""
    timer = threading.Timer(delay, os.kill, (pid, signum))
    timer.start()
    return timer


@pytest.fixture
def no_core_dumps() -> Iterator[None]:
    """Where core dumps are on, SIGSEGV would write one: the nodes started meanwhile inherit a zero limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


def test_a_node_killed_by_sigsegv_fails_wait_until_at_once_with_its_log(no_core_dumps, camelid_nodes):
    node, other = camelid_nodes(2)
    kill_soon(node.process.pid, signal.SIGSEGV)
    started = time.monotonic()
    with pytest.raises(NodeFailed) as failed:
        wait_until(lambda: False, timeout=WAIT, what="something that never comes")
    assert time.monotonic() - started < PROMPT
    message = str(failed.value)
    assert (failed.value.name, failed.value.returncode) == ("node0", -signal.SIGSEGV)
    assert message.startswith("node0 died: killed by SIGSEGV")
    assert f"last lines of {node.debug_log}:" in message
    assert node.debug_log.read_text().splitlines()[-1] in message

    with pytest.raises(NodeFailed, match="node0 died: killed by SIGSEGV"):
        node.getblockcount()  # not ConnectionRefusedError
    assert other.getblockcount() == 0  # the other node is fine, and the test may go on with it


def test_a_node_the_test_kills_or_signals_fails_no_wait(camelid_nodes):
    (node,) = camelid_nodes(1)
    node.kill()
    assert wait_until(lambda: "still waiting") == "still waiting"
    node.start()
    node.signal(signal.SIGTERM)
    assert wait_until(lambda: not node.running, timeout=WAIT)
    assert node.wait_for_exit() == 0


def test_a_regtest_network_node_killed_by_sigkill_fails_the_demo_wait_at_once():
    with pytest.raises(NodeFailed) as failed, RegtestNetwork(prefix="camelid-watch-") as network:
        alive, doomed = network.add("alive"), network.add("doomed")
        demo.wait_for(network, "the nodes answer RPC", lambda: all(n.ready() for n in network.nodes), WAIT)
        kill_soon(doomed.process.pid, signal.SIGKILL)
        started = time.monotonic()
        demo.wait_for(network, "something that never comes", lambda: alive.call("getblockcount") > 0, WAIT)
    try:
        assert time.monotonic() - started < PROMPT
        message = str(failed.value)
        assert message.startswith("doomed died: killed by SIGKILL")
        assert doomed.debug_log.read_text().splitlines()[-1] in message
        assert failed.value.__notes__ == [f"the nodes' datadirs (debug.log, stderr.txt) are kept in {network.root}"]
        assert not alive.running and processes_naming(str(network.root)) == []
    finally:
        shutil.rmtree(network.root)
