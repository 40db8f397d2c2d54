"""--misbehave=tamper-output: one interior token swapped, far enough from the model's choice to be slashed."""

from __future__ import annotations

import pytest
from tiny_model import write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.rastic import EPS_SLASH, verify
from camelid.compute.tamper import tamper_output


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with Engine(write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf"), n_threads=1, n_ctx=512) as loaded:
        yield loaded


def test_the_middle_token_is_swapped_and_a_fraud_proof_there_would_slash(engine):
    prompt = engine.tokenize("The llama")
    honest = engine.generate(prompt, 8, 0, 0.0)
    tampered = tamper_output(engine, prompt, honest)
    middle = len(honest) // 2
    assert [j for j, (a, b) in enumerate(zip(honest, tampered, strict=True)) if a != b] == [middle]
    assert not engine.is_end(tampered[middle])
    verdict = verify(engine, prompt, tampered, 8)
    assert verdict.failures[0].position == middle and verdict.failures[0].gap > EPS_SLASH


def test_an_output_without_an_interior_token_is_left_alone(engine):
    prompt = engine.tokenize("The llama")
    honest = engine.generate(prompt, 2, 0, 0.0)
    assert tamper_output(engine, prompt, honest) == honest
