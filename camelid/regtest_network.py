"""Real camelidd processes on a local regtest network: start them, talk to them over RPC, always stop them.

`make demo` runs a miner, a compute provider and a client as separate processes, the way people run
them, so a crash or a Ctrl-C must never leave one behind: RegtestNetwork is a context manager that
stops every node it started (SIGTERM, then SIGKILL of the node's process group) and removes the temp
dir. And a node that dies must never leave anyone waiting on it: every wait goes through
`poll_until`, which polls each node's process first (a waitpid, cheap), so a node that exits unasked
ends the wait at once with NodeFailed, naming the node, its exit status or signal and the end of its
debug.log and stderr, instead of a timeout much later. tests/functional/framework.py drives nodes the
same way for the test suite (its TestNode is a WatchedNode too), with test-only extras (debug-log
assertions, raw HTTP, restarts) that the demo does not need.
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
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from camelid.rpc.auth import read_cookie
from camelid.rpc.client import JSONRPCError, RPCClient
from camelid.rpc.errors import RPCErrorCode

HOST = "127.0.0.1"
START_TIMEOUT = 120.0
"""Seconds a node may take to answer RPC: a node serving a model hashes it before it listens."""
STOP_TIMEOUT = 30.0
"""Seconds a node may take to shut down after SIGTERM before it is killed."""
LOG_LINES = 20
"""Lines of debug.log (and of stderr) a NodeFailed quotes."""
TAIL_BYTES = 64 * 1024
"""How much of the end of a log is read for its last lines: debug.log grows without bound."""
REAP_GRACE = 1.0
"""Seconds to let a process whose connection just broke be reaped: the kernel closes a dying process's
sockets a moment before its exit status can be read."""

T = TypeVar("T")


def exit_reason(returncode: int) -> str:
    """How a process ended, in words: "killed by SIGSEGV" or "exited with status 1"."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


