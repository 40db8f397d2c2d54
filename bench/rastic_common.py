"""Shared pieces of the RASTiC experiments: prompts, engines, the cheaper model, tables."""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import llama_cpp
import numpy as np

from camelid.compute.engine import Engine, init_backend
from camelid.compute.models import DEFAULT_MODEL, KNOWN_MODELS, known_model_path, model_dir
from camelid.compute.rastic import EPS_ACCEPT, EPS_SLASH
from camelid.compute.vocab import ModelVocab

REPO = Path(__file__).resolve().parent.parent
IMG_DIR = REPO / "docs" / "img"

# Generation and verification deliberately differ in thread count and batch size, as two
# machines would; the generator's decode runs one token per llama_decode either way.
GENERATOR_CONFIG = {"n_threads": 2, "n_batch": 512}
VERIFIER_CONFIG = {"n_threads": 1, "n_batch": 32}

_TOPICS = [
    "llamas", "the ocean", "a small bakery", "quantum computers", "the Roman empire", "volcanoes",
    "a lost key", "jazz music", "the moon landing", "honey bees", "a mountain village", "chess",
    "rainforests", "the printing press", "a lighthouse keeper", "bicycles", "black holes",
    "a city at night", "ancient Egypt", "coffee", "a robot that learns to paint", "glaciers",
    "the stock market", "origami", "a desert caravan", "vaccines", "trains", "a haunted house",
    "photosynthesis", "the first computer",
]
_FORMS = [
    "Write a short story about {}.",
    "Explain to a child what makes {} interesting.",
    "Here are five facts about {}:\n1.",
    "Q: What is the most surprising thing about {}?\nA:",
]


def prompts(n: int) -> list[str]:
    """n distinct prompts; any prefix cycles through every topic and mixes the forms."""
    total = len(_TOPICS) * len(_FORMS)
    if n > total:
        raise ValueError(f"only {total} distinct prompts available")
    # k -> (topic k mod 30, form (k + k div 30) mod 4) is a bijection onto topic x form pairs.
    return [_FORMS[(k + k // len(_TOPICS)) % len(_FORMS)].format(_TOPICS[k % len(_TOPICS)]) for k in range(n)]


def _options() -> argparse.Namespace:
    """`--model NAME|PATH` (a known name or a GGUF file; default the default model) and `--max-threads N`
    (caps every engine's threads: on a shared machine a second thread waiting at ggml's barriers costs more
    than it brings)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--max-threads", type=int, default=None)
    return parser.parse_known_args()[0]


def bench_model() -> str:
    return str(_options().model)


def model_path() -> Path:
    name = bench_model()
    return known_model_path(name) if name in KNOWN_MODELS else Path(name)


def image_path(stem: str) -> Path:
    """docs/img/<stem>.png for the default model, <stem>_<model>.png for another."""
    name = bench_model()
    return IMG_DIR / (f"{stem}.png" if name == DEFAULT_MODEL else f"{stem}_{Path(name).stem}.png")


def bench_prompts(n: int) -> list[str]:
    """prompts(n) as a client would send them: through the model's chat template when it has one (an instruct
    model answers what it is asked), as plain text for a base model."""
    vocab = ModelVocab(model_path())
    try:
        if vocab.chat_template is None:
            return prompts(n)
        return [vocab.chat_template.render([("user", text)]) for text in prompts(n)]
    finally:
        vocab.close()


def engine(path: Path | None = None, **config: int) -> Engine:
    cap = _options().max_threads
    if cap is not None:
        config["n_threads"] = min(config.get("n_threads", cap), cap)
    return Engine(path or model_path(), **config)


def describe(eng: Engine) -> str:
    return f"threads={eng.n_threads} n_batch={eng.n_batch}"


Job = tuple[list[int], list[int], int, float]  # prompt tokens, output tokens, seed, temperature


def honest_jobs(gen: Engine, n_prompts: int, max_tokens: int, temperatures: Sequence[float]) -> list[Job]:
    """What an honest node produces for each prompt at each temperature (seed = prompt index when sampled)."""
    jobs: list[Job] = []
    for i, text in enumerate(prompts(n_prompts)):
        prompt = gen.tokenize(text)
        for temperature in temperatures:
            seed = i if temperature > 0 else 0
            progress(f"generating job {len(jobs) + 1}/{n_prompts * len(temperatures)}")
            jobs.append((prompt, gen.generate(prompt, max_tokens, seed, temperature), seed, temperature))
    return jobs


# Columns of gap_columns(), which summarise the honest gaps of a set of jobs.
GAP_HEADER = [
    "jobs",
    "positions with gap > 0",
    "jobs an exact match rejects",
    "max gap",
    "99.9th pct of nonzero gaps",
    f"jobs rejected (eps_accept={EPS_ACCEPT})",
    f"jobs slashable (eps_slash={EPS_SLASH})",
]


def gap_columns(job_gaps: Sequence[np.ndarray]) -> list[object]:
    """One table row's worth of figures for the per-position gaps of honest jobs (GAP_HEADER)."""
    flat = np.concatenate(job_gaps)
    nonzero = flat[flat > 0]
    return [
        len(job_gaps),
        f"{np.mean(flat > 0):.2%}",
        sum(bool((g > 0).any()) for g in job_gaps),
        f"{flat.max():.3f}",
        f"{np.quantile(nonzero, 0.999) if nonzero.size else 0:.3f}",
        sum(bool((g > EPS_ACCEPT).any()) for g in job_gaps),
        sum(bool((g > EPS_SLASH).any()) for g in job_gaps),
    ]


def cheap_model_path() -> Path:
    """The model under test requantized to Q2_K: a cheaper model a lazy node might run instead."""
    source = model_path()
    name = "gemma-3-270m" if bench_model() == DEFAULT_MODEL else source.stem
    target = model_dir() / f"{name}-q2_k.gguf"
    if target.exists():
        return target
    init_backend()  # routes llama.cpp's per-tensor log into Python logging
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q2_K
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    partial = target.with_suffix(".partial")
    status = llama_cpp.llama_model_quantize(
        str(source).encode(), str(partial).encode(), ctypes.byref(params)
    )
    if status != 0:
        raise RuntimeError(f"llama_model_quantize failed with status {status}")
    os.replace(partial, target)
    return target


def interleaved_medians(jobs: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median wall time of each job, running them in turn `repeats` times.

    Interleaving puts every job under the same background load, so their ratios stay meaningful
    on a shared machine even when absolute times drift.
    """
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def progress(message: str) -> None:
    sys.stderr.write(f"\r{message}\033[K")
    sys.stderr.flush()
