"""RASTiC on the tiny model: honest work passes, every cheat shape fails where the spec says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tiny_model import EOS, write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.rastic import (
    EARLY_END,
    EPS_ACCEPT,
    EPS_SLASH,
    INVALID_TOKEN,
    MISMATCH,
    OVERLONG,
    TRUNCATED,
    output_commitment,
    position_gaps,
    spot_positions,
    verify,
)

MAX_TOKENS = 40


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="module")
def engine(model_path: Path):
    with Engine(model_path, n_threads=1, n_ctx=512, n_batch=64) as eng:
        yield eng


@pytest.fixture(scope="module")
def other_engine(model_path: Path):
    """Same model, different thread count and batch size: a verifier on another machine."""
    with Engine(model_path, n_threads=2, n_ctx=512, n_batch=7) as eng:
        yield eng


def _long_job(engine: Engine, temperature: float = 0.0) -> tuple[list[int], list[int], int]:
    """(prompt, output, seed) of a job that runs to MAX_TOKENS, so every check has interior positions."""
    for seed in range(200):
        prompt = engine.tokenize(f"a long job {seed}")
        output = engine.generate(prompt, MAX_TOKENS, seed=seed, temperature=temperature)
        if len(output) == MAX_TOKENS:
            return prompt, output, seed
    raise AssertionError("no prompt ran to max_tokens")


def _ended_job(engine: Engine) -> tuple[list[int], list[int]]:
    for i in range(200):
        prompt = engine.tokenize(f"a short job {i}")
        output = engine.generate(prompt, MAX_TOKENS)
        if 8 <= len(output) < MAX_TOKENS:
            return prompt, output
    raise AssertionError("no prompt ended by itself")


@pytest.mark.parametrize("temperature", [0.0, 0.9])
@pytest.mark.parametrize("mode", ["full", "spot"])
def test_honest_output_passes_on_another_configuration(
    engine: Engine, other_engine: Engine, temperature: float, mode: str
) -> None:
    prompt, output, seed = _long_job(engine, temperature)
    verdict = verify(other_engine, prompt, output, MAX_TOKENS, seed=seed, temperature=temperature, mode=mode)
    assert verdict.ok, verdict.failures
    assert verdict.failures == ()
    if mode == "full":
        assert verdict.checked == tuple(range(MAX_TOKENS))


def test_honest_output_ending_with_end_token_passes(engine: Engine, other_engine: Engine) -> None:
    prompt, output = _ended_job(engine)
    assert output[-1] == EOS
    assert verify(other_engine, prompt, output, MAX_TOKENS).ok


def test_changed_middle_token_fails_at_that_position(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    middle = len(output) // 2
    logits = engine.logits_at(prompt + output[:middle], [len(prompt) + middle - 1])[0]
    worst = int(np.argmin(logits))
    tampered = output[:middle] + [worst] + output[middle + 1 :]
    verdict = verify(engine, prompt, tampered, MAX_TOKENS)
    assert not verdict.ok
    first = verdict.failures[0]
    assert (first.position, first.claimed, first.reason) == (middle, worst, MISMATCH)
    assert first.gap == pytest.approx(float(logits.max() - logits.min()), abs=1e-3)
    assert verdict.slashable()


def test_random_tokens_fail(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    rng = np.random.default_rng(1)
    random_output = [int(t) for t in rng.integers(3, engine.n_vocab, size=len(output))]
    verdict = verify(engine, prompt, random_output, MAX_TOKENS)
    assert not verdict.ok
    assert len(verdict.failures) > len(output) // 2


def test_wrong_seed_at_temperature_fails(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    sampled = engine.generate(prompt, MAX_TOKENS, seed=1234, temperature=1.0)
    assert verify(engine, prompt, sampled, MAX_TOKENS, seed=1234, temperature=1.0).ok
    assert not verify(engine, prompt, sampled, MAX_TOKENS, seed=4321, temperature=1.0).ok


def test_output_from_another_model_fails(engine: Engine, tmp_path: Path) -> None:
    with Engine(write_tiny_model(tmp_path / "other.gguf", seed=5), n_threads=1, n_ctx=512) as impostor:
        prompt = engine.tokenize("who computed this?")
        output = impostor.generate(prompt, MAX_TOKENS)
    assert not verify(engine, prompt, output, MAX_TOKENS).ok


def test_truncation_without_end_token_is_structural(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    verdict = verify(engine, prompt, output[:10], MAX_TOKENS)
    assert not verdict.ok
    assert verdict.checked == ()
    assert [(f.position, f.reason) for f in verdict.failures] == [(9, TRUNCATED)]
    assert verdict.slashable()


def test_truncation_with_appended_end_token_fails_at_last_position(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    cut = output[:10] + [EOS]
    for mode in ("full", "spot"):
        verdict = verify(engine, prompt, cut, MAX_TOKENS, mode=mode, k=2)
        assert not verdict.ok
        assert verdict.failures[-1].position == 10
        assert 10 in verdict.checked


@pytest.mark.parametrize(
    "make_output, position, reason",
    [
        (lambda out: out[:5] + [EOS] + out[6:], 5, EARLY_END),
        (lambda out: out + [out[0]], MAX_TOKENS, OVERLONG),
        (lambda out: [], 0, TRUNCATED),
        (lambda out: out[:3] + [9999] + out[4:], 3, INVALID_TOKEN),
    ],
)
def test_malformed_outputs_fail_without_the_model(engine: Engine, make_output, position: int, reason: str) -> None:
    prompt, output, _ = _long_job(engine)
    verdict = verify(engine, prompt, make_output(output), MAX_TOKENS)
    assert not verdict.ok
    assert (verdict.failures[0].position, verdict.failures[0].reason) == (position, reason)


def test_tolerance_accepts_near_ties_and_reports_the_gap(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    last = len(output) - 1
    logits = engine.logits_at(prompt + output[:last], [len(prompt) + last - 1])[0]
    runner_up = int(np.argsort(logits)[-2])
    gap = float(logits.max() - logits[runner_up])
    swapped = output[:last] + [runner_up]
    assert verify(engine, prompt, swapped, MAX_TOKENS, eps_accept=gap + 0.01).ok
    verdict = verify(engine, prompt, swapped, MAX_TOKENS, eps_accept=gap - 0.01)
    assert [(f.position, f.claimed) for f in verdict.failures] == [(last, runner_up)]
    assert verdict.failures[0].gap == pytest.approx(gap, abs=1e-4)
    assert verdict.slashable(eps_slash=gap - 0.01) and not verdict.slashable(eps_slash=gap + 0.01)


def test_thresholds_leave_room_for_float_noise() -> None:
    assert 0 < EPS_ACCEPT < EPS_SLASH


def test_honest_gaps_across_configurations_stay_tiny(engine: Engine, other_engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    positions = list(range(len(output)))
    gaps = position_gaps(other_engine, prompt, output, positions)
    assert gaps.max() < EPS_ACCEPT / 10


def test_spot_positions_cover_boundary_last_and_k_interior() -> None:
    commitment = bytes(range(32))
    chosen = spot_positions(commitment, b"nonce", 100, 8)
    assert chosen[0] == 0 and chosen[-1] == 99
    assert len(chosen) == 10 and chosen == sorted(set(chosen))
    assert chosen == spot_positions(commitment, b"nonce", 100, 8)
    assert chosen != spot_positions(commitment, b"other nonce", 100, 8)
    assert spot_positions(commitment, b"", 5, 3) == [0, 1, 2, 3, 4]
    assert spot_positions(commitment, b"", 1, 3) == [0]


def test_spot_positions_are_spread_over_the_interior() -> None:
    counts = np.zeros(50)
    for i in range(2000):
        counts[spot_positions(i.to_bytes(32, "big"), b"", 50, 3)] += 1
    interior = counts[1:-1]
    assert counts[0] == counts[-1] == 2000
    assert interior.sum() == 3 * 2000
    assert interior.min() > 0.5 * interior.mean()


def test_spot_mode_checks_positions_drawn_from_commitment_and_nonce(engine: Engine) -> None:
    prompt, output, _ = _long_job(engine)
    commitment = output_commitment(engine.model_id, prompt, output, MAX_TOKENS, 0, 0.0)
    verdict = verify(engine, prompt, output, MAX_TOKENS, mode="spot", k=3, nonce=b"client nonce")
    assert list(verdict.checked) == spot_positions(commitment, b"client nonce", len(output), 3)


def test_commitment_binds_every_job_field() -> None:
    base = (bytes(32), [1, 2], [3, 4], 10, 0, 0.0)
    variants = [
        (b"\x01" * 32, [1, 2], [3, 4], 10, 0, 0.0),
        (bytes(32), [1, 2, 3], [4], 10, 0, 0.0),
        (bytes(32), [1, 2], [3, 5], 10, 0, 0.0),
        (bytes(32), [1, 2], [3, 4], 11, 0, 0.0),
        (bytes(32), [1, 2], [3, 4], 10, 1, 0.0),
        (bytes(32), [1, 2], [3, 4], 10, 0, 0.5),
    ]
    digests = {output_commitment(*v) for v in [base, *variants]}
    assert len(digests) == 1 + len(variants)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "quick"}, "mode"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": -0.5}, "temperature"),
        ({"prompt_tokens": []}, "empty"),
        ({"prompt_tokens": [1, 10**6]}, "token id"),
    ],
)
def test_bad_verify_arguments_raise(engine: Engine, kwargs: dict, message: str) -> None:
    args = {"prompt_tokens": [1, 5, 6], "output_tokens": [7, 8], "max_tokens": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        verify(engine, **args)


def _mild_and_heavy_edits(engine: Engine) -> tuple[list[int], list[int], int]:
    """(prompt, output, heavy): an output of MAX_TOKENS whose last token is rejected but not slashable
    (EPS_ACCEPT < gap < EPS_SLASH) and whose interior position `heavy` holds the least likely token, followed
    by the model's own greedy continuation, so that those two are its only failures."""
    for seed in range(200):
        prompt = engine.tokenize(f"a job with two edits {seed}")
        output = engine.generate(prompt, MAX_TOKENS)
        if len(output) < MAX_TOKENS:
            continue
        heavy = MAX_TOKENS // 2
        logits = engine.logits_at(prompt + output[:heavy], [len(prompt) + heavy - 1])[0]
        worst = next(int(t) for t in np.argsort(logits) if not engine.is_end(int(t)))
        edited = output[:heavy] + [worst]
        edited += engine.generate(prompt + edited, MAX_TOKENS - len(edited))
        if len(edited) < MAX_TOKENS:
            continue
        last = engine.logits_at(prompt + edited[:-1], [len(prompt) + MAX_TOKENS - 2])[0]
        gaps = last.max() - last
        mild = [int(t) for t in np.flatnonzero((gaps > EPS_ACCEPT + 0.1) & (gaps < EPS_SLASH - 0.1))]
        mild = [t for t in mild if not engine.is_end(t)]
        if mild:
            return prompt, edited[:-1] + [mild[0]], heavy
    raise AssertionError("no job took both edits")


