"""The canonical Gumbel noise a dispute judges by: log64 from + - * / only, and noise and gaps that agree
with generation's (libm) to within float noise, with the same bits whatever SIMD numpy may use."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from camelid.compute.refmath import log64
from camelid.compute.sampling import (
    canonical_gumbel,
    canonical_gumbel_at,
    canonical_pair_gap,
    canonical_token_gap,
    gumbel_noise,
    token_gap,
)

REPO = Path(__file__).resolve().parent.parent
VOCAB = 262_144


@pytest.mark.parametrize(
    "low, high",
    [(1e-308, 1e-200), (1e-20, 1e-10), (0.1, 0.9), (0.5, 2.0), (1 - 1e-12, 1 + 1e-12), (1.0, 40.0), (1e10, 1e300)],
)
def test_log64_is_within_an_ulp_of_libm(low: float, high: float) -> None:
    rng = np.random.default_rng(3)
    x = np.exp(rng.uniform(np.log(low), np.log(high), 100_000))
    ours, libm = log64(x), np.log(x)
    assert (np.abs(ours - libm) <= np.spacing(np.abs(libm))).all()
    assert log64(np.array([1.0]))[0] == 0.0 and log64(np.array([np.e]))[0] == pytest.approx(1.0, abs=2e-16)


@pytest.mark.parametrize("bad", [0.0, -1.0, np.inf, np.nan])
def test_log64_refuses_what_has_no_real_log(bad: float) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        log64(np.array([1.0, bad]))


@pytest.mark.parametrize("seed, index", [(0, 0), (7, 3), (2**64 - 1, 2047)])
def test_canonical_noise_is_generations_noise_to_within_float_noise(seed: int, index: int) -> None:
    canonical, generation = canonical_gumbel(seed, index, VOCAB), gumbel_noise(seed, index, VOCAB)
    assert np.abs(canonical - generation).max() < 1e-13
    assert (canonical == generation).mean() > 0.5  # mostly the very same bits


@pytest.mark.parametrize("temperature", [0.0, 0.3, 0.8, 1.5])
def test_canonical_gaps_are_the_gaps_rastic_measures(temperature: float) -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(-4.0, 3.0, VOCAB).astype(np.float32)
    for claimed in (int(np.argmax(logits)), 5, 70_000):
        ours = canonical_token_gap(logits, claimed, 9, 4, temperature)
        assert ours == pytest.approx(token_gap(logits, claimed, 9, 4, temperature), abs=1e-12)


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_the_two_entry_gap_a_referee_judges_is_the_full_rows_gap(temperature: float) -> None:
    """A referee draws the noise of j* and o only (canonical_gumbel_at); it must equal the full row's, bit for bit,
    so the gap of j*, the row's best, against o is canonical_token_gap's."""
    rng = np.random.default_rng(12)
    logits = rng.normal(-4.0, 3.0, VOCAB).astype(np.float32)
    entries = [0, 1, 3, 4, 5, 70_001, VOCAB - 1]
    assert canonical_gumbel_at(9, 4, entries).tobytes() == canonical_gumbel(9, 4, VOCAB)[entries].tobytes()
    scores = logits + temperature * canonical_gumbel(9, 4, VOCAB)
    best, claimed = int(np.argmax(scores)), 70_000
    pair = canonical_pair_gap(logits[[best, claimed]], (best, claimed), 9, 4, temperature)
    assert pair == canonical_token_gap(logits, claimed, 9, 4, temperature)
    assert canonical_gumbel_at(9, 4, [2**32 - 1]).shape == (1,)  # a 2**32-wide vocabulary costs nothing


_DIGEST_SCRIPT = """
import hashlib, sys
from camelid.compute.sampling import canonical_gumbel
print(hashlib.sha256(canonical_gumbel(12345, 67, 262144).tobytes()).hexdigest())
"""


def test_canonical_noise_has_the_same_bits_without_numpys_simd_kernels() -> None:
    here = hashlib.sha256(canonical_gumbel(12345, 67, VOCAB).tobytes()).hexdigest()
    env = {**os.environ, "PYTHONPATH": str(REPO), "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"}
    result = subprocess.run([sys.executable, "-c", _DIGEST_SCRIPT], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == here
