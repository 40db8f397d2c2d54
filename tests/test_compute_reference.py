"""The reference forward pass (tiny models): one answer everywhere, close to llama.cpp, recomputable per element."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_model import GEMMA3_LAYERS, N_LAYER, write_tiny_gemma3, write_tiny_model

from camelid.compute import refmath
from camelid.compute.engine import Engine
from camelid.compute.rastic import EPS_SLASH
from camelid.compute.reference import LEAF_VALUES, ReferenceModel, checkpoint_root
from camelid.compute.sampling import token_gap

REPO = Path(__file__).resolve().parent.parent
LOGIT_ROWS = (5, 100)
# llama.cpp keeps keys and values in float16: on the tiny models' logits (|logit| up to 15 for llama, 29 for
# gemma3) the two passes differ by at most 0.0106 (llama) and 0.0034 (gemma3) measured.
LLAMA_CPP_TOLERANCE = 0.03


# Checkpoints per layer: llama's 17; gemma3 adds the query and key norms and the two post norms.
ARCHITECTURES = {"llama": (write_tiny_model, N_LAYER, 17), "gemma3": (write_tiny_gemma3, GEMMA3_LAYERS, 21)}


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def model_path(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    write = ARCHITECTURES[request.param][0]
    return write(tmp_path_factory.mktemp("tiny") / f"{request.param}.gguf")


@pytest.fixture(scope="module")
def reference(model_path: Path) -> ReferenceModel:
    return ReferenceModel(model_path)


@pytest.fixture(scope="module")
def engine(model_path: Path):
    with Engine(model_path, n_threads=1, n_ctx=512, n_batch=64) as eng:
        yield eng


@pytest.fixture(scope="module")
def job(engine: Engine) -> tuple[list[int], list[int]]:
    prompt = engine.tokenize("the reference pass settles disputes")
    return prompt, engine.generate(prompt, 24)


def _bits(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f4").tobytes()


def test_tree_sum_is_the_tree_over_the_row_padded_to_a_power_of_two() -> None:
    rows = np.random.default_rng(0).standard_normal((4, 77)).astype(np.float32)
    padded = np.zeros((4, 128), dtype=np.float32)
    padded[:, :77] = rows
    while padded.shape[-1] > 1:
        padded = padded[:, 0::2] + padded[:, 1::2]
    assert _bits(refmath.tree_sum(rows)) == _bits(padded[:, 0])


def test_the_polynomials_are_within_a_few_ulp_of_the_true_functions() -> None:
    x = np.linspace(-80, 80, 100_001, dtype=np.float32)
    exact = np.exp(x.astype(np.float64))
    assert np.max(np.abs(refmath.exp(x) - exact) / exact) < 2e-7
    y = np.linspace(1e-3, 1e6, 100_001, dtype=np.float32)
    assert np.max(np.abs(refmath.log(y) - np.log(y.astype(np.float64)))) < 1e-6
    angles = np.linspace(-4000, 4000, 100_001, dtype=np.float32)
    sin, cos = refmath.sin_cos(angles)
    assert np.max(np.abs(sin - np.sin(angles.astype(np.float64)))) < 2e-7
    assert np.max(np.abs(cos - np.cos(angles.astype(np.float64)))) < 2e-7
    g = np.linspace(-10, 10, 10_001, dtype=np.float32).astype(np.float64)
    gelu = 0.5 * g * (1 + np.tanh(np.sqrt(2 / np.pi) * (g + 0.044715 * g**3)))
    assert np.max(np.abs(refmath.gelu_tanh(g.astype(np.float32)) - gelu)) < 1e-6


def test_the_trace_has_its_checkpoints_per_layer_plus_3(reference: ReferenceModel, job) -> None:
    prompt, output = job
    trace = reference.trace(prompt + output, LOGIT_ROWS)
    assert list(trace) == reference.checkpoint_names()
    _, n_layer, per_layer = ARCHITECTURES[reference.hparams.arch]
    assert len(trace) == per_layer * n_layer + 3
    assert all(values.dtype == np.float32 for values in trace.values())
    n = len(prompt) + len(output)
    assert [v.shape for v in trace.values()] == [reference.checkpoint_shape(c, n, len(LOGIT_ROWS)) for c in trace]
    assert trace["logits"].shape == (len(LOGIT_ROWS),)
    last = len(prompt) + len(output) - 1
    two_rows = reference.logits(prompt + output, [last], LOGIT_ROWS)[0]
    assert _bits(two_rows) == _bits(trace["logits"])
    assert _bits(two_rows) == _bits(reference.logits(prompt + output, [last])[0][list(LOGIT_ROWS)])


def test_two_runs_give_the_same_bits(model_path: Path, job) -> None:
    prompt, output = job
    first = ReferenceModel(model_path).trace(prompt + output, LOGIT_ROWS)
    second = ReferenceModel(model_path).trace(prompt + output, LOGIT_ROWS)
    assert [_bits(v) for v in first.values()] == [_bits(v) for v in second.values()]


_ROOTS_SCRIPT = """
import sys
from camelid.compute.reference import ReferenceModel, checkpoint_root
tokens = [int(t) for t in sys.argv[2].split(",")]
trace = ReferenceModel(sys.argv[1]).trace(tokens, (5, 100))
print(",".join(checkpoint_root(v).hex() for v in trace.values()))
"""


def _roots_in_subprocess(model_path: Path, tokens: list[int], env: dict[str, str]) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", _ROOTS_SCRIPT, str(model_path), ",".join(map(str, tokens))],
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().split(",")


def test_the_same_bits_on_other_simd_paths_and_thread_settings(
    reference: ReferenceModel, model_path: Path, job
) -> None:
    """numpy without its AVX2/AVX-512 kernels and with other BLAS/OpenMP thread counts: not one bit moves."""
    tokens = job[0] + job[1]
    here = [checkpoint_root(v).hex() for v in reference.trace(tokens, LOGIT_ROWS).values()]
    plain = {
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
    }
    assert _roots_in_subprocess(model_path, tokens, plain) == here
    assert _roots_in_subprocess(model_path, tokens, {"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}) == here


def test_reference_logits_agree_with_llama_cpp(reference: ReferenceModel, engine: Engine, job) -> None:
    prompt, output = job
    tokens = prompt + output
    positions = list(range(len(tokens)))
    ours, theirs = reference.logits(tokens, positions), engine.logits_at(tokens, positions)
    assert np.max(np.abs(ours - theirs)) < LLAMA_CPP_TOLERANCE
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_honest_outputs_have_reference_gaps_far_below_eps_slash(
    reference: ReferenceModel, engine: Engine, temperature: float
) -> None:
    worst = 0.0
    for seed in range(4):
        prompt = engine.tokenize(f"honest job {seed}")
        output = engine.generate(prompt, 24, seed=seed, temperature=temperature)
        logits = reference.logits(prompt + output[:-1], [len(prompt) - 1 + j for j in range(len(output))])
        gaps = [
            token_gap(row, token, seed, j, temperature)
            for j, (row, token) in enumerate(zip(logits, output, strict=True))
        ]
        worst = max(worst, *gaps)
    assert worst < EPS_SLASH / 10


def test_one_element_recomputed_from_its_inputs_equals_the_full_pass(reference: ReferenceModel, job) -> None:
    """Every checkpoint kind, at its first, last and random elements: the referee's step gives the same bits."""
    prompt, output = job
    tokens = prompt + output
    trace = reference.trace(tokens, LOGIT_ROWS)
    flat = {name: values.ravel() for name, values in trace.items()}
    reads: list[str] = []

    def read(name: str, start: int, length: int) -> np.ndarray:
        reads.append(name)
        assert start >= 0 and start + length <= flat[name].size
        return flat[name][start : start + length].copy()

    rng = np.random.default_rng(7)
    for name, values in flat.items():
        for index in {0, values.size - 1, *(int(i) for i in rng.integers(0, values.size, 6))}:
            reads.clear()
            value = reference.recompute(name, index, tokens, LOGIT_ROWS, read)
            assert _bits(np.array([value])) == _bits(values[index : index + 1]), (name, index)
            assert len(reads) <= 2, (name, reads)  # at most two runs of earlier checkpoints
            assert all(reference.checkpoint_names().index(r) < reference.checkpoint_names().index(name) for r in reads)