def log_tail(path: Path, lines: int = LOG_LINES) -> str:
    """The last `lines` lines of a text file ("" if it is absent), reading only its end."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - TAIL_BYTES))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class NodeFailed(RuntimeError):
    """A node process exited while someone waited on it or called it; the message says which, how, and its logs."""

    def __init__(self, name: str, returncode: int, logs: dict[Path, str]) -> None:
        self.name = name
        self.returncode = returncode
        message = f"{name} died: {exit_reason(returncode)}"
        for path, tail in logs.items():
            quoted = "\n".join(f"    {line}" for line in tail.splitlines())
            message += f"\n  last lines of {path}:\n{quoted}" if tail else f"\n  nothing in {path}"
        super().__init__(message)


class WatchedNode:
    """A camelidd child process that others wait on: its exit is a failure unless it was asked to exit.

    Whoever stops, kills or signals the node sets `exit_expected` first; `start` clears it. The node's
    datadir holds stderr.txt (its stderr) and regtest/debug.log, the two logs a NodeFailed quotes.
    """

    def __init__(self, name: str, datadir: Path) -> None:
        self.name = name
        self.datadir = datadir
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_expected = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def debug_log(self) -> Path:
        return self.datadir / "regtest" / "debug.log"

    @property
    def stderr_file(self) -> Path:
        return self.datadir / "stderr.txt"

    def failure(self) -> NodeFailed | None:
        """NodeFailed if the process has exited unasked, else None; a waitpid, cheap enough for every poll."""
        if self.process is None or self.exit_expected or self.process.poll() is None:
            return None
        logs = {self.debug_log: log_tail(self.debug_log)}
        if stderr := log_tail(self.stderr_file):
            logs[self.stderr_file] = stderr
        return NodeFailed(self.name, self.process.returncode, logs)

    def check(self) -> None:
        """Raise NodeFailed if the process has exited unasked."""
        if failed := self.failure():
            raise failed

    def call_failed(self, error: OSError) -> None:
        """An RPC to the node broke at the transport: NodeFailed (from `error`) if the node died, else nothing."""
        broken = isinstance(error, ConnectionResetError | BrokenPipeError)
        if broken and self.process is not None and not self.exit_expected:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(REAP_GRACE)
        if failed := self.failure():
            raise failed from error


def check_nodes(nodes: Iterable[WatchedNode]) -> None:
    """NodeFailed for the first of `nodes` that exited unasked."""
    for node in list(nodes):
        node.check()


def poll_until(
    check: Callable[[], T],
    nodes: Iterable[WatchedNode],
    timeout: float,
    interval: float = 0.25,
    tick: Callable[[], object] | None = None,
) -> T | None:
    """Call `check` every `interval` s until it returns something truthy (returned); None after `timeout` s.

    Each round first checks every node of `nodes`, so a node that died ends the wait at once with
    NodeFailed. `tick` runs between rounds (a progress line, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        check_nodes(nodes)
        if result := check():
            return result
        if time.monotonic() > deadline:
            return None
        if tick is not None:
            tick()
        time.sleep(interval)


FREE_PORTS = range(20_000, 32_000)
"""Where free_port looks: below the ephemeral range (Linux: 32768-60999), from which the OS gives every outbound
connection its local port, so that none takes a node's port between its choice and the node's bind."""
PORTS_PER_WORKER = 1_000
"""The share of FREE_PORTS of one pytest-xdist worker (PYTEST_XDIST_WORKER=gwN takes the N-th)."""
_turn = [os.getpid() * 7_919]  # where this process takes its next port: processes start far apart


def free_port() -> int:
    """A TCP port nobody listens on right now, from FREE_PORTS, taken in turn from a start fixed by the process.

    A port checked free can still be taken before the node binds it, by another process choosing at the same
    moment: a node that cannot bind fails to start, naming the address. So processes that start nodes at once
    must not draw from the same ports: a pytest-xdist worker, and the demo or bench it runs (which inherits its
    PYTEST_XDIST_WORKER), draws from its own PORTS_PER_WORKER; any other process from the whole range.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    ports = FREE_PORTS
    if worker.startswith("gw") and worker[2:].isdigit():
        share = int(worker[2:]) % (len(FREE_PORTS) // PORTS_PER_WORKER)
        ports = FREE_PORTS[share * PORTS_PER_WORKER : (share + 1) * PORTS_PER_WORKER]
    for _ in range(len(ports)):
        port = ports[_turn[0] % len(ports)]
        _turn[0] += 1
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port in {ports.start}-{ports.stop - 1} on {HOST}")


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


class RegtestNode(WatchedNode):
    """One camelidd process on regtest with its own datadir and free ports, bound to 127.0.0.1."""

    def __init__(self, name: str, basedir: Path, extra_args: Sequence[str] = ()) -> None:
        super().__init__(name, basedir / name)
        self.datadir.mkdir(parents=True)
        self.rpc_port = free_port()
        self.p2p_port = free_port()
        self.extra_args = list(extra_args)
        self._rpc: RPCClient | None = None

    @property
    def address(self) -> str:
        """This node's P2P address, for other nodes' --connect."""
        return f"{HOST}:{self.p2p_port}"

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
        with open(self.stderr_file, "wb") as stderr:
            self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)

    def ready(self) -> bool:
        """True once RPC answers past warm-up; NodeFailed if the process has exited."""
        return answers_rpc(lambda: self.call("getblockcount"))

    def call(self, method: str, *args: Any) -> Any:
        """Call an RPC method with the node's cookie; NodeFailed rather than a connection error if the node died."""
        try:
            if self._rpc is None:
                self._rpc = RPCClient(HOST, self.rpc_port, read_cookie(self.datadir / "regtest"))
            return self._rpc.call(method, *args)
        except OSError as error:
            self.call_failed(error)
            raise

    def terminate(self) -> None:
        """Ask the node to shut down (SIGTERM: camelidd stops cleanly on it), once."""
        if self.running and not self.exit_expected:
            self.exit_expected = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL of the whole process group if the node has not exited within `timeout`."""
        if self.process is None:
            return
        self.terminate()
        self.exit_expected = True
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # the group is gone when the node and its workers are
            os.killpg(self.process.pid, signal.SIGKILL)  # also any worker process the node started
        self.process.wait()


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

    def check(self) -> None:
        """NodeFailed if any node has exited unasked: for loops that do not wait through `poll_until`."""
        check_nodes(self.nodes)

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
