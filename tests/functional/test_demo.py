"""`make demo` is README command one: run it as a user would and check what it promises to print.

The demo starts three real camelidd processes (miner, compute provider, client) and runs one paid job with
the real gemma-3-270m model, so this is the slowest functional test (about a minute and a half on 2 cores).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from .framework import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.realmodel]

JOB_STATES = ["created", "accepted", "completed", "paid", "delivered", "verified", "settled"]


def processes_naming(text: str) -> list[str]:
    """Command lines of running processes that mention `text` (a datadir, here)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process exited while we looked
        if text in args:
            found.append(args)
    return found


def balances(out: str) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """{party: (before, after, difference)} from the demo's balance table."""
    rows = re.findall(r"^  (client|provider|miner) +([\d.]+) -> +([\d.]+)  \(([-+][\d.]+)\)$", out, re.MULTILINE)
    return {name: (Decimal(b), Decimal(a), Decimal(d)) for name, b, a, d in rows}


def test_demo_runs_one_paid_verified_job_over_three_nodes_and_stops_them():
    run = subprocess.run(
        [sys.executable, "-m", "camelid.demo"], capture_output=True, text=True, timeout=540, stdin=subprocess.DEVNULL
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = run.stdout

    completion = re.search(r"^completion \(verified\): '(.+)'$", out, re.MULTILINE)
    assert completion and completion.group(1).strip()
    assert "RASTiC verdict: verified (checked locally by the client" in out

    history = re.findall(r"^  \+ *([\d.]+) s  (\w+)$", out, re.MULTILINE)
    assert [state for _, state in history] == JOB_STATES
    times = [float(at) for at, _ in history]
    assert times[0] == 0 and times == sorted(times)

    table = balances(out)
    assert set(table) == {"client", "provider", "miner"}
    for before, after, difference in table.values():
        assert after - before == difference
    reward, fee_bound = Decimal(1), Decimal("0.001")
    client, provider, miner = (table[name][2] for name in ("client", "provider", "miner"))
    assert -reward - fee_bound < client < -reward  # the reward and the escrow's fee
    assert reward - fee_bound < provider < reward  # the reward less its stake, payment, delivery and release fees
    mined = re.search(r"miner mined (\d+) blocks: ([\d.]+) new coins \+ ([\d.]+) in fees", out)
    blocks, new_coins, fees = mined.groups()
    assert Decimal(new_coins) == 50 * int(blocks)
    assert miner == Decimal(new_coins) + Decimal(fees)
    assert client + provider + miner == Decimal(new_coins)  # no coin appears or vanishes but the subsidy

    datadirs = re.search(r"datadirs in (\S+)", out).group(1)
    assert not Path(datadirs).exists()
    assert processes_naming(datadirs) == []
    assert "All nodes stopped" in out


def demo_until(pattern: str) -> tuple[subprocess.Popen[str], str, re.Match[str]]:
    """Start the demo and read its output up to the line that matches `pattern`: (the demo, its datadirs, the match)."""
    demo = subprocess.Popen(
        [sys.executable, "-m", "camelid.demo"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        while not (found := re.match(pattern, line := demo.stdout.readline())):
            assert line, "the demo ended early: " + "".join(lines) + demo.stderr.read()
            lines.append(line)
    except BaseException:
        demo.kill()
        raise
    return demo, re.search(r"datadirs in (\S+)", "".join(lines)).group(1), found


def test_ctrl_c_during_the_demo_stops_every_node_it_started():
    demo, datadirs, _ = demo_until(r"\[3/7\]")  # the nodes answer RPC
    try:
        assert processes_naming(datadirs)  # the three nodes run
        demo.send_signal(signal.SIGINT)
        _, err = demo.communicate(timeout=120)
    finally:
        demo.kill()
    assert demo.returncode == 130
    assert "demo interrupted; every node it started has been stopped" in err
    assert processes_naming(datadirs) == []
    assert not Path(datadirs).exists()


def test_a_node_that_dies_fails_the_demo_at_once_naming_it():
    demo, datadirs, provider = demo_until(r"^  provider +pid (\d+)")
    provider_log = Path(datadirs, "provider", "regtest", "debug.log")
    try:
        wait_until(lambda: provider_log.exists() and provider_log.stat().st_size, what="the provider's first log line")
        os.kill(int(provider.group(1)), signal.SIGKILL)
        started = time.monotonic()
        _, err = demo.communicate(timeout=60)
        elapsed = time.monotonic() - started
    finally:
        demo.kill()
    try:
        assert demo.returncode == 1
        assert elapsed < 10  # not the 120 s the wait for RPC allows: the two other nodes just take a moment to stop
        assert "demo failed: NodeFailed: provider died: killed by SIGKILL" in err
        assert f"last lines of {provider_log}:" in err
        assert processes_naming(datadirs) == []
    finally:
        shutil.rmtree(datadirs, ignore_errors=True)
