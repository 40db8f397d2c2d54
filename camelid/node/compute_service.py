"""The node's llama.cpp workers: one child process per model in use, supervised (docs/architecture.md).

This is the one exception to the design card's single asyncio process. A native fault in llama.cpp kills
the process it runs in, so the engine runs in a worker (camelid.compute.worker) and a fault there costs the
node one job, never its chain, wallet, P2P or RPC.

Each model's ModelWorker starts its worker on first use (at start-up for the models the node serves),
and for a served model runs a self-check before it counts as ready: load, generate a few tokens, verify
them with RASTiC. When the worker dies the death is logged with its signal and a hint, the request in
flight fails with EngineUnavailable (callers give the job up or retry, never judge it), and the worker
restarts after a backoff. A worker that dies within QUICK_DEATH of starting MAX_QUICK_DEATHS times in a
row, or whose self-check gives a wrong answer, is failed: the node stops offering compute for that model,
with one clear error, instead of flapping forever. getcomputeinfo and the status page show it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from camelid.compute.rastic import EPS_ACCEPT
from camelid.compute.worker_client import (
    EngineUnavailable,
    EngineWorker,
    WorkerSettings,
    machine_cpu_flags,
)

log = logging.getLogger(__name__)

QUICK_DEATH = 30.0
"""A worker that dies sooner than this after starting counts towards MAX_QUICK_DEATHS."""
MAX_QUICK_DEATHS = 3
BACKOFF = (0.5, 1.0, 2.0)
"""Seconds before a restart, by the quick deaths in a row so far (0: the worker had run for a while)."""
PROBE_PROMPT = "The llama is a domesticated South American camelid"
PROBE_JOBS = ((8, 0, 0.0), (16, 1, 0.8))
"""The self-check's jobs (max_tokens, seed, temperature): a greedy one, and a sampled one where near-ties are
commoner."""
PROBE_MARGIN = 0.1
"""The self-check warns when an honest gap comes within this of EPS_ACCEPT (above 0.65): closer than the
largest honest gaps measured for gemma-3 (0.655) and SmolLM2 (0.589), so the model or the build is noisier
than the thresholds were calibrated on and honest jobs risk rejection (docs/rastic.md, "Across model
families")."""


class WorkerState(StrEnum):
    STOPPED = "stopped"  # not started yet (started on first use)
    STARTING = "starting"  # loading the model
    PROBING = "probing"  # running the self-check
    READY = "ready"
    RESTARTING = "restarting"  # died; waiting out the backoff
    FAILED = "failed"  # gave up: self-check wrong, or dying at once again and again


def crash_hint(machine_flags: Sequence[str], build: str) -> str:
    """The likely cause of a native crash, from this CPU's features and the build's."""
    if "amx_tile" in machine_flags and ("AMX" in build or "AVX512" in build):
        return (
            "this CPU has AMX and llama.cpp was built with AVX-512/AMX kernels, which crash on such (often"
            " virtualised) hosts: reinstall with `make` (AVX2, no AMX; docs/operations.md)"
        )
    if "avx512f" not in machine_flags and "AVX512" in build:
        return "llama.cpp was built for AVX-512, which this CPU lacks: reinstall with `make` (AVX2 build)"
    if "avx2" not in machine_flags:
        return "this CPU lacks AVX2, which the llama.cpp build needs"
    return "a fault in llama.cpp's native code, or the worker was killed from outside (no CPU-feature mismatch seen)"


@dataclass
class ModelWorker:
    """Supervises the llama.cpp worker of one model: start, self-check, restart with backoff, give up."""

    model_id: bytes
    path: Path
    settings: WorkerSettings
    self_check: bool  # run the probe before the worker counts as ready (the models this node sells)
    state: WorkerState = WorkerState.STOPPED
    restarts: int = 0
    quick_deaths: int = 0
    last_error: str | None = None
    self_check_gap: float | None = None  # the largest honest gap the last self-check saw
    started_at: float = 0.0
    _worker: EngineWorker | None = None
    _ready: asyncio.Event | None = None  # set while READY
    _settled: asyncio.Event | None = None  # set while READY or FAILED
    _supervisor: asyncio.Task[None] | None = None
    _closing: bool = False

    async def settle(self) -> bool:
        """Start the worker if need be and wait until it is ready (True) or failed for good (False).

        A worker that dies while starting is restarted as after any death, so this can take the backoffs.
        """
        self._supervise_once()
        assert self._settled is not None
        await self._settled.wait()
        return self.state is WorkerState.READY

    def _supervise_once(self) -> None:
        if self._supervisor is None:
            self._ready, self._settled = asyncio.Event(), asyncio.Event()
            self._supervisor = asyncio.create_task(self._supervise(), name=f"engine-{self.model_id.hex()[:16]}")

    async def engine(self) -> EngineWorker:
        """The ready worker, started if need be; EngineUnavailable while it restarts or once it has failed."""
        if self.state is WorkerState.FAILED:
            raise EngineUnavailable(f"compute for model {self.model_id.hex()[:16]} is off: {self.last_error}")
        self._supervise_once()
        assert self._ready is not None
        if self.state is not WorkerState.RESTARTING:
            await self._ready.wait()
        if self._worker is None or self.state is not WorkerState.READY:
            raise EngineUnavailable(f"the llama.cpp worker for model {self.model_id.hex()[:16]} is {self.state}")
        return self._worker

    async def _supervise(self) -> None:
        """Start the worker, wait for its death, restart it: until it fails for good or the node stops."""
        assert self._ready is not None and self._settled is not None
        try:
            await self._run_and_restart()
        finally:
            self._ready.set()  # wake every waiter: each sees the final state
            self._settled.set()

    async def _run_and_restart(self) -> None:
        assert self._ready is not None and self._settled is not None
        while not self._closing:
            self.state = WorkerState.STARTING
            self.started_at = time.monotonic()
            problem = await self._start()
            if self._worker is not None and problem is None:
                self.state = WorkerState.READY
                self._ready.set()
                self._settled.set()
                await self._worker.wait_exit()
                if self._closing:
                    return
                await self._worker.stop()  # reaps it and reads the rest of its stderr
                problem = self._death(self._worker)
            self._ready.set()  # wake waiters: they see the state and raise EngineUnavailable
            self._ready.clear()
            self._settled.clear()
            if self.state is WorkerState.FAILED or self._closing:
                return
            quick = time.monotonic() - self.started_at < QUICK_DEATH
            self.quick_deaths = self.quick_deaths + 1 if quick else 0
            if self.quick_deaths >= MAX_QUICK_DEATHS:
                self._fail(f"{problem}; it died {self.quick_deaths} times within {QUICK_DEATH:.0f} s of starting")
                return
            self.state = WorkerState.RESTARTING
            delay = BACKOFF[min(self.quick_deaths, len(BACKOFF) - 1)]
            log.warning("model %s: restarting the llama.cpp worker in %.1f s", self.model_id.hex()[:16], delay)
            await asyncio.sleep(delay)
            self.restarts += 1

    async def _start(self) -> str | None:
        """Spawn and (for a served model) self-check the worker; the problem if it died or was wrong."""
        try:
            self._worker = await EngineWorker.start(self.path, self.settings)
        except EngineUnavailable as exc:
            self._worker = None
            self.last_error = str(exc)
            hint = crash_hint(machine_cpu_flags(), "")
            log.error("model %s: %s; likely cause: %s", self.model_id.hex()[:16], exc, hint)
            return str(exc)
        except ValueError as exc:
            self._worker = None
            self._fail(f"llama.cpp cannot load {self.path.name}: {exc}")
            return self.last_error
        if not self.self_check:
            return None
        self.state = WorkerState.PROBING
        try:
            wrong, self.self_check_gap = await probe(self._worker)
        except EngineUnavailable:
            return self._death(self._worker, during="self-checking")
        except (ValueError, RuntimeError) as exc:
            wrong = str(exc)
        if wrong is None and self.self_check_gap > EPS_ACCEPT - PROBE_MARGIN:
            log.warning(
                "model %s (%s): an honest gap of %.3f in the self-check is within %.2f of EPS_ACCEPT %.2f:"
                " verifiers may reject honest jobs of this model on this build (docs/rastic.md)",
                self.model_id.hex()[:16],
                self.path.name,
                self.self_check_gap,
                PROBE_MARGIN,
                EPS_ACCEPT,
            )
        if wrong is not None:
            await self._worker.stop()
            self._fail(f"self-check failed: {wrong}")
            return self.last_error
        return None

    def _death(self, worker: EngineWorker, during: str = "running") -> str:
        """Log a worker's unexpected death, with its signal, its last words and the likely cause."""
        build = str(worker.info.get("system_info", ""))
        self.last_error = f"the llama.cpp worker (pid {worker.pid}) {worker.exit_description()} while {during}"
        tail = "\n    ".join(worker.stderr_tail)
        log.error(
            "model %s: %s; likely cause: %s%s",
            self.model_id.hex()[:16],
            self.last_error,
            crash_hint(machine_cpu_flags(), build),
            f"\n  its last output:\n    {tail}" if tail else "",
        )
        return self.last_error

    def _fail(self, reason: str) -> None:
        """Give up on this model's compute, saying so once on stderr and in debug.log."""
        self.state = WorkerState.FAILED
        self.last_error = reason
        line = (
            f"camelidd: model {self.model_id.hex()} ({self.path.name}): {reason};"
            " this node runs on without compute for it"
        )
        log.error("%s", line)
        if not any(getattr(h, "stream", None) is sys.stderr for h in logging.getLogger().handlers):
            print(line, file=sys.stderr, flush=True)

    def status(self) -> dict[str, Any]:
        worker = self._worker
        info = worker.info if worker is not None else {}
        return {
            "model_id": self.model_id.hex(),
            "file": self.path.name,
            "state": str(self.state),
            "pid": worker.pid if worker is not None and worker.alive else None,
            "restarts": self.restarts,
            "last_error": self.last_error,
            "self_check": self.self_check,
            "self_check_gap": self.self_check_gap,
            "build": info.get("system_info"),
            "llama_cpp_version": info.get("llama_cpp_version"),
            "n_threads": info.get("n_threads"),
            "gpu_layers": self.settings.gpu_layers,
            "gpu_offload": info.get("gpu_offload"),
        }

    async def close(self) -> None:
        self._closing = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        if self._worker is not None:
            await self._worker.stop()


async def probe(worker: EngineWorker) -> tuple[str | None, float]:
    """The self-check: generate PROBE_JOBS and verify them; (what is wrong or None, the largest honest gap).

    Every position is checked at eps_accept 0, so the failures list every gap the generator and the
    verifier disagree by; a gap above EPS_ACCEPT (or NaN) means wrong numbers, not float noise.
    """
    prompt = await worker.tokenize(PROBE_PROMPT)
    gaps: list[tuple[float, int]] = []
    for max_tokens, seed, temperature in PROBE_JOBS:
        output = await worker.generate(prompt, max_tokens, seed, temperature)
        verdict = await worker.verify(prompt, output, max_tokens, seed, temperature, eps_accept=0.0)
        gaps += [(f.gap if f.gap == f.gap else math.inf, f.position) for f in verdict.failures]
    rejected = [(gap, position) for gap, position in gaps if gap > EPS_ACCEPT]
    largest = max((gap for gap, _ in gaps), default=0.0)
    if rejected:
        gap, position = max(rejected)
        checked = sum(max_tokens for max_tokens, _, _ in PROBE_JOBS)
        return (
            f"RASTiC rejects its own output at {len(rejected)} of at most {checked} positions"
            f" (gap {gap:.3g} at {position}): the model file or the build computes wrong numbers"
        ), largest
    return None, largest


class ComputeService:
    """Every model's worker; the job service asks it for engines."""

    def __init__(self, settings: WorkerSettings, path_of: Callable[[bytes], Path | None]) -> None:
        """`path_of`: the file of a model id in the node's store, None if the store lacks it."""
        self.settings = settings
        self.workers: dict[bytes, ModelWorker] = {}
        self._path_of = path_of

    async def engine_for(self, model_id: bytes) -> EngineWorker | None:
        """A ready worker for a model in the store, started on first use; None if the store lacks the model.

        EngineUnavailable while the worker restarts or once it has failed for good.
        """
        path = self._path_of(model_id)
        if path is None:
            return None
        worker = self.workers.get(model_id)
        return await (worker if worker is not None else self.add(model_id, path, self_check=False)).engine()

    def add(self, model_id: bytes, path: Path, self_check: bool) -> ModelWorker:
        """Supervise `model_id`'s file (once); `self_check` for the models this node sells."""
        worker = self.workers.get(model_id)
        if worker is None or worker.path != path:
            worker = self.workers[model_id] = ModelWorker(model_id, path, self.settings, self_check)
        return worker

    async def start(self, served: Sequence[tuple[bytes, Path]]) -> list[bytes]:
        """Start and self-check the workers of the models this node sells; the ids that passed."""
        workers = [self.add(model_id, path, self_check=True) for model_id, path in served]
        results = await asyncio.gather(*(w.settle() for w in workers))
        return [w.model_id for w, ready in zip(workers, results, strict=True) if ready]

    def usable(self, model_id: bytes) -> bool:
        """False once the model's worker has failed for good: no jobs, no checks with it."""
        worker = self.workers.get(model_id)
        return worker is None or worker.state is not WorkerState.FAILED

    def info(self) -> dict[str, Any]:
        return {
            "cpu_features": machine_cpu_flags(),
            "worker_settings": {
                "n_threads": self.settings.n_threads,
                "n_ctx": self.settings.n_ctx,
                "n_batch": self.settings.n_batch,
                "gpu_layers": self.settings.gpu_layers,
                "slots": self.settings.slots,
            },
            "models": [w.status() for w in self.workers.values()],
        }

    async def close(self) -> None:
        await asyncio.gather(*(w.close() for w in self.workers.values()))

