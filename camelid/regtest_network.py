"""Real camelidd processes on a local regtest network: start them, talk to them over RPC, always stop them.

`make demo` runs a miner, a compute provider and a client as separate processes, the way people run
them, so a crash or a Ctrl-C must never leave one behind: RegtestNetwork is a context manager that
stops every node it started (SIGTERM, then SIGKILL of the node's process group) and removes the temp
dir. tests/functional/framework.py drives nodes the same way for the test suite, with test-only
extras (debug-log assertions, raw HTTP, restarts) that the demo does not need.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from camelid.rpc.auth import read_cookie
from camelid.rpc.client import JSONRPCError, RPCClient
from camelid.rpc.errors import RPCErrorCode

HOST = "127.0.0.1"
START_TIMEOUT = 120.0
"""Seconds a node may take to answer RPC: a node serving a model hashes it before it listens."""
STOP_TIMEOUT = 30.0
"""Seconds a node may take to shut down after SIGTERM before it is killed."""


class NodeFailed(RuntimeError):
    """A node exited or never answered; the message carries the end of its stderr."""


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def answers_rpc(call: Callable[[], Any]) -> bool:
    """Whether a node answers `call` past warm-up: False while it is not listening, has no cookie yet, or warms up."""
    try:
        call()
    except (OSError, ValueError):
        return False  # not listening yet, or the cookie is not written yet
    except JSONRPCError as exc:
        if exc.code == RPCErrorCode.IN_WARMUP:
            return False
        raise
    return True


class RegtestNode:
    """One camelidd process on regtest with its own datadir and free ports, bound to 127.0.0.1."""

    def __init__(self, name: str, basedir: Path, extra_args: Sequence[str] = ()) -> None:
        self.name = name
        self.datadir = basedir / name
        self.datadir.mkdir(parents=True)
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None
        self._rpc: RPCClient | None = None
        self._terminated = False

    @property
    def address(self) -> str:
        """This node's P2P address, for other nodes' --connect."""
        return f"{HOST}:{self.p2p_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Launch camelidd (in a session of its own, so Ctrl-C reaches us, and we stop it in order)."""
        command = [
            sys.executable,
            "-m",
            "camelid.cli.camelidd",
            "--regtest",
            f"--datadir={self.datadir}",
            f"--rpcport={self.rpc_port}",
            f"--port={self.p2p_port}",
            f"--bind={HOST}",
            "--quiet",
            *self.extra_args,
        ]
        with open(self.datadir / "stderr.txt", "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)

    def ready(self) -> bool:
        """True once RPC answers past warm-up; NodeFailed if the process has exited."""
        if not self.running:
            raise NodeFailed(f"{self.name} exited with status {self.process.returncode}: {self.stderr_tail()}")
        return answers_rpc(lambda: self.call("getblockcount"))

    def call(self, method: str, *args: Any) -> Any:
        """Call an RPC method with the node's cookie."""
        if self._rpc is None:
            self._rpc = RPCClient(HOST, self.rpc_port, read_cookie(self.datadir / "regtest"))
        return self._rpc.call(method, *args)

    def terminate(self) -> None:
        """Ask the node to shut down (SIGTERM: camelidd stops cleanly on it), once."""
        if self.running and not self._terminated:
            self.process.send_signal(signal.SIGTERM)
            self._terminated = True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL of the whole process group if the node has not exited within `timeout`."""
        if self.process is None:
            return
        self.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # the group is gone when the node and its workers are
            os.killpg(self.process.pid, signal.SIGKILL)  # also any worker process the node started
        self.process.wait()

    def stderr_tail(self, lines: int = 10) -> str:
        path = self.datadir / "stderr.txt"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


class RegtestNetwork:
    """Nodes in one temp dir; leaving the `with` block stops every node however it is left, then deletes the dir."""

    def __init__(self, prefix: str = "camelid-regtest-", keep_on_error: bool = True) -> None:
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep_on_error = keep_on_error
        self.nodes: list[RegtestNode] = []

    def add(self, name: str, extra_args: Sequence[str] = ()) -> RegtestNode:
        """Start a node (it is stopped with the network even if it never answers)."""
        node = RegtestNode(name, self.root, extra_args)
        self.nodes.append(node)
        node.start()
        return node

    def stop(self) -> None:
        """Stop every node: SIGTERM to each first, so their shutdowns overlap."""
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RegtestNetwork:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        """Stop the nodes; keep their datadirs (debug.log) only when an error, not Ctrl-C, ended the block."""
        try:
            self.stop()
        finally:
            if self.keep_on_error and isinstance(exc, Exception):
                exc.add_note(f"the nodes' datadirs (debug.log, stderr.txt) are kept in {self.root}")
            else:
                shutil.rmtree(self.root, ignore_errors=True)
