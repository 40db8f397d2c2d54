"""Position-keyed token choice, shared by generation and verification.

A verifier must be able to recompute the choice at any single position without replaying the
ones before it, so the randomness at output index i depends only on (seed, i): Gumbel-max with
noise from Philox4x64-10 keyed by sha256(domain || seed || i). Choosing argmax(logit + T * g)
samples from softmax(logit / T), and at T = 0 it is plain greedy argmax.
"""

from __future__ import annotations

import math

import numpy as np

from camelid.crypto.hashes import sha256

_NOISE_DOMAIN = b"camelid/gumbel/v1"
MAX_SEED = 2**64 - 1


def check_sampling_params(seed: int, temperature: float) -> None:
    """ValueError unless seed fits in 64 bits and temperature is finite and >= 0."""
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an int in [0, 2**64), got {seed!r}")
    if not isinstance(temperature, int | float) or isinstance(temperature, bool):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be finite and >= 0, got {temperature!r}")


def gumbel_noise(seed: int, index: int, n_vocab: int) -> np.ndarray:
    """Standard Gumbel noise for every vocabulary entry at output index `index`."""
    key = sha256(_NOISE_DOMAIN + seed.to_bytes(8, "little") + index.to_bytes(8, "little"))
    bits = np.random.Philox(key=np.frombuffer(key[:16], dtype="<u8")).random_raw(n_vocab)
    # 53 random bits, centred in their interval, give a uniform strictly inside (0, 1).
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return -np.log(-np.log(uniform))


def scores(logits: np.ndarray, seed: int, index: int, temperature: float) -> np.ndarray:
    """Scores on the logit scale: logits + T * gumbel; their argmax is the token to emit.

    argmax(logit + T*g) equals argmax(logit/T + g), the usual Gumbel-max form, but keeping
    the logit scale makes a gap mean the same thing at every temperature.
    """
    values = logits.astype(np.float64)
    if temperature > 0:
        values += temperature * gumbel_noise(seed, index, logits.shape[-1])
    return values


def choose_token(logits: np.ndarray, seed: int, index: int, temperature: float) -> int:
    """The token generation emits at output index `index`."""
    return int(np.argmax(scores(logits, seed, index, temperature)))


def token_gap(logits: np.ndarray, claimed: int, seed: int, index: int, temperature: float) -> float:
    """How far `claimed` falls short of the chosen token, in logits: 0 when it is the choice."""
    values = scores(logits, seed, index, temperature)
    return float(values.max() - values[claimed])
