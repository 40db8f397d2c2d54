"""A small job network for functional tests: a miner without the model, and a client and compute nodes with it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from tiny_model import write_tiny_model

from .framework import TestNode, wait_until

FUNDS = 10
"""Coins the miner sends the client and each compute node."""


@contextmanager
def node_starter(basedir: Path) -> Iterator[Callable[..., list[TestNode]]]:
    """A `camelid_nodes`-like starter for a module-scoped network; every node it started is stopped on exit."""
    nodes: list[TestNode] = []

    def start(count: int, extra_args: Sequence[Sequence[str]] | None = None) -> list[TestNode]:
        new = [TestNode(len(nodes) + i, basedir, extra_args[i] if extra_args else ()) for i in range(count)]
        nodes.extend(new)
        for node in new:
            node.start()
        return new

    try:
        yield start
    finally:
        for node in nodes:
            node.teardown()


def job_network(
    camelid_nodes: Callable[..., list[TestNode]],
    tmp_path: Path,
    *compute_flags: str,
    client_flags: Sequence[str] = (),
    computers: int = 1,
    models: Sequence[str] | None = None,
) -> tuple[TestNode, TestNode, TestNode, str]:
    """(miner, client, first compute node, the miner's address), all connected through the miner.

    The client and `computers` compute nodes hold `models` (--serve-model values; default the tiny test
    model), the compute nodes serving them with `compute_flags`, and each gets FUNDS coins, confirmed.
    Further compute nodes are nodes[3:] of the fixture.
    """
    serve = [f"--serve-model={m}" for m in (models or [write_tiny_model(tmp_path / "tiny.gguf")])]
    flags = [[*serve, *client_flags]] + [[*serve, *compute_flags] for _ in range(computers)]
    miner, others, mine_to = funded_network(camelid_nodes, flags)
    return miner, others[0], others[1], mine_to


def funded_network(
    camelid_nodes: Callable[..., list[TestNode]], flags: Sequence[Sequence[str]]
) -> tuple[TestNode, list[TestNode], str]:
    """(miner, one node per entry of `flags`, the miner's address): each node connected to the miner
    and given FUNDS coins, confirmed."""
    (miner,) = camelid_nodes(1)
    connect = f"--connect=127.0.0.1:{miner.p2p_port}"
    others = camelid_nodes(len(flags), [[connect, *node_flags] for node_flags in flags])
    wait_until(lambda: miner.getconnectioncount() == len(others), what="every node connected to the miner")
    for node in (miner, *others):
        node.createwallet("default")
    mine_to = miner.getnewaddress()
    miner.generatetoaddress(101, mine_to)
    for node in others:
        miner.sendtoaddress(node.getnewaddress(), FUNDS)
    miner.generatetoaddress(1, mine_to)
    for node in others:
        wait_until(lambda node=node: node.getbalance() == FUNDS, what=f"node{node.index} funded")
    return miner, others, mine_to


def mine_until(miner: TestNode, mine_to: str, predicate: Callable[[], Any], what: str, timeout: float = 60) -> None:
    """Mine a block now and then until `predicate` holds: time-locked job spends wait for the median time past."""

    def mined() -> bool:
        if predicate():
            return True
        miner.generatetoaddress(1, mine_to)
        return bool(predicate())

    wait_until(mined, timeout=timeout, interval=0.5, what=what)


def fee_of(node: TestNode, txid: str) -> Decimal:
    """What the node's wallet paid in fees for one of its own transactions."""
    (fee,) = {-entry["fee"] for entry in node.listtransactions("*", 1000) if entry["txid"] == txid and "fee" in entry}
    return fee
