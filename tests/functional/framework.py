"""Functional test framework in the spirit of Bitcoin Core's test/functional.

Each TestNode is a real `python -m camelid.cli.camelidd` process on regtest with
its own data directory and free ports, configured through a camelid.conf the
framework writes (as Bitcoin Core's framework writes bitcoin.conf). Tests talk
to it over JSON-RPC with the cookie the node writes:

    node.getblockcount()                    # any RPC method, through RPCClient
    node.raw_post(b"{not json")             # (HTTP status, body) for malformed requests
    with node.assert_debug_log(["new tip"]): ...
    node.stop(); node.kill(); node.start(["--reindex"])

The `camelid_nodes` fixture (conftest.py) starts nodes and stops or kills every
one of them at teardown, whatever the test did.

Every node the framework starts is watched until its teardown: `wait_until`
polls each one's process (a waitpid) every round, and an RPC to a node whose
connection breaks checks it too, so a node that dies unasked fails the test at
once with NodeFailed (its name, exit status or signal, the end of its debug.log
and stderr) rather than with a timeout. Only stop(), kill(), signal(),
wait_for_exit() and restart() make a node's exit expected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from camelid.regtest_network import WatchedNode, answers_rpc, free_port, poll_until
from camelid.rpc.auth import Credentials, read_cookie
from camelid.rpc.client import RPCClient

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0


_watched: weakref.WeakSet[TestNode] = weakref.WeakSet()
"""Nodes started and not yet torn down: every wait_until checks them."""


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll `predicate` until it returns something truthy (returned); AssertionError after `timeout` seconds.

    NodeFailed at once if a node the test started has died unasked.
    """
    result = poll_until(predicate, _watched, timeout, interval)
    if result is None:
        raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
    return result


class TestNode(WatchedNode):
    """One camelidd process, started and stopped on demand; unknown attributes are RPC methods."""

    __test__ = False  # not a pytest test class

    def __init__(self, index: int, basedir: Path, extra_args: Sequence[str] = ()) -> None:
        super().__init__(f"node{index}", basedir / f"node{index}")
        self.index = index
        self.net_datadir = self.datadir / "regtest"
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.extra_args = list(extra_args)
        self.datadir.mkdir(parents=True)
        self.conf_file = self.datadir / "camelid.conf"
        self.conf_file.write_text(
            f"regtest=1\nrpcport={self.rpc_port}\nport={self.p2p_port}\nprinttoconsole=0\n", encoding="utf-8"
        )

    # Process control.

    def start(self, extra_args: Sequence[str] | None = None, *, wait: bool = True) -> None:
        """Launch camelidd; with `wait`, return once RPC answers past warm-up."""
        assert not self.running, f"node{self.index} is already running"
        args = self.extra_args if extra_args is None else list(extra_args)
        command = [sys.executable, "-m", "camelid.cli.camelidd", f"--datadir={self.datadir}", *args]
        self._stderr = open(self.stderr_file, "ab")  # noqa: SIM115 -- closed in wait_for_exit or teardown
        # A session of its own, so kill() can take down the node's mining worker processes with it.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True)
        self.exit_expected = False
        _watched.add(self)
        if wait:
            self.wait_for_rpc()

    def wait_for_rpc(self, timeout: float = START_TIMEOUT) -> None:
        """Return once RPC answers past warm-up; NodeFailed if the node exits first."""
        wait_until(lambda: answers_rpc(self.getblockcount), timeout=timeout, interval=0.1, what=f"{self.name} RPC")

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Ask the node to stop over RPC and wait for it to exit; its exit status."""
        assert self.process is not None
        self.call("stop")  # NodeFailed if it had died already
        return self.wait_for_exit(timeout)

    def kill(self) -> None:
        """SIGKILL the node and every process it started: no shutdown code runs, as in a power cut."""
        assert self.process is not None
        self.exit_expected = True
        os.killpg(self.process.pid, signal.SIGKILL)
        self.wait_for_exit(STOP_TIMEOUT)

    def signal(self, signum: int) -> None:
        """Send `signum` to the node; whatever it does next, its exit is no failure."""
        assert self.process is not None
        self.exit_expected = True
        self.process.send_signal(signum)

    def wait_for_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the node to exit (an expected exit); its exit status."""
        assert self.process is not None
        self.exit_expected = True
        code = self.process.wait(timeout)
        self._stderr.close()
        return code

    def restart(self, extra_args: Sequence[str] | None = None) -> None:
        self.stop()
        self.start(extra_args)

    def teardown(self) -> None:
        """Stop watching the node and stop it if it still runs: politely, then by force."""
        _watched.discard(self)
        if self.process is None:
            return
        self.exit_expected = True
        if not self.running:
            self._stderr.close()
            return
        try:
            self.stop(timeout=15)
        except Exception:
            self.kill()

    # RPC.

    def client(self) -> RPCClient:
        return RPCClient("127.0.0.1", self.rpc_port, read_cookie(self.net_datadir))

    def call(self, method: str, *args: Any, **named: Any) -> Any:
        """The RPC's result; NodeFailed rather than a connection error if the node died unasked."""
        try:
            return self.client().call(method, *args, **named)
        except OSError as error:
            self.call_failed(error)
            raise

    def __getattr__(self, method: str) -> Callable[..., Any]:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **named: self.call(method, *args, **named)

    def raw_post(self, body: bytes, credentials: Credentials | None = None) -> tuple[int, Any]:
        """POST `body` as is (with the cookie, or `credentials`); (HTTP status, JSON reply or None if empty)."""
        client = RPCClient("127.0.0.1", self.rpc_port, credentials or read_cookie(self.net_datadir))
        status, reply = client.post(body)
        return status, json.loads(reply, parse_float=Decimal) if reply.strip() else None

    # Logs.

    @contextmanager
    def assert_debug_log(self, expected: Sequence[str], timeout: float = 10.0) -> Iterator[None]:
        """Check that every string in `expected` appears in debug.log lines written during the block."""
        start = self.debug_log.stat().st_size if self.debug_log.exists() else 0
        yield

        def new_text() -> str:
            with open(self.debug_log, "rb") as f:
                f.seek(start)
                return f.read().decode(errors="replace")

        def all_found() -> bool:
            text = new_text()
            return all(line in text for line in expected)

        try:
            wait_until(all_found, timeout=timeout, what="debug.log lines")
        except AssertionError:
            text = new_text()
            missing = [line for line in expected if line not in text]
            raise AssertionError(f"node{self.index} debug.log lacks {missing}; new lines:\n{text[-3000:]}") from None
