"""Cross-build calibration: honest outputs generated under one llama.cpp build or configuration and
verified in full under another, as a provider's and a client's machines always differ (issue 12).

Run: .venv/bin/python bench/rastic_cross_build.py [--prompts 25] [--max-tokens 64]
         [--build portable=/tmp/lcp-portable --build avx512=/tmp/lcp-avx512]
Pairs, each in both directions: the first build against the second (1 thread, n_batch 512 both),
then within the first build 2 threads against 1, and n_batch 64 against 512. Every setup runs in a
process of its own (bench/llama_builds.py). Each generator makes --prompts jobs greedy and as many
at T = 0.8; an honest job is falsely rejected if any position's gap exceeds EPS_ACCEPT.
Generation decodes one token at a time, so n_batch changes only the verifier's prefill: with the
default 64 tokens, prompt + output spans two batches of 64 and one of 512.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from llama_builds import KNOWN_BUILDS, ChildError, build_info, child_main, parse_builds, run_child
from rastic_common import GAP_HEADER, engine, gap_columns, honest_jobs, markdown_table, progress

from camelid.compute.rastic import EPS_ACCEPT, EPS_SLASH, position_gaps

SCRIPT = Path(__file__).resolve()
TEMPERATURES = (0.0, 0.8)
Setup = tuple[str, int, int]  # build name, n_threads, n_batch


def pairs(first: str, second: str) -> list[tuple[str, Setup, Setup]]:
    """(what differs, generator setup, verifier setup) for every pair, both directions.

    The base setup runs 1 thread: ggml's threads spin at every barrier, so on a loaded machine
    2 threads generate many times slower than 1, and only the threads pair pays for that.
    """
    base = (first, 1, 512)
    return [
        (f"{first} -> {second}", base, (second, 1, 512)),
        (f"{second} -> {first}", (second, 1, 512), base),
        ("threads 2 -> 1", (first, 2, 512), base),
        ("threads 1 -> 2", base, (first, 2, 512)),
        ("n_batch 64 -> 512", (first, 1, 64), base),
        ("n_batch 512 -> 64", base, (first, 1, 64)),
    ]


def work(payload: dict[str, Any]) -> dict[str, Any]:
    """In the child: generate honest jobs, or the gap at every position of the jobs given."""
    eng = engine(n_threads=payload["n_threads"], n_batch=payload["n_batch"])
    if payload["role"] == "generate":
        jobs = honest_jobs(eng, payload["prompts"], payload["max_tokens"], TEMPERATURES)
        return {**build_info(), "jobs": jobs}
    gaps = [
        position_gaps(eng, prompt, output, range(len(output)), seed, temperature).tolist()
        for prompt, output, seed, temperature in payload["jobs"]
    ]
    return {**build_info(), "gaps": gaps}


def run_setup(builds: dict[str, Path | None], setup: Setup, payload: dict[str, Any]) -> dict[str, Any]:
    name, n_threads, n_batch = setup
    try:
        return run_child(SCRIPT, builds[name], {**payload, "n_threads": n_threads, "n_batch": n_batch}, 3600)
    except ChildError as exc:
        raise SystemExit(f"{label(setup)}: {exc}") from exc


def label(setup: Setup) -> str:
    return f"{setup[0]} t={setup[1]} b={setup[2]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="append", metavar="NAME=DIR",
                        help="exactly two builds; default: " + " ".join(f"{n}={KNOWN_BUILDS[n]}" for n in
                                                                         ("portable", "avx512")))
    parser.add_argument("--prompts", type=int, default=25, help="prompts per generator (each greedy and T=0.8)")
    parser.add_argument("--max-tokens", type=int, default=64)
    args = parser.parse_args()
    builds = parse_builds(args.build or [f"{n}={KNOWN_BUILDS[n]}" for n in ("portable", "avx512")])
    if len(builds) != 2:
        raise SystemExit("give exactly two builds")
    plan = pairs(*builds)

    generated: dict[Setup, dict[str, Any]] = {}
    for _, gen, _ in plan:
        if gen not in generated:
            progress(f"generating with {label(gen)}")
            generated[gen] = run_setup(builds, gen, {"role": "generate", "prompts": args.prompts,
                                                     "max_tokens": args.max_tokens})
    gaps: dict[tuple[Setup, Setup], list[np.ndarray]] = {}
    for ver in dict.fromkeys(ver for _, _, ver in plan):
        sources = [gen for _, gen, v in plan if v == ver]
        jobs = [job for gen in sources for job in generated[gen]["jobs"]]
        progress(f"verifying {len(jobs)} jobs with {label(ver)}")
        per_job = iter(run_setup(builds, ver, {"role": "verify", "jobs": jobs})["gaps"])
        for gen in sources:
            gaps[gen, ver] = [np.array(next(per_job)) for _ in generated[gen]["jobs"]]
    progress("")

    for name in builds:
        info = next(v for setup, v in generated.items() if setup[0] == name)
        print(f"{name}: {info['llama_cpp']}\n  {info['system_info']}")
    n_jobs = sum(len(v["jobs"]) for v in generated.values())
    print(f"\n{n_jobs} honest jobs generated, {sum(len(g) for g in gaps.values())} full verifications; "
          f"gemma-3-270m Q4_K_M, max_tokens {args.max_tokens}, T in {TEMPERATURES}\n")
    rows = []
    for what, gen, ver in plan:
        for temperature in TEMPERATURES:
            job_gaps = [g for g, job in zip(gaps[gen, ver], generated[gen]["jobs"], strict=True)
                        if job[3] == temperature]
            rows.append([what, f"{label(gen)} -> {label(ver)}", temperature, *gap_columns(job_gaps)])
    print(markdown_table(["pair", "generator -> verifier", "T", *GAP_HEADER], rows))
    every = [g for job_gaps in gaps.values() for g in job_gaps]
    largest = max(float(g.max()) for g in every)
    false_rejects = sum(bool((g > EPS_ACCEPT).any()) for g in every)
    margins = f" ({EPS_ACCEPT / largest:.1f}x and {EPS_SLASH / largest:.1f}x it)" if largest else ""
    print(f"\nfalse rejects: {false_rejects} of {len(every)} verifications (goal 0); largest honest gap "
          f"{largest:.3f} against eps_accept {EPS_ACCEPT} and eps_slash {EPS_SLASH}{margins}")


if __name__ == "__main__" and not child_main(work):
    main()
