"""The camelid_nodes fixture: start regtest nodes for a test and always clean them up."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from .framework import TestNode


@pytest.fixture
def camelid_nodes(tmp_path) -> Iterator[Callable[..., list[TestNode]]]:
    """`camelid_nodes(n, extra_args=...)` starts n nodes; teardown stops (or kills) every one, even on failure."""
    nodes: list[TestNode] = []

    def start(count: int, extra_args: Sequence[Sequence[str]] | None = None, wait: bool = True) -> list[TestNode]:
        new = []
        for i in range(count):
            node = TestNode(len(nodes), tmp_path, extra_args[i] if extra_args else ())
            nodes.append(node)
            node.start(wait=wait)
            new.append(node)
        return new

    yield start
    for node in nodes:
        node.teardown()
