"""The llama.cpp worker process and its supervisor, with real worker processes on the tiny model."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest
from tiny_model import write_broken_tiny_model, write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.model_id import model_id_of_file
from camelid.compute.worker_client import EngineUnavailable, EngineWorker, WorkerSettings, describe_exit
from camelid.node import compute_service
from camelid.node.compute_service import ComputeService, WorkerState

CRASHING_WORKER = Path(__file__).parent / "crashing_worker"
SETTINGS = WorkerSettings(n_threads=1, n_ctx=512)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


async def test_worker_answers_as_the_engine_does(model_path: Path) -> None:
    worker = await EngineWorker.start(model_path, SETTINGS)
    try:
        with Engine(model_path, n_threads=1, n_ctx=512) as engine:
            prompt = engine.tokenize("llamas and alpacas")
            expected = engine.generate(prompt, 16, seed=3, temperature=0.7)
            assert await worker.tokenize("llamas and alpacas") == prompt
            # Concurrent requests are answered one at a time, each with its own answer.
            outputs = await asyncio.gather(*(worker.generate(prompt, 16, 3, 0.7) for _ in range(3)))
            assert outputs == [expected] * 3
            assert await worker.detokenize(expected) == engine.detokenize(expected)
        verdict = await worker.verify(prompt, expected, 16, 3, 0.7)
        assert verdict.ok and verdict.checked == tuple(range(len(expected)))
        await worker.prefill(prompt)  # what a client does while its job is generated elsewhere
        verdict = await worker.verify(prompt, expected, 16, 3, 0.7)
        assert verdict.ok and verdict.checked == tuple(range(len(expected)))
        assert worker.info["model_id"] == model_id_of_file(model_path)
        assert "AVX2 = 1" in worker.info["system_info"]
    finally:
        await worker.stop()
    assert not worker.alive


async def test_bad_input_is_a_value_error_and_the_worker_lives_on(model_path: Path) -> None:
    worker = await EngineWorker.start(model_path, SETTINGS)
    try:
        with pytest.raises(ValueError, match="not a token id"):
            await worker.detokenize([10**9])
        with pytest.raises(ValueError, match="unknown worker request"):
            await worker.call("format_disk")
        assert await worker.tokenize("still here")
    finally:
        await worker.stop()


@pytest.mark.parametrize("signum", [signal.SIGSEGV, signal.SIGKILL])
async def test_a_dead_worker_fails_its_request_with_the_signal(model_path: Path, signum: int) -> None:
    worker = await EngineWorker.start(model_path, SETTINGS)
    os.kill(worker.pid, signal.SIGSTOP)  # frozen mid-request, as in a long generation
    request = asyncio.create_task(worker.generate([1, 5, 6], 32, 0, 0.0))
    await asyncio.sleep(0.2)
    os.kill(worker.pid, signum)
    with contextlib.suppress(ProcessLookupError):  # a SIGKILLed worker may be reaped already
        os.kill(worker.pid, signal.SIGCONT)  # a stopped process handles SIGSEGV only once continued
    with pytest.raises(EngineUnavailable, match=f"killed by {signal.Signals(signum).name} during generate"):
        await request
    with pytest.raises(EngineUnavailable):
        await worker.tokenize("x")
    await worker.stop()


async def test_an_unloadable_file_is_a_value_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + os.urandom(1000))
    with pytest.raises(ValueError, match="junk.gguf is not a readable GGUF file: GGUF version"):
        await EngineWorker.start(junk, SETTINGS)  # its model id (header records) is read before llama.cpp loads it


def test_describe_exit() -> None:
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(3) == "exited with status 3"


async def test_supervisor_restarts_a_crashed_worker(model_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compute_service, "BACKOFF", (0.1, 0.1))
    model_id = model_id_of_file(model_path)
    service = ComputeService(SETTINGS, {model_id: model_path}.get)
    try:
        assert await service.start([(model_id, model_path)]) == [model_id]
        first = await service.engine_for(model_id)
        assert first is not None
        os.kill(first.pid, signal.SIGSEGV)
        await first.wait_exit()
        with pytest.raises(EngineUnavailable):
            await first.tokenize("x")
        for _ in range(100):  # back after the backoff, self-checked again
            await asyncio.sleep(0.1)
            if service.workers[model_id].state is WorkerState.READY:
                break
        second = await service.engine_for(model_id)
        assert second is not None and second.pid != first.pid
        status = service.info()["models"][0]
        assert status["state"] == "ready" and status["restarts"] == 1 and status["pid"] == second.pid
        assert "SIGSEGV" in status["last_error"]
        assert await second.tokenize("back") == await second.tokenize("back")
    finally:
        await service.close()


async def test_a_worker_that_dies_at_once_is_given_up(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(compute_service, "BACKOFF", (0.1, 0.1))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(CRASHING_WORKER), os.environ.get("PYTHONPATH", "")]))
    model_id = model_id_of_file(model_path)
    service = ComputeService(SETTINGS, {model_id: model_path}.get)
    try:
        assert await service.start([(model_id, model_path)]) == []
        worker = service.workers[model_id]
        assert worker.state is WorkerState.FAILED
        assert worker.restarts == compute_service.MAX_QUICK_DEATHS - 1  # then no more
        assert "SIGSEGV" in (worker.last_error or "")
        assert not service.usable(model_id)
        with pytest.raises(EngineUnavailable, match="compute for model .* is off"):
            await service.engine_for(model_id)
    finally:
        await service.close()
    assert "runs on without compute" in capsys.readouterr().err


async def test_the_self_check_fails_on_a_corrupt_model(tmp_path: Path) -> None:
    broken = write_broken_tiny_model(tmp_path / "broken.gguf")
    model_id = model_id_of_file(broken)
    service = ComputeService(SETTINGS, {model_id: broken}.get)
    try:
        assert await service.start([(model_id, broken)]) == []
        worker = service.workers[model_id]
        assert worker.state is WorkerState.FAILED
        assert worker.restarts == 0  # a wrong answer is not retried: it would be wrong again
        assert "self-check failed" in (worker.last_error or "")
    finally:
        await service.close()


async def test_the_self_check_records_the_largest_honest_gap_and_warns_near_eps_accept(
    model_path: Path, monkeypatch, caplog
) -> None:
    model_id = model_id_of_file(model_path)
    service = ComputeService(SETTINGS, {model_id: model_path}.get)
    try:
        assert await service.start([(model_id, model_path)]) == [model_id]
        gap = service.workers[model_id].self_check_gap
        assert gap is not None and 0.0 <= gap <= compute_service.EPS_ACCEPT - compute_service.PROBE_MARGIN
        assert service.workers[model_id].status()["self_check_gap"] == gap
        assert "within" not in caplog.text
    finally:
        await service.close()
    # A margin wider than EPS_ACCEPT puts every gap, even 0, too close: the same check now warns.
    monkeypatch.setattr(compute_service, "PROBE_MARGIN", compute_service.EPS_ACCEPT + 1)
    service = ComputeService(SETTINGS, {model_id: model_path}.get)
    try:
        assert await service.start([(model_id, model_path)]) == [model_id]  # a warning, not a failure
        assert "verifiers may reject honest jobs of this model" in caplog.text
    finally:
        await service.close()


async def test_concurrent_generations_are_batched_and_a_bad_one_fails_alone(model_path: Path) -> None:
    worker = await EngineWorker.start(model_path, WorkerSettings(n_threads=1, n_ctx=128, slots=4))
    try:
        jobs = [([1, 5 + i, 6], 10, i, 0.5 * (i % 2)) for i in range(4)]
        alone = [await worker.generate(*job) for job in jobs]
        together = await asyncio.gather(*(worker.generate(*job) for job in jobs))
        assert together == alone
        assert worker.info["slots"] == 4
        mixed = [worker.generate([1, 10**6], 4, 0, 0.0), *(worker.generate(*job) for job in jobs[:2])]
        results = await asyncio.gather(*mixed, return_exceptions=True)
        assert isinstance(results[0], ValueError) and "not a token id" in str(results[0])
        assert results[1:] == alone[:2]
    finally:
        await worker.stop()

