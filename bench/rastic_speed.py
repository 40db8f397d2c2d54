"""Experiment 1 (whitepaper Figure 1): generation vs RASTiC verification time by output length.

Run: .venv/bin/python bench/rastic_speed.py
One loaded model does everything, as a node would; verification is one batched prefill
(spot: logits at k + 2 positions; full: logits at every output position).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from rastic_common import (
    GENERATOR_CONFIG,
    IMG_DIR,
    engine,
    interleaved_medians,
    markdown_table,
    progress,
    prompts,
)

from camelid.compute.rastic import DEFAULT_SPOT_K, verify

LENGTHS = [2**i for i in range(10)]  # 1 .. 512
REPEATS = 5
GOAL_LENGTH, SPOT_GOAL, FULL_GOAL = 128, 0.15, 0.5


def main() -> None:
    eng = engine(**GENERATOR_CONFIG)
    longest = max(LENGTHS)
    # Greedy output is prefix-stable, so a prompt that runs 512 tokens without an end token
    # gives exactly n tokens for every n <= 512.
    for text in prompts(120):
        prompt = eng.tokenize(text)
        full_output = eng.generate(prompt, longest)
        if len(full_output) == longest:
            break
    else:
        raise SystemExit("no prompt ran to 512 tokens")
    print(f"model {eng.model_id.hex()}  threads={eng.n_threads}  n_batch={eng.n_batch}  prompt {text!r}")

    rows, series = [], {"generate": [], "full": [], f"spot k={DEFAULT_SPOT_K}": [], "spot k=3": []}
    for n in LENGTHS:
        progress(f"length {n}")
        out = full_output[:n]
        for mode, k in (("full", 0), ("spot", DEFAULT_SPOT_K), ("spot", 3)):
            if not verify(eng, prompt, out, n, mode=mode, k=k).ok:
                raise SystemExit(f"honest output of length {n} failed {mode} verification")
        jobs = {
            "generate": lambda n=n: eng.generate(prompt, n),
            "full": lambda out=out, n=n: verify(eng, prompt, out, n, mode="full"),
            f"spot k={DEFAULT_SPOT_K}": lambda out=out, n=n: verify(eng, prompt, out, n, mode="spot", nonce=b"x"),
            "spot k=3": lambda out=out, n=n: verify(eng, prompt, out, n, mode="spot", k=3, nonce=b"x"),
        }
        times = interleaved_medians(jobs, REPEATS)
        for name, seconds in times.items():
            series[name].append(seconds)
        gen = times["generate"]
        rows.append(
            [n, f"{gen * 1000:.0f}"]
            + [f"{times[name] * 1000:.0f} ({times[name] / gen:.2f}x)" for name in list(series)[1:]]
        )
    progress("")
    header = ["output tokens", "generate ms"] + [f"verify {name} ms (ratio)" for name in list(series)[1:]]
    print(markdown_table(header, rows))

    at_goal = LENGTHS.index(GOAL_LENGTH)
    spot_ratio = series[f"spot k={DEFAULT_SPOT_K}"][at_goal] / series["generate"][at_goal]
    full_ratio = series["full"][at_goal] / series["generate"][at_goal]
    always_faster = all(
        series[name][i] < series["generate"][i] for name in list(series)[1:] for i in range(len(LENGTHS))
    )
    print(f"\nverification faster than generation at every length: {always_faster}")
    print(f"at {GOAL_LENGTH} tokens: spot k={DEFAULT_SPOT_K} {spot_ratio:.3f}x (goal <= {SPOT_GOAL}), "
          f"full {full_ratio:.3f}x (goal <= {FULL_GOAL})")

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in series.items():
        ax.plot(LENGTHS, values, marker="o", label=name if name == "generate" else f"verify {name}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("output tokens")
    ax.set_ylabel(f"seconds (median of {REPEATS})")
    ax.set_title(f"gemma-3-270m Q4_K_M, {eng.n_threads} threads: generation vs RASTiC verification")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = IMG_DIR / "rastic_speed.png"
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