def test_a_wrong_input_row_changes_the_recomputed_element(reference: ReferenceModel, job) -> None:
    """What makes move 3 decisive: the referee's value follows the committed inputs, so a lie shows."""
    tokens = job[0] + job[1]
    trace = reference.trace(tokens, LOGIT_ROWS)
    flat = {name: values.ravel().copy() for name, values in trace.items()}
    name, index = "blk.1.attn_out", 3

    def read(source: str, start: int, length: int) -> np.ndarray:
        return flat[source][start : start + length]

    honest = reference.recompute(name, index, tokens, LOGIT_ROWS, read)
    flat["blk.1.attn"][5] += np.float32(0.5)
    assert reference.recompute(name, index, tokens, LOGIT_ROWS, read) != honest


def test_checkpoint_root_commits_to_every_bit() -> None:
    values = np.arange(3 * LEAF_VALUES + 5, dtype=np.float32)
    root = checkpoint_root(values)
    flipped = values.copy()
    flipped.view(np.uint32)[LEAF_VALUES + 1] ^= 1
    assert checkpoint_root(flipped) != root
    assert checkpoint_root(values.reshape(1, -1)) == root


def test_bad_inputs_are_refused_by_name(reference: ReferenceModel, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tokens"):
        reference.logits([1, 999_999], [1])
    with pytest.raises(ValueError, match="positions"):
        reference.logits([1, 2], [2])
    with pytest.raises(ValueError, match="rows"):
        reference.trace([1, 2], [reference.hparams.n_vocab])
    with pytest.raises(ValueError, match="does not exist"):
        ReferenceModel(tmp_path / "missing.gguf")
    def zeros(*_: object) -> np.ndarray:
        return np.zeros(1, np.float32)

    for name in ("blk.0.nothing", f"blk.{reference.hparams.n_layer}.q"):
        with pytest.raises(ValueError, match="no checkpoint"):
            reference.recompute(name, 0, [1], LOGIT_ROWS, zeros)
    with pytest.raises(ValueError, match="outside"):
        reference.recompute("embd", reference.hparams.n_embd, [1], LOGIT_ROWS, zeros)
