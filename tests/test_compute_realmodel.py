"""RASTiC on the real gemma-3-270m model: honest work passes full verification, tampering fails."""

from __future__ import annotations

import numpy as np
import pytest

from camelid.compute import default_model_path, model_id_of_file
from camelid.compute.engine import Engine
from camelid.compute.rastic import EPS_SLASH, MISMATCH, verify

pytestmark = pytest.mark.realmodel

MAX_TOKENS = 32
PROMPT = "Llamas and alpacas are domesticated camelids that"


@pytest.fixture(scope="module")
def generator():
    with Engine(default_model_path(), n_threads=2, n_batch=64) as eng:
        yield eng


@pytest.fixture(scope="module")
def verifier():
    """A differently configured instance, as a verifier on another machine would be."""
    with Engine(default_model_path(), n_threads=1, n_batch=16) as eng:
        yield eng


def test_model_is_named_by_its_merkle_root(generator: Engine) -> None:
    assert generator.model_id == model_id_of_file(default_model_path())
    assert generator.n_vocab == 262144


@pytest.mark.parametrize("temperature, seed", [(0.0, 0), (0.8, 17)])
def test_honest_output_passes_full_verification(
    generator: Engine, verifier: Engine, temperature: float, seed: int
) -> None:
    prompt = generator.tokenize(PROMPT)
    output = generator.generate(prompt, MAX_TOKENS, seed=seed, temperature=temperature)
    verdict = verify(verifier, prompt, output, MAX_TOKENS, seed=seed, temperature=temperature, mode="full")
    assert verdict.ok, verdict.failures
    assert len(verdict.checked) == len(output)


def test_tampered_output_fails_and_is_slashable(generator: Engine, verifier: Engine) -> None:
    prompt = generator.tokenize(PROMPT)
    output = generator.generate(prompt, MAX_TOKENS)
    middle = len(output) // 2
    logits = verifier.logits_at(prompt + output[:middle], [len(prompt) + middle - 1])[0]
    replacement = int(np.argsort(logits)[-50])  # plausible but clearly not the model's choice
    tampered = output[:middle] + [replacement] + output[middle + 1 :]
    verdict = verify(verifier, prompt, tampered, MAX_TOKENS, mode="full")
    assert not verdict.ok
    assert (verdict.failures[0].position, verdict.failures[0].reason) == (middle, MISMATCH)
    assert verdict.slashable(EPS_SLASH)
