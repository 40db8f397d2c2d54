"""The soak bench's short run (issue 15): a camelidd under a hostile swarm for 30 s, honest peers unharmed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_a_node_under_a_hostile_swarm_keeps_its_memory_and_its_honest_peers(tmp_path):
    plot = tmp_path / "soak_rss.png"
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak_bench", "--seconds", "30", "--attackers", "4", "--plot", str(plot)],
        cwd=Path(__file__).resolve().parents[2],  # the repository root, where bench/ is a package
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "[FAIL]" not in run.stdout and plot.exists()
    grown = run.stdout.split("target's tables that grew", 1)[1]  # getresourceinfo, idle against the end
    assert "p2p.discouraged_ips 0 -> " in grown, run.stdout
