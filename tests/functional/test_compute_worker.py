"""A llama.cpp crash never takes the node down (issue 12), between real camelidd processes.

The crashes are real signals sent to the real worker process, or a worker environment that makes it die at
once (tests/crashing_worker), as a build whose kernels the CPU mishandles does; the node under test runs
unchanged.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from decimal import Decimal
from pathlib import Path

import pytest
from tiny_model import write_broken_tiny_model, write_tiny_model

from camelid.p2p.messages import ServiceFlags

from .framework import TestNode, wait_until
from .jobnet import FUNDS, job_network

pytestmark = pytest.mark.slow

REWARD = Decimal("0.1")
CRASHING_WORKER = Path(__file__).parent.parent / "crashing_worker"


def worker_status(node: TestNode) -> dict:
    (model,) = node.getcomputeinfo()["models"]
    return model


def crash_in_the_middle_of_a_job(client: TestNode, computer: TestNode, signum: int, prompt: str) -> str:
    """Freeze `computer`'s worker, submit a job, let the computer accept it, then kill the worker with `signum`."""
    before = worker_status(computer)
    os.kill(before["pid"], signal.SIGSTOP)  # frozen as in a long generation: the job is in flight
    job = client.submitjob(prompt, 8, None, 0, 0, REWARD)
    wait_until(lambda: _accepted(client, job), what=f"node{computer.index} accepting the job")
    os.kill(before["pid"], signum)
    with contextlib.suppress(ProcessLookupError):  # a SIGKILLed worker may be reaped already
        os.kill(before["pid"], signal.SIGCONT)
    name = signal.Signals(signum).name
    restarted = {"state": "ready", "restarts": before["restarts"] + 1}
    wait_until(lambda: restarted.items() <= worker_status(computer).items(), what="the worker restarted")
    after = worker_status(computer)
    assert after["pid"] != before["pid"] and name in after["last_error"]
    log = computer.debug_log.read_text()
    assert f"killed by {name} while running; likely cause" in log
    assert f"job {job}: given up, the llama.cpp worker is unavailable" in log
    return job


def _accepted(node: TestNode, job: str) -> bool:
    info = node.getjob(job)
    return info is not None and "accepted" in [entry["state"] for entry in info["history"]]


def test_a_worker_killed_mid_job_costs_the_node_nothing_and_the_job_is_finished_elsewhere(camelid_nodes, tmp_path):
    started: list[TestNode] = []

    def start_recorded(*args, **named) -> list[TestNode]:
        new = camelid_nodes(*args, **named)
        started.extend(new)
        return new

    miner, client, crasher, mine_to = job_network(start_recorded, tmp_path, computers=2)
    rescuer = started[3]
    rescuer_id = rescuer.getnetworkinfo()["nodeid"]
    for signum, prompt in ((signal.SIGSEGV, "a llama in the rain"), (signal.SIGKILL, "an alpaca in the sun")):
        # A block first: the restarted rescuer's empty mempool must not need the last escrow to accept this one.
        miner.generatetoaddress(1, mine_to)
        wait_until(lambda: rescuer.getblockcount() == miner.getblockcount(), what="the rescuer synced")
        rescuer.stop()
        job = crash_in_the_middle_of_a_job(client, crasher, signum, prompt)
        # The node never went down: chain, wallet and P2P answer, and no stake was locked for the job.
        assert crasher.getblockcount() == miner.getblockcount()
        assert crasher.getconnectioncount() >= 1
        assert crasher.getbalance() == FUNDS
        assert crasher.getjob(job) is not None
        rescuer.start()
        wait_until(lambda job=job: client.getjob(job)["verdict"] is not None, timeout=60, what="a verdict")
        assert client.getjob(job)["verdict"] == "verified"
        assert client.getjob(job)["paid_node"] == rescuer_id
    # Both crashes cost the crashing node not one coin: it never staked.
    assert crasher.getbalance() == FUNDS
    assert crasher.getwalletinfo()["unconfirmed_balance"] == 0


def test_a_worker_that_dies_at_once_is_reported_and_not_restarted_forever(camelid_nodes, tmp_path, monkeypatch):
    model = write_tiny_model(tmp_path / "tiny.gguf")
    paths = [str(CRASHING_WORKER), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))
    (node,) = camelid_nodes(1, [[f"--serve-model={model}"]])
    status = worker_status(node)
    assert status["state"] == "failed" and status["pid"] is None
    assert "killed by SIGSEGV" in status["last_error"] and "died 3 times" in status["last_error"]
    time.sleep(3)  # longer than every backoff together
    assert worker_status(node) == status  # given up: no more restarts
    stderr = node.stderr_file.read_text()
    assert "camelidd: model" in stderr and "runs on without compute" in stderr
    assert "likely cause" in node.debug_log.read_text()
    assert not int(node.getnetworkinfo()["localservices"], 16) & ServiceFlags.COMPUTE  # offers no compute


def test_the_self_check_fails_on_a_model_that_loads_but_is_corrupt(camelid_nodes, tmp_path):
    broken = write_broken_tiny_model(tmp_path / "broken.gguf")
    (node,) = camelid_nodes(1, [[f"--serve-model={broken}"]])
    status = worker_status(node)
    assert status["state"] == "failed" and status["restarts"] == 0
    assert "self-check failed" in status["last_error"]
    stderr = node.stderr_file.read_text()
    assert "self-check failed" in stderr and "runs on without compute" in stderr
    assert node.getblockcount() == 0


def test_a_node_stopped_during_its_self_checks_stops_at_once(camelid_nodes, tmp_path, monkeypatch):
    model = write_tiny_model(tmp_path / "tiny.gguf")
    paths = [str(CRASHING_WORKER), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, paths)))  # the self-checks take their backoffs
    (node,) = camelid_nodes(1, [[f"--serve-model={model}"]], wait=False)
    wait_until(lambda: node.debug_log.exists() and "self-checking" in node.debug_log.read_text(), what="self-checks")
    started = time.monotonic()
    node.signal(signal.SIGTERM)
    assert node.wait_for_exit(timeout=30) == 0
    assert time.monotonic() - started < 3  # not after the checks' restarts and backoffs
    assert "stopped while starting" in node.debug_log.read_text()
    assert not list(tmp_path.glob("**/.cookie"))


def test_a_node_killed_outright_takes_its_worker_with_it(camelid_nodes, tmp_path):
    model = write_tiny_model(tmp_path / "tiny.gguf")
    (node,) = camelid_nodes(1, [[f"--serve-model={model}"]])
    pid = worker_status(node)["pid"]
    os.kill(pid, signal.SIGSTOP)  # busy, as in a long generation: it would not read the EOF of its stdin
    node.kill()  # SIGKILL: no shutdown code runs, and the worker is in a session of its own
    wait_until(lambda: process_state(pid) in (None, "Z"), timeout=10, what="the orphaned worker to end")


def process_state(pid: int) -> str | None:
    """The one-letter state of process `pid` (R, S, T, Z...), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return None
    return next(line.split()[1] for line in status.splitlines() if line.startswith("State:"))
