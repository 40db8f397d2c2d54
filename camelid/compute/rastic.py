"""RASTiC: check a claimed completion against the model with one batched prefill (whitepaper 2.5).

The three whitepaper conditions, on output index j (predicted from prompt + output[:j]):
  continuity  - j = 0, the first output token follows the prompt;
  integrity   - interior positions;
  truncation  - the last position, plus the structural rules: the output ends with an end
                token, or has exactly max_tokens tokens; no end token appears before the last.

Two deliberate departures from the whitepaper, measured in docs/rastic.md:
  * a position passes when its gap (max score - score of the claimed token) is <= eps_accept,
    not on an exact argmax match, because batched prefill and one-token decode use different
    float kernels and honest near-ties flip;
  * the default checks every position (mode="full"): three sampled positions miss a cheaper
    model most of the time. mode="spot" checks the boundary, the last position and k interior
    positions drawn from sha256(commitment || nonce), unknowable before the node commits; when
    it rejects only below EPS_SLASH it checks every other position too, so that a rejection
    that a dispute could win is found (docs/rastic.md, "Expected loss of an honest client").
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from camelid.compute.engine import Engine
from camelid.compute.sampling import check_sampling_params, token_gap
from camelid.core.jobscripts import output_commitment
from camelid.crypto.hashes import sha256

# Calibrated on gemma-3-270m Q4_K_M across thread counts and batch sizes (docs/rastic.md): the
# largest honest gap in 28,800 checks was 0.655 (temperature 0.8; 0.366 greedy). A client rejects
# a position above EPS_ACCEPT; a dispute may slash only above EPS_SLASH, three times the largest
# honest gap, so float noise between machines never costs an honest node its stake. Consensus uses
# EPS_SLASH alone, on the exact reference gap of a dispute game's move 1 (camelid.compute.game_referee).
EPS_ACCEPT = 0.75
EPS_SLASH = 2.0
DEFAULT_SPOT_K = 8
MODES = ("full", "spot")

MISMATCH = "mismatch"  # the model does not pick the claimed token at this position
TRUNCATED = "truncated"  # fewer than max_tokens tokens without an end token
EARLY_END = "early_end"  # an end token before the last position: generation would have stopped
OVERLONG = "overlong"  # more than max_tokens tokens
INVALID_TOKEN = "invalid_token"  # not a token id of this model


@dataclass(frozen=True)
class Failure:
    """One failed check; `gap` is infinite for structural failures, which need no model."""

    position: int
    claimed: int | None
    gap: float
    reason: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: tuple[int, ...]
    failures: tuple[Failure, ...]

    def slashable(self, eps_slash: float = EPS_SLASH) -> bool:
        """True when some failure is beyond what float noise between honest machines can cause."""
        return any(f.gap > eps_slash for f in self.failures)


def spot_positions(commitment: bytes, nonce: bytes, n_output: int, k: int) -> list[int]:
    """Boundary, last position and k distinct interior positions drawn from sha256(commitment || nonce)."""
    if n_output < 1:
        raise ValueError("cannot choose positions in an empty output")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    interior = n_output - 2
    if k >= interior:
        return list(range(n_output))
    chosen = {0, n_output - 1}
    draw_key = sha256(commitment + nonce)
    counter = 0
    while len(chosen) < k + 2:
        draw = int.from_bytes(sha256(draw_key + counter.to_bytes(4, "little")), "big")
        chosen.add(1 + draw % interior)
        counter += 1
    return sorted(chosen)


def structural_failures(
    output_tokens: Sequence[int], max_tokens: int, n_vocab: int, is_end: Callable[[int], bool]
) -> list[Failure]:
    """Truncation and form checks that need no model: wrong length, misplaced end tokens, bad ids."""
    inf = math.inf
    failures: list[Failure] = []
    if not output_tokens:
        return [Failure(0, None, inf, TRUNCATED)]
    for j, token in enumerate(output_tokens):
        if not isinstance(token, int) or isinstance(token, bool) or not 0 <= token < n_vocab:
            failures.append(Failure(j, None, inf, INVALID_TOKEN))
    if failures:
        return failures
    if len(output_tokens) > max_tokens:
        failures.append(Failure(max_tokens, output_tokens[max_tokens], inf, OVERLONG))
    for j, token in enumerate(output_tokens[:-1]):
        if is_end(token):
            failures.append(Failure(j, token, inf, EARLY_END))
    last = len(output_tokens) - 1
    if len(output_tokens) < max_tokens and not is_end(output_tokens[last]):
        failures.append(Failure(last, output_tokens[last], inf, TRUNCATED))
    return failures


def position_gaps(
    engine: Engine,
    prompt_tokens: Sequence[int],
    output_tokens: Sequence[int],
    positions: Sequence[int],
    seed: int = 0,
    temperature: float = 0.0,
    reuse: bool = False,
) -> np.ndarray:
    """Gap of the claimed token at each output index in `positions` (increasing), one prefill.

    Each gap is taken from the logits row where llama.cpp wrote it (Engine.map_logits): no row is copied.
    `reuse`: start from the prompt's cache if a `prefill` left it (Engine.map_logits says when that is fit).
    """
    if not prompt_tokens:
        raise ValueError("prompt_tokens is empty")
    check_sampling_params(seed, temperature)
    positions = list(positions)
    sequence = list(prompt_tokens) + list(output_tokens[:-1])
    first = len(prompt_tokens) - 1

    def gap(index: int, row: np.ndarray) -> float:
        j = positions[index]
        return token_gap(row, output_tokens[j], seed, j, temperature)

    return np.array(engine.map_logits(sequence, [first + j for j in positions], gap, reuse), dtype=np.float64)


def verify(
    engine: Engine,
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
    """Check that `output_tokens` is what `engine`'s model produces for the job, within eps_accept.

    A client's own check: it starts from the prompt's cache when a `prefill` of it is still there."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    check_sampling_params(seed, temperature)
    engine.check_tokens(prompt_tokens, "prompt_tokens")
    if not prompt_tokens:
        raise ValueError("prompt_tokens is empty")
    structural = structural_failures(output_tokens, max_tokens, engine.n_vocab, engine.is_end)
    if structural:
        return Verdict(ok=False, checked=(), failures=tuple(structural))
    if mode == "full":
        positions = list(range(len(output_tokens)))
    else:
        commitment = output_commitment(
            engine.model_id, prompt_tokens, output_tokens, max_tokens, seed, temperature
        )
        positions = spot_positions(commitment, nonce, len(output_tokens), k)
    failures = _gap_failures(engine, prompt_tokens, output_tokens, positions, seed, temperature, eps_accept)
    if mode == "spot" and failures and not any(f.gap > EPS_SLASH for f in failures):
        # Rejected, but below what a dispute may slash: the positions the spot skipped may hold a failure that
        # can (the output is rejected either way, so only a cheater pays for this second prefill).
        sampled = set(positions)
        rest = [j for j in range(len(output_tokens)) if j not in sampled]
        failures += _gap_failures(engine, prompt_tokens, output_tokens, rest, seed, temperature, eps_accept)
        positions = sorted(sampled | set(rest))
        failures = tuple(sorted(failures, key=lambda f: f.position))
    return Verdict(ok=not failures, checked=tuple(positions), failures=failures)


def _gap_failures(
    engine: Engine,
    prompt_tokens: Sequence[int],
    output_tokens: Sequence[int],
    positions: Sequence[int],
    seed: int,
    temperature: float,
    eps_accept: float,
) -> tuple[Failure, ...]:
    gaps = position_gaps(engine, prompt_tokens, output_tokens, positions, seed, temperature, reuse=True)
    return tuple(
        Failure(j, output_tokens[j], float(gap), MISMATCH)
        for j, gap in zip(positions, gaps, strict=True)
        if not gap <= eps_accept  # a NaN gap (a broken model or build) fails too
    )
