"""Run bench code under a chosen llama-cpp-python build, each in a process of its own.

A build is a directory made with `pip install --no-deps --target DIR WHEEL`. Putting it first on a
child's PYTHONPATH makes that child import its llama_cpp instead of the venv's, so one bench run can
compare builds side by side. A native crash (a -march=native build segfaults in libggml-cpu on
virtualised AMX hosts, issue 12) kills only that child, and the bench reports the signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
INSTALLED = "installed"  # the venv's own llama-cpp-python: no directory put in front
# Where the issue-12 wheels were unpacked: AVX2 without AMX (the Makefile's flags), AVX-512 without
# AMX, and -march=native (which enables AMX on a host that has it).
KNOWN_BUILDS = {name: Path(f"/tmp/lcp-{name}") for name in ("portable", "avx512", "native")}
_CHILD_FLAG = "--child"


def parse_builds(specs: list[str]) -> dict[str, Path | None]:
    """NAME=DIR pairs (or the word `installed`) into an ordered map; ValueError on a bad entry."""
    builds: dict[str, Path | None] = {}
    for spec in specs:
        if spec == INSTALLED:
            builds[INSTALLED] = None
            continue
        name, sep, directory = spec.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"build {spec!r} is not NAME=DIR or {INSTALLED!r}")
        if not (Path(directory) / "llama_cpp").is_dir():
            raise ValueError(f"build {name}: {directory} holds no llama_cpp package")
        builds[name] = Path(directory)
    return builds


def default_builds() -> dict[str, Path | None]:
    """The venv's own build first (the baseline), then every known build that is unpacked here."""
    present = {name: path for name, path in KNOWN_BUILDS.items() if (path / "llama_cpp").is_dir()}
    return {INSTALLED: None, **present}


class ChildError(Exception):
    """A child died or failed; the message says how, e.g. "crashed, SIGSEGV"."""


class BuildProcess:
    """A child process of `script` under `build` that answers JSON requests one line at a time.

    The child keeps its state (a loaded model) between requests, so a bench can alternate
    between builds request by request and put every build under the same background load.
    """

    def __init__(self, script: Path, build: Path | None) -> None:
        env = dict(os.environ)
        path = [str(build)] if build is not None else []
        path += [str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(path)
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close(); a file, so a chatty child never blocks)
        self._proc = subprocess.Popen(
            [sys.executable, str(script), _CHILD_FLAG], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )

    def call(self, payload: dict[str, Any], timeout: float) -> Any:
        """The child's answer to `payload`; ChildError if it dies, fails or takes over `timeout` s."""
        assert self._proc.stdin and self._proc.stdout
        try:
            self._proc.stdin.write(json.dumps(payload) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            pass  # it died already; reported below
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        line = self._proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        if not ready:
            self._proc.kill()
            raise ChildError(f"timed out after {timeout:.0f} s")
        status = self._proc.wait()
        if status < 0:
            raise ChildError(f"crashed, {signal.Signals(-status).name}")
        self._stderr.seek(0)
        tail = self._stderr.read().strip().splitlines()[-1:] or ["no stderr"]
        raise ChildError(f"exit status {status}: {tail[0]}")

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            if self._proc.stdin:
                self._proc.stdin.close()
        self._proc.wait()
        self._stderr.close()


def run_child(script: Path, build: Path | None, payload: dict[str, Any], timeout: float) -> Any:
    """One request to a fresh child of `script` under `build` (ChildError as BuildProcess.call)."""
    child = BuildProcess(script, build)
    try:
        return child.call(payload, timeout)
    finally:
        child.close()


def child_main(work: Callable[[dict[str, Any]], Any]) -> bool:
    """In a child started by BuildProcess, answer each request line with `work`; else return False.

    The protocol gets the real stdout; fd 1 then points at stderr, so nothing llama.cpp prints can
    corrupt it.
    """
    if sys.argv[1:] != [_CHILD_FLAG]:
        return False
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    for line in sys.stdin:
        replies.write(json.dumps(work(json.loads(line))) + "\n")
        replies.flush()
    return True


def build_info() -> dict[str, str]:
    """Which llama_cpp this process imported, and the CPU features its ggml uses."""
    import llama_cpp

    return {
        "llama_cpp": str(Path(llama_cpp.__file__).parent),
        "version": llama_cpp.__version__,
        "system_info": llama_cpp.llama_print_system_info().decode().strip(),
    }
