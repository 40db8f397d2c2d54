"""Position-keyed token choice, shared by generation and verification.

A verifier must be able to recompute the choice at any single position without replaying the
ones before it, so the randomness at output index i depends only on (seed, i): Gumbel-max with
noise from Philox4x64-10 keyed by sha256(domain || seed || i). Choosing argmax(logit + T * g)
samples from softmax(logit / T), and at T = 0 it is plain greedy argmax.

Generation and RASTiC take each log from numpy (libm: fast, but its last bit may differ between
platforms, which no threshold notices). A dispute's referee needs one answer on every machine, so
`canonical_token_gap` builds the same noise from `refmath.log64`, which uses + - * / only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from camelid.compute.refmath import log64
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
    """Standard Gumbel noise for every vocabulary entry at output index `index`.

    Computed in place in one buffer: fresh 2 MB temporaries per step (each a new mmap, page-faulted in)
    cost about as much as the arithmetic. The values are those of the plain expression
    -log(-log(((bits >> 11) + 0.5) * 2**-53)), bit for bit: the shift, the conversion of a 53-bit
    integer, the + 0.5 and the power-of-two scaling are exact, and each log is numpy's, element-wise.
    """
    noise = _uniform(seed, index, n_vocab)
    np.log(noise, out=noise)
    np.negative(noise, out=noise)
    np.log(noise, out=noise)
    np.negative(noise, out=noise)
    return noise


def canonical_gumbel(seed: int, index: int, n_vocab: int) -> np.ndarray:
    """`gumbel_noise` with every log from refmath.log64: the same bits on every machine (within an ulp or two
    of gumbel_noise's), for the scores a dispute judges."""
    return -log64(-log64(_uniform(seed, index, n_vocab)))


_PHILOX_WORDS = 4


def canonical_gumbel_at(seed: int, index: int, entries: Sequence[int]) -> np.ndarray:
    """canonical_gumbel(seed, index, n)[entries], for any n above them, drawing only those entries: a referee
    needs two entries of a vocabulary that a made-up model may claim is 2**32 wide."""
    bits = np.empty(len(entries), dtype=np.uint64)
    for i, entry in enumerate(entries):
        generator = _philox(seed, index)
        generator.advance(entry // _PHILOX_WORDS)  # each counter step yields four 64-bit words
        bits[i] = generator.random_raw(_PHILOX_WORDS)[entry % _PHILOX_WORDS]
    return -log64(-log64(_to_uniform(bits)))


def _philox(seed: int, index: int) -> np.random.Philox:
    key = sha256(_NOISE_DOMAIN + seed.to_bytes(8, "little") + index.to_bytes(8, "little"))
    return np.random.Philox(key=np.frombuffer(key[:16], dtype="<u8"))


def _uniform(seed: int, index: int, n_vocab: int) -> np.ndarray:
    """Uniforms strictly inside (0, 1), one per vocabulary entry, from Philox keyed by (seed, index): exact."""
    return _to_uniform(_philox(seed, index).random_raw(n_vocab))


def _to_uniform(bits: np.ndarray) -> np.ndarray:
    np.right_shift(bits, np.uint64(11), out=bits)
    # 53 random bits, centred in their interval, give a uniform strictly inside (0, 1).
    noise = bits.view(np.float64)  # reuse the buffer: each value is read before it is overwritten
    np.copyto(noise, bits, casting="unsafe")
    noise += 0.5
    noise *= 2.0**-53
    return noise


def scores(logits: np.ndarray, seed: int, index: int, temperature: float) -> np.ndarray:
    """Scores on the logit scale: logits + T * gumbel; their argmax is the token to emit.

    argmax(logit + T*g) equals argmax(logit/T + g), the usual Gumbel-max form, but keeping
    the logit scale makes a gap mean the same thing at every temperature.
    """
    if temperature == 0:
        return logits.astype(np.float64)
    values = gumbel_noise(seed, index, logits.shape[-1])
    values *= temperature
    values += logits  # float32 logits widen exactly: logit + T * g, as before
    return values


def choose_token(logits: np.ndarray, seed: int, index: int, temperature: float) -> int:
    """The token generation emits at output index `index`."""
    if temperature == 0:  # widening to float64 changes no order: argmax of the float32 row, first of ties
        return int(np.argmax(logits))
    return int(np.argmax(scores(logits, seed, index, temperature)))


def canonical_token_gap(logits: np.ndarray, claimed: int, seed: int, index: int, temperature: float) -> float:
    """`token_gap` with the canonical noise: from float32 logits that every machine computes alike (the
    reference pass), the same gap on every machine. logit + T * g widens exactly and rounds once."""
    if temperature == 0:
        return float(logits.max()) - float(logits[claimed])
    values = canonical_gumbel(seed, index, logits.shape[-1]) * temperature + logits
    return float(values.max() - values[claimed])


def canonical_pair_gap(
    logits: np.ndarray, tokens: tuple[int, int], seed: int, index: int, temperature: float
) -> float:
    """s_a - s_b for tokens (a, b) from their two float32 logits, with the canonical noise: a dispute's gap of
    the output's token b against the challenger's a, computed as canonical_token_gap computes it."""
    logits = np.asarray(logits, dtype=np.float32)
    if temperature == 0:
        return float(logits[0]) - float(logits[1])
    values = canonical_gumbel_at(seed, index, tokens) * temperature + logits
    return float(values[0] - values[1])


def token_gap(logits: np.ndarray, claimed: int, seed: int, index: int, temperature: float) -> float:
    """How far `claimed` falls short of the chosen token, in logits: 0 when it is the choice."""
    if temperature == 0:  # float32 max is exact; the difference is taken in float64, as scores() would
        return float(logits.max()) - float(logits[claimed])
    values = scores(logits, seed, index, temperature)
    return float(values.max() - values[claimed])
