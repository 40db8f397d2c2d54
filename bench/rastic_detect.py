"""Experiment 3: how often RASTiC catches each cheating strategy, in spot and full mode.

Run: .venv/bin/python bench/rastic_detect.py [--model smollm2|PATH] [--jobs N] [--max-threads N]
(default: the default model, gemma-3-270m, 40 jobs per strategy).
Every job asks for MAX_TOKENS tokens. For each strategy the verifier records the gap at every
position of the cheat's output (one full prefill), which gives the full-mode verdict and, for spot
mode, the exact detection probability over the verifier's random choice of positions; a real spot
verification with a random nonce is also run per job as a cross-check. From the same gaps it prints
what each strategy costs an honest client who pays before verifying, and what it earns the cheater.
"""

from __future__ import annotations

import argparse
import math
import random

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from rastic_common import (
    GENERATOR_CONFIG,
    VERIFIER_CONFIG,
    bench_prompts,
    cheap_model_path,
    engine,
    image_path,
    markdown_table,
    progress,
)

from camelid.compute.engine import Engine
from camelid.compute.rastic import (
    DEFAULT_SPOT_K,
    EPS_ACCEPT,
    EPS_SLASH,
    position_gaps,
    structural_failures,
    verify,
)
from camelid.node.jobs.common import STAKE_MULTIPLE

N_JOBS = 40
STAKE_MULTIPLES = sorted({1, 2, 3, STAKE_MULTIPLE})
MAX_TOKENS = 64
TEMPERATURE = 0.8
SPOT_KS = (3, DEFAULT_SPOT_K)
EPS_GRID = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
WHITEPAPER_MISS = 1 / 50257**3  # 7.78e-15: three random GPT-2 tokens all matching
_WORDS = ["red", "green", "blue", "one", "two", "three", "cat", "dog", "sun", "moon", "up", "down", "yes", "no"]


def repetitive_prompt(rng: random.Random) -> str:
    """A prompt made of a short word pattern repeated, the setting of whitepaper 2.5.7's attack."""
    pattern = rng.sample(_WORDS, rng.randint(2, 5))
    return " ".join(pattern * rng.randint(3, 5))


