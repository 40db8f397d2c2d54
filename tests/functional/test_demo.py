"""`make demo` is README command one: run it as a user would and check what it promises to print."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.realmodel]


def test_demo_completes_one_paid_verified_job():
    run = subprocess.run(
        [sys.executable, "-m", "camelid.demo"], capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout
    assert "RASTiC verdict: ok=True" in out
    assert re.search(r"completion: '.+'", out)
    for state in ("created", "accepted", "completed", "paid", "delivered", "verified", "settled"):
        assert re.search(rf"\+\s*[\d.]+ s  {state}\n", out), f"state {state} missing from the history"
    # The provider earns exactly the reward; the client pays reward plus fee.
    assert "provider balance 0.00000000 -> 2.00000000 (+2.00000000)" in out
    assert "client   balance 10.00000000 -> 7.99980000 (-2.00020000)" in out
