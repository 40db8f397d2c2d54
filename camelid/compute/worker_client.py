"""The node's side of a llama.cpp worker process (camelid.compute.worker): start it, ask it, notice its death.

An EngineWorker offers the engine operations the node needs as coroutines. Requests go one at a time (the
worker computes one at a time anyway). When the process dies, the request in flight and every later one
raise EngineUnavailable naming the exit status or signal, never ValueError: a crash says nothing about the
input, so no caller may turn it into a verdict on a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camelid.compute.outsourced import PositionResult, VerificationRequest
from camelid.compute.rastic import DEFAULT_SPOT_K, EPS_ACCEPT, Verdict
from camelid.compute.worker_wire import decode_body, encode_frame, frame_length, verdict_from_wire

log = logging.getLogger(__name__)

STDERR_LINES_KEPT = 30
"""Lines of the worker's stderr kept to quote when it dies (faulthandler's stack, llama.cpp's last words)."""
LOAD_TIMEOUT = 300.0
"""Seconds a worker may take to load its model before it is killed and counted as failed."""


class EngineUnavailable(RuntimeError):
    """The worker is dead, stopped or failed to start; says nothing about the request that was asked."""


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker loads its model: llama.cpp threads, context and batch sizes, GPU layers."""

    n_threads: int | None = None
    n_ctx: int = 2048
    n_batch: int = 512
    gpu_layers: int = 0
    slots: int = 1  # generations decoded together in one llama_decode per step

    def arguments(self) -> list[str]:
        threads = [] if self.n_threads is None else [f"--threads={self.n_threads}"]
        sizes = [f"--n-ctx={self.n_ctx}", f"--n-batch={self.n_batch}", f"--slots={self.slots}"]
        return [*threads, *sizes, f"--gpu-layers={self.gpu_layers}"]


def describe_exit(returncode: int | None) -> str:
    """'killed by SIGSEGV' or 'exited with status 3' for a process's return code."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class EngineWorker:
    """One running worker process with one model loaded; build with `await EngineWorker.start(...)`."""

    def __init__(self, process: asyncio.subprocess.Process, path: Path, slots: int) -> None:
        self._process = process
        self.path = path
        self.slots = slots
        self.info: dict[str, Any] = {}
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_LINES_KEPT)
        self._write_lock = asyncio.Lock()
        self._ids = itertools.count()
        self._pending: dict[int, tuple[str, asyncio.Future[dict[str, Any]]]] = {}  # by request id
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task = asyncio.create_task(self._drain_stderr(), name=f"engine-stderr-{process.pid}")

    @classmethod
    async def start(cls, path: Path, settings: WorkerSettings) -> EngineWorker:
        """Spawn the worker and wait until its model is loaded; EngineUnavailable if it dies or refuses first.

        ValueError if the worker says the model cannot be loaded (a file llama.cpp does not accept).
        """
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "camelid.compute.worker",
            str(path),
            *settings.arguments(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the node's terminal reaches the node, which stops the worker
        )
        worker = cls(process, path, settings.slots)
        try:
            first = await asyncio.wait_for(worker._read(), LOAD_TIMEOUT)
        except asyncio.CancelledError:  # the node is stopping: leave no worker behind
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        except (EngineUnavailable, TimeoutError) as exc:
            await worker.stop()
            tail = " | ".join(list(worker.stderr_tail)[-3:])
            raise EngineUnavailable(
                f"the llama.cpp worker for {path.name} {worker.exit_description()} while loading (last output: {tail})"
            ) from exc
        if "ready" not in first:
            await worker.stop()
            raise ValueError(str(first.get("message", "the worker could not load the model")))
        worker.info = first["ready"]
        worker._reader = asyncio.create_task(worker._read_answers(), name=f"engine-answers-{process.pid}")
        return worker

    @property
    def pid(self) -> int:
        return self._process.pid

    async def wait_exit(self) -> int:
        """The worker's return code, once it has exited."""
        return await self._process.wait()

    @property
    def alive(self) -> bool:
        return self._process.returncode is None

    def exit_description(self) -> str:
        return describe_exit(self._process.returncode)

    async def stop(self) -> None:
        """End the worker: EOF on its stdin, then SIGKILL if it has not left within 5 s."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            await asyncio.wait_for(self._process.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            await self._process.wait()
        if self._reader is not None:
            await self._reader
        await self._stderr_task

    async def call(self, op: str, **args: Any) -> Any:
        """The worker's answer to `op`: ValueError for a request it refuses, EngineUnavailable if it dies.

        Requests go out at once and their answers come back as each is ready, so a RASTiC check need not
        wait for a long generation, and concurrent generations are batched by the worker.
        """
        if not self.alive or self._process.stdin is None or self._reader is None or self._reader.done():
            raise EngineUnavailable(f"the llama.cpp worker for {self.path.name} {self.exit_description()}")
        request_id = next(self._ids)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (op, answer)
        try:
            async with self._write_lock:
                self._process.stdin.write(encode_frame({"id": request_id, "op": op, "args": args}))
                await self._process.stdin.drain()
            reply = await answer
        except (BrokenPipeError, ConnectionResetError) as exc:
            await self._wait_exit()
            raise EngineUnavailable(
                f"the llama.cpp worker for {self.path.name} {self.exit_description()} during {op}"
            ) from exc
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            if reply["error"] == "ValueError":
                raise ValueError(reply.get("message", "refused by the worker"))
            raise RuntimeError(f"worker {op} failed: {reply['error']}: {reply.get('message', '')}")
        return reply.get("result")

    async def _read(self) -> dict[str, Any]:
        """The next frame from the worker; EngineUnavailable once it has ended."""
        stdout = self._process.stdout
        assert stdout is not None
        try:
            length = frame_length(await stdout.readexactly(4))
            return decode_body(await stdout.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionResetError) as exc:
            await self._wait_exit()
            raise EngineUnavailable(f"the llama.cpp worker for {self.path.name} {self.exit_description()}") from exc

    async def _read_answers(self) -> None:
        """Hand each answer to its request; when the worker ends, fail every request still waiting."""
        try:
            while True:
                reply = await self._read()
                pending = self._pending.get(reply.get("id"))  # type: ignore[arg-type]
                if pending is not None and not pending[1].done():
                    pending[1].set_result(reply)
        except (EngineUnavailable, ValueError):
            for op, answer in list(self._pending.values()):
                if not answer.done():
                    answer.set_exception(
                        EngineUnavailable(
                            f"the llama.cpp worker for {self.path.name} {self.exit_description()} during {op}"
                        )
                    )

    async def _wait_exit(self) -> None:
        """After EOF: give the process a moment to be reaped so its signal can be named."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._process.wait(), 5.0)

    async def _drain_stderr(self) -> None:
        stderr = self._process.stderr
        assert stderr is not None
        worker_log = logging.getLogger(f"camelid.compute.worker.{self._process.pid}")
        while line := await stderr.readline():
            text = line.decode("utf-8", "replace").rstrip()
            self.stderr_tail.append(text)
            worker_log.debug("%s", text)

    # -- the engine operations -----------------------------------------------------------------------

    async def tokenize(self, text: str) -> list[int]:
        return list(await self.call("tokenize", text=text))

    async def detokenize(self, tokens: Sequence[int]) -> str:
        return str(await self.call("detokenize", tokens=list(tokens)))

    async def prefill(self, tokens: Sequence[int]) -> None:
        """Decode `tokens` into the checking sequence ahead of a `verify` whose prompt they are (Engine.prefill)."""
        await self.call("prefill", tokens=list(tokens))

    async def generate(self, prompt_tokens: Sequence[int], max_tokens: int, seed: int, temperature: float) -> list[int]:
        """One job's output; concurrent generations run batched in the worker, up to its slots at once."""
        return list(
            await self.call(
                "generate", prompt_tokens=list(prompt_tokens), max_tokens=max_tokens, seed=seed, temperature=temperature
            )
        )

    async def verify(
        self,
        prompt_tokens: Sequence[int],
        output_tokens: Sequence[int],
        max_tokens: int,
        seed: int = 0,
        temperature: float = 0.0,
        mode: str = "full",
        k: int = DEFAULT_SPOT_K,
        nonce: bytes = b"",
        eps_accept: float = EPS_ACCEPT,
    ) -> Verdict:
        """RASTiC (camelid.compute.rastic.verify) in the worker."""
        wire = await self.call(
            "verify",
            prompt_tokens=list(prompt_tokens),
            output_tokens=list(output_tokens),
            max_tokens=max_tokens,
            seed=seed,
            temperature=temperature,
            mode=mode,
            k=k,
            nonce=nonce,
            eps_accept=eps_accept,
        )
        return verdict_from_wire(wire)

    async def check_request(self, request: VerificationRequest) -> tuple[PositionResult, ...]:
        """A neighbour's outsourced RASTiC request, checked; the node signs the results itself."""
        results = await self.call("check_request", request=request.to_dict())
        return tuple(PositionResult.from_dict(r) for r in results)

    async def tamper(self, prompt_tokens: Sequence[int], output_tokens: Sequence[int]) -> list[int]:
        return list(await self.call("tamper", prompt_tokens=list(prompt_tokens), output_tokens=list(output_tokens)))


def machine_cpu_flags() -> list[str]:
    """The SIMD features this machine's CPU reports that matter to llama.cpp's kernels (Linux)."""
    wanted = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8")
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:
        return []
    return [f for f in wanted if f in flags]

