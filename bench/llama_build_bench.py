"""Generation tokens/s and RASTiC full-verify time per llama-cpp-python build, side by side.

Run: .venv/bin/python bench/llama_build_bench.py [--build NAME=DIR ...] [--tokens 128] [--repeats 7]
Default builds: the venv's own ("installed", the baseline) and every unpacked /tmp/lcp-NAME
(bench/llama_builds.py). Every build runs in a process of its own that loads gemma-3-270m once and
finds a prompt whose greedy output runs the full --tokens; the bench then asks the builds in turn
for one timed generation and one full verification of that output, --repeats times, rotating the
order, so background load on a shared machine hits every build alike. Figures are medians; a speed
ratio is the median over repeats of the two builds' ratio within one repeat, which cancels load
that drifts between repeats. A build whose process dies is reported with its signal
("native: crashed, SIGSEGV") and left out from then on.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

from llama_builds import INSTALLED, BuildProcess, ChildError, build_info, child_main, default_builds, parse_builds
from rastic_common import engine, markdown_table, progress, prompts

from camelid.compute.engine import Engine
from camelid.compute.rastic import verify

SCRIPT = Path(__file__).resolve()
_job: dict[str, Any] = {}  # in the child: the engine and the job it times


def serve(request: dict[str, Any]) -> dict[str, Any]:
    """In the child: "setup" loads the model and picks the job; "measure" times it once."""
    if request["op"] == "setup":
        n = request["tokens"]
        eng = engine(n_threads=request["threads"])
        for text in prompts(120):
            prompt = eng.tokenize(text)
            output = eng.generate(prompt, n)  # doubles as the warm-up
            if len(output) == n:
                break
        else:
            raise SystemExit(f"no prompt ran to {n} tokens")
        _job.update(engine=eng, prompt=prompt, output=output)
        return {**build_info(), "prompt": text, "output": hashlib.sha256(repr(output).encode()).hexdigest()[:12]}
    eng: Engine = _job["engine"]
    prompt, output = _job["prompt"], _job["output"]
    start = time.perf_counter()
    again = eng.generate(prompt, len(output))
    generate_s = time.perf_counter() - start
    start = time.perf_counter()
    verdict = verify(eng, prompt, output, len(output), mode="full")
    verify_s = time.perf_counter() - start
    if again != output or not verdict.ok:
        raise SystemExit("the build is not deterministic or rejects its own output")
    return {"generate": generate_s, "verify": verify_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                        help=f"a build directory, or {INSTALLED!r} (repeatable; default: all found)")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    builds = parse_builds(args.build) if args.build else default_builds()

    load_before = os.getloadavg()[0]
    children = {name: BuildProcess(SCRIPT, directory) for name, directory in builds.items()}
    info: dict[str, dict[str, str]] = {}
    failed: dict[str, str] = {}
    times: dict[str, dict[str, list[float]]] = {name: {"generate": [], "verify": []} for name in builds}
    names = list(children)
    for r in range(-1, args.repeats):  # round -1 is the set-up
        for name in names[r % len(names):] + names[:r % len(names)]:
            child = children[name]
            if name in failed:
                continue
            progress(f"repeat {r + 1}/{args.repeats}: {name}")
            try:
                if r < 0:
                    info[name] = child.call({"op": "setup", "tokens": args.tokens, "threads": args.threads}, 600)
                else:
                    for key, seconds in child.call({"op": "measure"}, 600).items():
                        times[name][key].append(seconds)
            except ChildError as exc:
                failed[name] = str(exc)
    for child in children.values():
        child.close()
    progress("")

    print(f"gemma-3-270m Q4_K_M, {args.tokens} greedy tokens, {args.threads} threads, medians of "
          f"{args.repeats} interleaved repeats; load average {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after\n")
    for name in builds:
        if name in failed:
            print(f"{name}: {failed[name]}")
        else:
            print(f"{name}: {info[name]['llama_cpp']} ({info[name]['version']}), output {info[name]['output']}")
            print(f"  {info[name]['system_info']}")
    medians = {
        name: {key: statistics.median(values) for key, values in series.items()}
        for name, series in times.items() if name not in failed
    }
    base = times[INSTALLED] if INSTALLED in medians else None

    def paired(name: str, key: str) -> str:
        """Median over repeats of the baseline's time / this build's time in the same repeat."""
        ratios = [b / t for b, t in zip(base[key], times[name][key], strict=True)] if base else []
        return f"{statistics.median(ratios):.2f}x" if ratios else ""

    rows = []
    for name in builds:
        if name not in medians:
            rows.append([name, failed[name], "", "", "", "", "", ""])
            continue
        m = medians[name]
        rows.append([
            name,
            f"{args.tokens / m['generate']:.1f}",
            f"{args.tokens / min(times[name]['generate']):.1f}",
            f"{m['generate'] * 1000:.0f}",
            f"{m['verify'] * 1000:.0f}",
            f"{m['verify'] / m['generate']:.3f}",
            paired(name, "generate"),
            paired(name, "verify"),
        ])
    print()
    print(markdown_table(
        ["build", "tokens/s", "best tokens/s", "generate ms", "full verify ms", "verify / generate",
         f"speed vs {INSTALLED}: generate", "verify"],
        rows,
    ))


if __name__ == "__main__" and not child_main(serve):
    main()
