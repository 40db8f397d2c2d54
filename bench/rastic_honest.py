"""Experiment 2: honest false rejects, and the float-noise gaps that calibrate EPS_ACCEPT / EPS_SLASH.

Run: .venv/bin/python bench/rastic_honest.py [--model smollm2|PATH]   (default: the default model, gemma-3-270m)
200 honest jobs (100 prompts, greedy and temperature 0.8) are generated with one configuration
and verified in full mode with others (different thread counts and batch sizes). Every
position's gap is recorded; an honest job is falsely rejected if any gap exceeds EPS_ACCEPT.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rastic_common import (
    GAP_HEADER,
    GENERATOR_CONFIG,
    VERIFIER_CONFIG,
    bench_prompts,
    describe,
    engine,
    gap_columns,
    image_path,
    markdown_table,
    progress,
)

from camelid.compute.rastic import EPS_ACCEPT, EPS_SLASH, position_gaps

N_PROMPTS = 100
MAX_TOKENS = 48
TEMPERATURES = (0.0, 0.8)
VERIFIER_CONFIGS = [VERIFIER_CONFIG, {"n_threads": 2, "n_batch": 512}, {"n_threads": 1, "n_batch": 7}]


def main() -> None:
    gen = engine(**GENERATOR_CONFIG)
    verifiers = [engine(**config) for config in VERIFIER_CONFIGS]
    jobs = []
    for i, text in enumerate(bench_prompts(N_PROMPTS)):
        prompt = gen.tokenize(text)
        for temperature in TEMPERATURES:
            seed = i if temperature > 0 else 0
            progress(f"generating job {len(jobs) + 1}/{N_PROMPTS * len(TEMPERATURES)}")
            jobs.append((prompt, gen.generate(prompt, MAX_TOKENS, seed, temperature), seed, temperature))

    # gaps[config][temperature] = list of per-job gap arrays
    gaps: list[dict[float, list[np.ndarray]]] = [{t: [] for t in TEMPERATURES} for _ in verifiers]
    for j, (prompt, output, seed, temperature) in enumerate(jobs):
        progress(f"verifying job {j + 1}/{len(jobs)}")
        for c, verifier in enumerate(verifiers):
            positions = list(range(len(output)))
            gaps[c][temperature].append(position_gaps(verifier, prompt, output, positions, seed, temperature))
    progress("")

    n_positions = sum(len(o) for _, o, _, _ in jobs)
    print(f"model {gen.model_id.hex()}  generator {describe(gen)}")
    print(f"{len(jobs)} honest jobs, {n_positions} output positions, max_tokens={MAX_TOKENS}\n")
    rows = [
        [describe(verifier), temperature, *gap_columns(job_gaps)]
        for verifier, per_temperature in zip(verifiers, gaps, strict=True)
        for temperature, job_gaps in per_temperature.items()
    ]
    header = ["verifier", "T", *GAP_HEADER]
    print(markdown_table(header, rows))
    every = np.concatenate([g for per_t in gaps for job_gaps in per_t.values() for g in job_gaps])
    false_rejects = sum(
        bool((g > EPS_ACCEPT).any()) for job_gaps in gaps[0].values() for g in job_gaps
    )
    print(f"\nfalse rejects with the main verifier {describe(verifiers[0])}: {false_rejects} of {len(jobs)} (goal 0)")
    print(f"largest honest gap over all configurations: {every.max():.3f} "
          f"(eps_accept {EPS_ACCEPT}, eps_slash {EPS_SLASH})")

    fig, ax = plt.subplots(figsize=(7, 4))
    nonzero = every[every > 0]
    ax.hist(nonzero, bins=40, color="tab:blue")
    ax.axvline(EPS_ACCEPT, color="tab:orange", label=f"eps_accept = {EPS_ACCEPT}")
    ax.axvline(EPS_SLASH, color="tab:red", label=f"eps_slash = {EPS_SLASH}")
    ax.set_yscale("log")
    ax.set_xlabel("gap of the honest token (logits)")
    ax.set_ylabel("positions")
    ax.set_title(f"Honest gaps > 0: {len(nonzero)} of {len(every)} checks, all verifier configurations")
    ax.legend()
    fig.tight_layout()
    path = image_path("rastic_honest_gaps")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