def test_a_spot_rejection_below_the_slash_threshold_checks_every_position(engine: Engine) -> None:
    prompt, output, heavy = _mild_and_heavy_edits(engine)
    full = verify(engine, prompt, output, MAX_TOKENS)
    assert [f.position for f in full.failures] == [heavy, MAX_TOKENS - 1]
    commitment = output_commitment(engine.model_id, prompt, output, MAX_TOKENS, 0, 0.0)
    # A draw of the spot positions that checks the last position (always) but misses the slashable one.
    nonce = next(
        n.to_bytes(4, "big") for n in range(1000)
        if heavy not in spot_positions(commitment, n.to_bytes(4, "big"), MAX_TOKENS, 3)
    )
    verdict = verify(engine, prompt, output, MAX_TOKENS, mode="spot", k=3, nonce=nonce)
    assert not verdict.ok
    assert verdict.slashable()
    assert verdict.checked == tuple(range(MAX_TOKENS))
    assert verdict.failures == full.failures


def test_a_spot_rejection_that_can_slash_checks_no_more(engine: Engine) -> None:
    prompt, output, heavy = _mild_and_heavy_edits(engine)
    commitment = output_commitment(engine.model_id, prompt, output, MAX_TOKENS, 0, 0.0)
    nonce = next(
        n.to_bytes(4, "big") for n in range(1000)
        if heavy in spot_positions(commitment, n.to_bytes(4, "big"), MAX_TOKENS, 3)
    )
    verdict = verify(engine, prompt, output, MAX_TOKENS, mode="spot", k=3, nonce=nonce)
    assert verdict.checked == tuple(spot_positions(commitment, nonce, MAX_TOKENS, 3))
    assert verdict.slashable()
