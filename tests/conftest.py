"""Fixtures for the whole suite."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _real_model_alone(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests marked `realmodel` run one at a time, whichever pytest-xdist worker runs them: on 2 cores two
    multi-threaded llama.cpp decodes spin against each other at every barrier, and the demo's provider,
    generating beside test_compute_realmodel, took 50 s for 48 tokens and missed its 45 s deadline. The lock file
    sits where every worker of one run keeps its temporary directory."""
    if request.node.get_closest_marker("realmodel") is None:
        yield
        return
    with open(tmp_path_factory.getbasetemp().parent / "real-model.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
