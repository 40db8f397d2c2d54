"""Task fractalization (whitepaper 5.4) between real processes: a client breaks a goal into a tree of jobs that
three compute nodes take, each one paid and verified with RASTiC by the client.

Every node serves the list model (tests/tiny_model.py), whose outlines always list two subtasks, "ab" and
"cd"; a node drops the one that repeats its own task, so a depth-2 task grows 1 + 2 + 2 jobs.
"""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from tiny_model import write_list_model

from camelid.rpc.client import JSONRPCError

from .framework import wait_until
from .jobnet import FUNDS, fee_of, funded_network, mine_until

pytestmark = pytest.mark.slow

REWARD = Decimal("0.1")


def walk(node: dict) -> list[dict]:
    return [node, *(below for child in node["children"] for below in walk(child))]


def test_a_depth_2_task_is_a_tree_of_verified_jobs_that_costs_its_rewards_and_fees(camelid_nodes, tmp_path):
    serve = f"--serve-model={write_list_model(tmp_path / 'list.gguf')}"
    miner, (client, *computers), mine_to = funded_network(
        camelid_nodes, [[serve, "--nocompute"], [serve], [serve], [serve]]
    )
    options = {"depth": 2, "fanout": 3, "max_tokens": 12, "reward_per_job": REWARD}
    task = client.submittask("Build a web shop", options)
    wait_until(lambda: client.gettask(task)["state"] != "running", timeout=120, interval=0.2, what="the task")
    info = client.gettask(task)
    nodes = walk(info["tree"])
    assert [(node["node"], node["task"]) for node in nodes] == [
        ("", "Build a web shop"), ("1", "ab"), ("1.1", "cd"), ("2", "cd"), ("2.1", "ab")
    ]  # fmt: skip
    assert info["state"] == "done" and info["jobs"] == 5 and info["counts"] == {"verified": 5}
    assert client.listtasks() == [{"taskid": task, "goal": "Build a web shop", "state": "done"}]
    assert info["reward_committed"] == 5 * REWARD and info["max_total_reward"] == 13 * REWARD  # the worst case
    computed_by = {computer.getnetworkinfo()["nodeid"] for computer in computers}
    for node in nodes:
        job = client.getjob(node["jobid"])  # every node is one of the client's paid jobs, checked by RASTiC
        assert node["state"] == node["verdict"] == job["verdict"] == "verified" and node["text"] == job["text"]
        assert job["role"] == "client" and job["paid_node"] in computed_by and job["checked_by"] == []
        assert job["reward"] == REWARD * 10**8  # getjob counts in base units
    # Not asserted: that several nodes took them. A node's slot is free once it has generated, and the tiny
    # model generates in milliseconds, faster than its rivals' claim delays: one node may take every job, as a
    # free node should. Spreading over busy nodes is test_job_concurrency's.
    # The document: tree order, the leaves' texts under their subtasks' headings.
    document = info["document"]
    assert document.startswith("# Build a web shop\n\n## 1 ab\n\n### 1.1 cd\n\n2)cd\r1.ab")
    assert document.index("## 2 cd") < document.index("### 2.1 ab")
    assert document.count("cd\r1.ab") == 2  # the two leaves' answers (the list model answers with its list)

    # The spend is the five rewards plus the five escrows' fees, nothing else.
    mine_until(
        miner, mine_to, lambda: all(client.getjob(node["jobid"])["state"] == "settled" for node in nodes), "settled"
    )
    escrow_fees = sum(fee_of(client, client.getjob(node["jobid"])["escrow_txid"]) for node in nodes)
    assert client.getbalance() == FUNDS - 5 * REWARD - escrow_fees

    # Bad requests are named, and cost nothing.
    for bad, message in (
        ({"depth": 4}, "depth must be 0..3"),
        ({"fanout": 2.5}, "fanout must be an integer"),
        ({"colour": "red"}, "unknown option"),
        ({"max_total_reward": "0.05"}, "max_total_reward must cover at least one job"),
    ):
        with pytest.raises(JSONRPCError, match=message):
            client.submittask("Build a web shop", options | bad)
    with pytest.raises(JSONRPCError, match="is not known"):
        client.canceltask("00" * 16)
    assert client.getbalance() == FUNDS - 5 * REWARD - escrow_fees

    # camelid-cli fractal: a line per node state off a terminal, then the document on stdout.
    command = [sys.executable, "-m", "camelid.cli.camelid_cli", f"--datadir={client.datadir}", "fractal"]
    done = subprocess.run(
        [*command, "Plan a trip", "--depth", "1", "--fanout", "1", "--max-tokens", "8", "--reward", "0.1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# Plan a trip\n\n## 1 ab\n\n")
    lines = done.stderr.splitlines()
    assert any(line.endswith(" root Plan a trip: verified") for line in lines)
    assert lines[-1].endswith(" 1 ab: verified")
