"""The referee step's cost, which becomes consensus work: proof size and verify time per checkpoint kind.

Run: .venv/bin/python bench/referee_bench.py [--model NAME|PATH]   (default: gemma-3-270m Q4_K_M)

A reference trace over a short prompt (N_TOKENS tokens) is committed; for every checkpoint kind (layer 0's,
then embd, output_norm and logits) a few elements are proven as an honest accused would (move 3) and judged
as the referee would, each judged RUNS times (the median is printed). A step rides in one transaction's
scriptSig: at most 10,000 bytes in pushes of at most 520 bytes (3 bytes of PUSHDATA2 each). The runs a step
reads that grow with the prompt (a probs or v row: n values) are also sized at the longest job's n.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from rastic_common import model_path

from camelid.compute.model_id import manifest_of_file
from camelid.compute.model_proof import range_path
from camelid.compute.referee import StepClaim, judge_step, prove_step
from camelid.compute.reference import LEAF_VALUES, ReferenceModel, checkpoint_root

N_TOKENS = 16
ROWS = [17, 236_761]  # j* and o: any two vocabulary rows
RUNS = 5
ELEMENTS = 3
SCRIPTSIG_LIMIT, PUSH_LIMIT = 10_000, 520
LONGEST_JOB = 2_210  # tokens: the longest job docs/jobs-design.md sizes the game for


def in_pushes(size: int) -> int:
    """Bytes of scriptSig that `size` bytes of data take in pushes of at most 520 bytes."""
    return size + 3 * -(-size // PUSH_LIMIT)


def opening_size(n_values: int, start: int, length: int) -> int:
    """Bytes of an opening of values [start, start + length) of an n_values-value checkpoint (leaves + path)."""
    lo, hi = start // LEAF_VALUES, -(-(start + length) // LEAF_VALUES)
    leaves = min(hi * LEAF_VALUES, n_values) * 4 - lo * LEAF_VALUES * 4
    n_leaves = -(-n_values // LEAF_VALUES)
    return leaves + 1 + 32 * len(range_path([bytes(32)] * n_leaves, lo, hi))


def main() -> None:
    path = model_path()
    reference, manifest = ReferenceModel(path), manifest_of_file(path)
    rng = np.random.default_rng(0)
    tokens = [2, *(int(t) for t in rng.integers(300, 20_000, N_TOKENS - 1))]
    started = time.perf_counter()
    trace = reference.trace(tokens, ROWS)
    names = reference.checkpoint_names()
    roots = [checkpoint_root(trace[name]) for name in names]
    print(f"{path.name}: {len(names)} checkpoints over {N_TOKENS} tokens, trace {time.perf_counter() - started:.1f} s")
    print(f"{'checkpoint':<22}{'proof bytes':>14}{'in pushes':>11}{'verify ms':>11}  fits")
    worst = (0, "")
    for name in [n for n in names if not n.startswith("blk.") or n.startswith("blk.0.")]:
        size, times = trace[name].size, []
        sizes = []
        for element in sorted({0, size - 1, *(int(e) for e in rng.integers(size, size=ELEMENTS - 2))}):
            proof = prove_step(reference, tokens, ROWS, trace, name, element, manifest)
            claim = StepClaim(names.index(name), element)
            for _ in range(RUNS):
                t0 = time.perf_counter()
                assert judge_step(manifest.id, roots, tokens, ROWS, claim, proof)
                times.append(time.perf_counter() - t0)
            sizes.append(len(proof.encode()) + len(claim.encode()))
        big = max(sizes)
        worst = max(worst, (big, name))
        fits = "yes" if in_pushes(big) <= SCRIPTSIG_LIMIT else "NO"
        print(f"{name:<22}{min(sizes):>7}-{big:<6}{in_pushes(big):>11}{statistics.median(times) * 1e3:>11.2f}  {fits}")
    print(f"worst at {N_TOKENS} tokens: {worst[1]}, {worst[0]} bytes ({in_pushes(worst[0])} in pushes)")
    hp, n = reference.hparams, LONGEST_JOB
    # at the longest job, the n-wide runs: a scores/probs row (probs reads one, attn reads a probs and a v row)
    row = opening_size(hp.n_head * n * n, n * n - n, n)
    v_row = opening_size(hp.n_head_kv * hp.head_dim * n, hp.n_head_kv * hp.head_dim * n - n, n)
    print(f"at {n} tokens: a probs step opens a {row}-byte scores row, an attn step that and a {v_row}-byte v row")


if __name__ == "__main__":
    main()
