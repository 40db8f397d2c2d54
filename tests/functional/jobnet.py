"""A small job network for functional tests: a miner without the model, and a client and compute nodes with it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from tiny_model import write_tiny_model

from .framework import TestNode, wait_until

FUNDS = 10
"""Coins the miner sends the client and each compute node."""


def job_network(
    camelid_nodes: Callable[..., list[TestNode]],
    tmp_path: Path,
    *compute_flags: str,
    client_flags: Sequence[str] = (),
    computers: int = 1,
) -> tuple[TestNode, TestNode, TestNode, str]:
    """(miner, client, first compute node, the miner's address), all connected through the miner.

    The client and `computers` compute nodes hold the tiny test model (the compute nodes serve it with
    `compute_flags`), and each gets FUNDS coins, confirmed. Further compute nodes are nodes[3:] of the fixture.
    """
    model = write_tiny_model(tmp_path / "tiny.gguf")
    flags = [[f"--serve-model={model}", *client_flags]]
    flags += [[f"--serve-model={model}", *compute_flags] for _ in range(computers)]
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
