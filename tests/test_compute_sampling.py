"""Position-keyed sampling: the fast paths give exactly the values of the plain float64 definitions.

Generation and verification must agree on every token choice and gap across versions of this code,
so the in-place noise and the float32 shortcuts at temperature 0 are checked bit for bit against the
definitions written out the plain way (the code they replaced)."""

from __future__ import annotations

import numpy as np
import pytest

from camelid.compute.sampling import _NOISE_DOMAIN, choose_token, gumbel_noise, scores, token_gap
from camelid.crypto.hashes import sha256

VOCAB = 262_144  # gemma's: the size the fast paths are for


def plain_noise(seed: int, index: int, n_vocab: int) -> np.ndarray:
    key = sha256(_NOISE_DOMAIN + seed.to_bytes(8, "little") + index.to_bytes(8, "little"))
    bits = np.random.Philox(key=np.frombuffer(key[:16], dtype="<u8")).random_raw(n_vocab)
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return -np.log(-np.log(uniform))


def plain_scores(logits: np.ndarray, seed: int, index: int, temperature: float) -> np.ndarray:
    values = logits.astype(np.float64)
    if temperature > 0:
        values += temperature * plain_noise(seed, index, logits.shape[-1])
    return values


def logit_rows(count: int) -> np.ndarray:
    """Rows shaped like a model's: a few high logits, a bulk far below, exact ties at the top."""
    rng = np.random.default_rng(5)
    rows = rng.normal(-4.0, 3.0, (count, VOCAB)).astype(np.float32)
    rows[:, 17] = rows[:, 40_000] = rows.max(axis=1) + 1.0  # a tie for first place: argmax takes the lower id
    return rows


@pytest.mark.parametrize("seed, index", [(0, 0), (7, 3), (2**64 - 1, 2047), (123456789, 99)])
def test_noise_is_the_plain_definition_bit_for_bit(seed: int, index: int) -> None:
    assert np.array_equal(gumbel_noise(seed, index, VOCAB), plain_noise(seed, index, VOCAB))
    assert np.array_equal(gumbel_noise(seed, index, 1000), plain_noise(seed, index, 1000))


@pytest.mark.parametrize("temperature", [0.0, 0.3, 0.8, 1.0, 2.0])
def test_choices_and_gaps_are_the_plain_definitions(temperature: float) -> None:
    for index, row in enumerate(logit_rows(3)):
        reference = plain_scores(row, 11, index, temperature)
        assert np.array_equal(scores(row, 11, index, temperature), reference)
        chosen = choose_token(row, 11, index, temperature)
        assert chosen == int(np.argmax(reference))
        for claimed in (chosen, 17, 40_000, 5, VOCAB - 1):
            expected = float(reference.max() - reference[claimed])
            assert token_gap(row, claimed, 11, index, temperature) == expected


def test_a_nan_logit_fails_every_gap_and_picks_as_before() -> None:
    row = logit_rows(1)[0]
    row[123] = np.nan
    for temperature in (0.0, 0.8):
        assert np.isnan(token_gap(row, 17, 1, 2, temperature))
        assert choose_token(row, 1, 2, temperature) == int(np.argmax(plain_scores(row, 1, 2, temperature)))