def continue_pattern(prompt: list[int], n: int) -> list[int]:
    """The repetition cheat: find the prompt's period and repeat it, with no model at all."""
    for period in range(1, len(prompt) // 2 + 1):
        if prompt[-2 * period : -period] == prompt[-period:]:
            break
    else:
        period = 1
    cycle = prompt[-period:]
    return [cycle[i % period] for i in range(n)]


def spot_detection_probability(failing: np.ndarray, k: int) -> float:
    """P(a spot check with k interior draws hits a failing position), given per-position failures."""
    n = len(failing)
    if failing[0] or failing[-1]:
        return 1.0
    interior = n - 2
    bad = int(failing[1:-1].sum()) if interior > 0 else 0
    if k >= interior:
        return float(bad > 0)
    return 1.0 - math.comb(interior - bad, k) / math.comb(interior, k)


def outcome_shares(
    gaps_list: list[np.ndarray], identical: list[bool], k: int | None, full_on_failure: bool = False
) -> dict[str, float]:
    """Outcome shares of a strategy's jobs under full verification (k None) or spot with k interior draws (the
    expected share over the verifier's draws). "good" passes and is identical to the honest output (the client
    got what it paid for); "accepted" passes although it differs; "band" is rejected (a checked gap above
    EPS_ACCEPT) but not slashable (no checked gap above EPS_SLASH); "slashed" has a checked gap above EPS_SLASH.
    `full_on_failure`: a client that rejects in spot mode checks every position before it decides to slash."""

    def caught(failing: np.ndarray) -> float:
        return float(failing.any()) if k is None else spot_detection_probability(failing, k)

    rejected = np.array([caught(g > EPS_ACCEPT) for g in gaps_list])
    if full_on_failure:
        slashed = rejected * np.array([float((g > EPS_SLASH).any()) for g in gaps_list])
    else:
        slashed = np.array([caught(g > EPS_SLASH) for g in gaps_list])
    good = np.array(identical, dtype=float) * (1 - rejected)
    return {"good": float(good.mean()), "accepted": float((1 - rejected - good).mean()),
            "band": float((rejected - slashed).mean()), "slashed": float(slashed.mean())}


def client_loss(shares: dict[str, float], multiple: int) -> float:
    """Expected loss per job, in rewards R, of a client that pays R before it verifies: an accepted wrong output
    or a band output costs R; a slash returns the payout and pays the stake (multiple x R) to it."""
    return shares["accepted"] + shares["band"] - multiple * shares["slashed"]


def break_even_saving(shares: dict[str, float], multiple: int) -> float:
    """The share of R the strategy must save in compute to beat honest work. The cheater is paid R unless
    slashed, when it loses the payout and the stake: R - E[take] = (1 + multiple) x P(slashed)."""
    return (1 + multiple) * shares["slashed"]


def build_jobs(gen: Engine, cheap: Engine, rng: random.Random, n_jobs: int) -> dict[str, list[tuple]]:
    """strategy -> [(prompt, claimed output, seed, temperature, honest output)]."""
    end_tokens = {t for t in range(gen.n_vocab) if gen.is_end(t)}
    strategies: dict[str, list[tuple]] = {
        name: []
        for name in (
            "honest, greedy (control)",
            "honest, T=0.8 (control)",
            "random tokens",
            "cheaper model (Q2_K)",
            "truncated + end token",
            "one token changed",
            "repetition (2.5.7)",
            "other seed, T=0.8",
        )
    }
    for i, text in enumerate(bench_prompts(n_jobs)):
        progress(f"building job {i + 1}/{n_jobs}")
        prompt = gen.tokenize(text)
        honest = gen.generate(prompt, MAX_TOKENS)
        random_output = []
        while len(random_output) < MAX_TOKENS:
            token = rng.randrange(gen.n_vocab)
            if token not in end_tokens:
                random_output.append(token)
        strategies["honest, greedy (control)"].append((prompt, honest, 0, 0.0, honest))
        strategies["random tokens"].append((prompt, random_output, 0, 0.0, honest))
        strategies["cheaper model (Q2_K)"].append((prompt, cheap.generate(prompt, MAX_TOKENS), 0, 0.0, honest))
        cut = rng.randrange(1, len(honest)) if len(honest) > 1 else 1
        strategies["truncated + end token"].append((prompt, honest[:cut] + [gen.eos], 0, 0.0, honest))
        changed = list(honest)
        middle = len(changed) // 2
        while changed[middle] == honest[middle] or changed[middle] in end_tokens:
            changed[middle] = rng.randrange(gen.n_vocab)
        strategies["one token changed"].append((prompt, changed, 0, 0.0, honest))
        sampled_honest = gen.generate(prompt, MAX_TOKENS, seed=i, temperature=TEMPERATURE)
        other_seed = gen.generate(prompt, MAX_TOKENS, seed=i + 10_000, temperature=TEMPERATURE)
        strategies["honest, T=0.8 (control)"].append((prompt, sampled_honest, i, TEMPERATURE, sampled_honest))
        strategies["other seed, T=0.8"].append((prompt, other_seed, i, TEMPERATURE, sampled_honest))
        rep_prompt = gen.tokenize(repetitive_prompt(rng))
        strategies["repetition (2.5.7)"].append(
            (rep_prompt, continue_pattern(rep_prompt, MAX_TOKENS), 0, 0.0, gen.generate(rep_prompt, MAX_TOKENS))
        )
    return strategies


def print_losses(strategies: dict[str, list[tuple]], job_gaps: dict[str, list[np.ndarray]]) -> None:
    """Experiment 3's gaps turned into money: who loses what per job under each stake multiple."""
    print(f"\nexpected loss of an honest client per job, in rewards R (client pays R before verifying; current "
          f"STAKE_MULTIPLE = {STAKE_MULTIPLE}; negative: the client gains), and the compute a strategy must save,"
          " in R, to beat honest work (above 1 it never pays):")
    rows = []
    modes = (
        ("full", None, False),
        (f"spot k={DEFAULT_SPOT_K}, no full check (before session 5)", DEFAULT_SPOT_K, False),
        (f"spot k={DEFAULT_SPOT_K}, full on failure (rastic.verify)", DEFAULT_SPOT_K, True),
    )
    for mode, k, full_on_failure in modes:
        for name, jobs in strategies.items():
            identical = [output == honest for _, output, _, _, honest in jobs]
            shares = outcome_shares(job_gaps[name], identical, k, full_on_failure)
            rows.append(
                [mode, name]
                + [f"{shares[key]:.1%}" for key in ("good", "accepted", "band", "slashed")]
                + [f"{client_loss(shares, m):+.3f}" for m in STAKE_MULTIPLES]
                + [f"{break_even_saving(shares, m):.2f}" for m in STAKE_MULTIPLES]
            )
    print(
        markdown_table(
            ["verify", "strategy", "accepted, identical", "accepted, differs"]
            + [f"band ({EPS_ACCEPT}, {EPS_SLASH}]", "slashable"]
            + [f"client loss m={m}" for m in STAKE_MULTIPLES]
            + [f"cheater break-even saving m={m}" for m in STAKE_MULTIPLES],
            rows,
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=N_JOBS, help="jobs per strategy (default %(default)s)")
    n_jobs = parser.parse_known_args()[0].jobs
    rng = random.Random(2024)
    gen = engine(**GENERATOR_CONFIG)
    cheap = engine(cheap_model_path(), **GENERATOR_CONFIG)
    verifier = engine(**VERIFIER_CONFIG)
    strategies = build_jobs(gen, cheap, rng, n_jobs)

    rows, per_position, job_gaps = [], {}, {}
    for name, jobs in strategies.items():
        expected_spot = {k: 0.0 for k in SPOT_KS}
        actual_spot = {k: 0 for k in SPOT_KS}
        job_gaps[name] = []
        for j, (prompt, output, seed, temperature, _) in enumerate(jobs):
            progress(f"{name}: verifying job {j + 1}/{len(jobs)}")
            if structural_failures(output, MAX_TOKENS, verifier.n_vocab, verifier.is_end):
                gaps = np.full(len(output), np.inf)  # rejected and slashable without the model
            else:
                gaps = position_gaps(verifier, prompt, output, list(range(len(output))), seed, temperature)
            job_gaps[name].append(gaps)
            for k in SPOT_KS:
                expected_spot[k] += spot_detection_probability(gaps > EPS_ACCEPT, k)
                verdict = verify(
                    verifier, prompt, output, MAX_TOKENS, seed, temperature, "spot", k, rng.randbytes(16)
                )
                actual_spot[k] += not verdict.ok
        n = len(jobs)
        flat = np.concatenate(job_gaps[name])
        per_position[name] = float(np.mean(flat > EPS_ACCEPT))
        rows.append(
            [
                name,
                n,
                f"{min(map(len, job_gaps[name]))}-{max(map(len, job_gaps[name]))}",
                sum(output == honest for _, output, _, _, honest in jobs),
            ]
            + [f"{expected_spot[k] / n:.1%} ({actual_spot[k]}/{n})" for k in SPOT_KS]
            + [
                f"{sum(bool((g > EPS_ACCEPT).any()) for g in job_gaps[name])}/{n}",
                f"{sum(bool((g > EPS_SLASH).any()) for g in job_gaps[name])}/{n}",
                f"{per_position[name]:.1%}",
            ]
        )
    progress("")
    print(f"model {gen.model_id.hex()}  cheap model {cheap.model_id.hex()}")
    print(f"{n_jobs} jobs per strategy, max_tokens={MAX_TOKENS}, eps_accept={EPS_ACCEPT}, eps_slash={EPS_SLASH}\n")
    header = (
        ["strategy", "jobs", "output tokens", "identical to honest"]
        + [f"spot k={k}: expected (seen)" for k in SPOT_KS]
        + ["full: rejected", "full: slashable", "positions failing"]
    )
    print(markdown_table(header, rows))

    print("\nfull-mode jobs rejected at other tolerances, and the job's total gap (sum over positions):")
    grid_rows = []
    for name, gaps_list in job_gaps.items():
        totals = [float(np.sum(g)) for g in gaps_list]
        grid_rows.append(
            [name]
            + [f"{sum(bool((g > eps).any()) for g in gaps_list)}/{len(gaps_list)}" for eps in EPS_GRID]
            + [f"{np.mean(np.concatenate(gaps_list) > eps):.1%}" for eps in EPS_GRID]
            + [f"{min(totals):.2f}", f"{max(totals):.2f}"]
        )
    print(
        markdown_table(
            ["strategy"]
            + [f"rejected eps={eps}" for eps in EPS_GRID]
            + [f"positions > {eps}" for eps in EPS_GRID]
            + ["min total gap", "max total gap"],
            grid_rows,
        )
    )

    print_losses(strategies, job_gaps)

    print(f"\nwhitepaper 2.5.4: three matching random GPT-2 tokens, 1/50257^3 = {WHITEPAPER_MISS:.3g}")
    count_rows = []
    for name, gaps_list in job_gaps.items():
        counts = [int(np.sum(g > EPS_ACCEPT)) for g in gaps_list]
        count_rows.append([name, min(counts), f"{np.mean(counts):.2f}", f"{math.exp(-np.mean(counts)):.2g}"])
    print(
        markdown_table(
            ["strategy", "min failing positions in a job", "mean", "Poisson miss estimate exp(-mean)"], count_rows
        )
    )

    # Exact spot-mode detection as a function of k, averaged over the measured jobs.
    fig, ax = plt.subplots(figsize=(7, 4))
    ks = list(range(0, MAX_TOKENS - 1))
    for name, gaps_list in job_gaps.items():
        if "control" in name:
            continue
        curve = [np.mean([spot_detection_probability(g > EPS_ACCEPT, k) for g in gaps_list]) for k in ks]
        ax.plot([k + 2 for k in ks], curve, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel(f"positions checked per {MAX_TOKENS}-token job (boundary + last + k interior)")
    ax.set_ylabel("share of cheating jobs rejected")
    ax.set_title(f"Spot-check detection by positions checked (eps_accept = {EPS_ACCEPT})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = image_path("rastic_detection")
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
