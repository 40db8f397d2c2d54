"""Outsourced verification: signed per-position verdicts that never reveal the model's token."""

from __future__ import annotations

import coincurve
import msgpack
import numpy as np
import pytest
from tiny_model import write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.outsourced import (
    GAP_CAP,
    PositionResult,
    SignedVerdict,
    VerificationRequest,
    answer_request,
    check_verdict,
    request_digest,
    tokens_hash,
)
from camelid.compute.rastic import EPS_SLASH

SECRET = bytes(range(1, 33))
PUBKEY = coincurve.PrivateKey(SECRET).public_key.format(compressed=True)
JOB_ID = b"\x42" * 32


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    with Engine(write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny.gguf"), n_threads=1, n_ctx=256) as eng:
        yield eng


@pytest.fixture(scope="module")
def job(engine: Engine) -> tuple[list[int], list[int]]:
    for i in range(100):
        prompt = engine.tokenize(f"outsourced {i}")
        output = engine.generate(prompt, 24)
        if len(output) == 24:
            return prompt, output
    raise AssertionError("no prompt ran to max_tokens")


def _request(engine: Engine, prompt: list[int], output: list[int], positions=(0, 5, 23)) -> VerificationRequest:
    return VerificationRequest(JOB_ID, engine.model_id, tuple(prompt), tuple(output), 24, 0, 0.0, tuple(positions))


def test_honest_output_gets_a_signed_pass(engine: Engine, job) -> None:
    request = _request(engine, *job)
    verdict = answer_request(engine, request, SECRET)
    assert verdict.ok
    assert [r.position for r in verdict.results] == [0, 5, 23]
    assert verdict.pubkey == PUBKEY
    check_verdict(request, verdict, PUBKEY)


def test_tampered_position_gets_a_signed_fail(engine: Engine, job) -> None:
    prompt, output = job
    logits = engine.logits_at(prompt + output[:5], [len(prompt) + 4])[0]
    tampered = output[:5] + [int(np.argmin(logits))] + output[6:]
    request = _request(engine, prompt, tampered)
    verdict = answer_request(engine, request, SECRET)
    by_position = {r.position: r for r in verdict.results}
    assert by_position[0].ok
    assert not by_position[5].ok and by_position[5].gap > EPS_SLASH
    check_verdict(request, verdict, PUBKEY)


def test_verdict_carries_no_token(engine: Engine, job) -> None:
    """Only pass/fail and the claimed token's gap travel back (the fix to whitepaper 2.5.3)."""
    verdict = answer_request(engine, _request(engine, *job), SECRET).to_dict()
    assert set(verdict) == {"request_digest", "results", "pubkey", "signature"}
    assert all(set(r) == {"position", "ok", "gap"} for r in verdict["results"])


def test_objects_round_trip_through_msgpack(engine: Engine, job) -> None:
    request = _request(engine, *job)
    verdict = answer_request(engine, request, SECRET)
    wire_request = msgpack.unpackb(msgpack.packb(request.to_dict()))
    wire_verdict = msgpack.unpackb(msgpack.packb(verdict.to_dict()))
    assert VerificationRequest.from_dict(wire_request) == request
    assert SignedVerdict.from_dict(wire_verdict) == verdict
    check_verdict(VerificationRequest.from_dict(wire_request), SignedVerdict.from_dict(wire_verdict), PUBKEY)


def test_forged_or_mismatched_verdicts_are_rejected(engine: Engine, job) -> None:
    request = _request(engine, *job)
    verdict = answer_request(engine, request, SECRET)
    flipped = SignedVerdict(
        verdict.request_digest,
        (PositionResult(0, False, 9.0), *verdict.results[1:]),
        verdict.pubkey,
        verdict.signature,
    )
    with pytest.raises(ValueError, match="does not verify"):
        check_verdict(request, flipped)
    with pytest.raises(ValueError, match="unexpected key"):
        check_verdict(request, verdict, coincurve.PrivateKey(b"\x07" * 32).public_key.format())
    other = _request(engine, *job, positions=(0, 6, 23))
    with pytest.raises(ValueError, match="different request"):
        check_verdict(other, verdict)
    garbled = SignedVerdict(verdict.request_digest, verdict.results, verdict.pubkey, b"\x30" + bytes(9))
    with pytest.raises(ValueError, match="signature"):
        check_verdict(request, garbled)


def test_request_for_another_model_is_refused(engine: Engine, job) -> None:
    prompt, output = job
    request = VerificationRequest(JOB_ID, b"\x01" * 32, tuple(prompt), tuple(output), 24, 0, 0.0, (0,))
    with pytest.raises(ValueError, match="model"):
        answer_request(engine, request, SECRET)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"job_id": "not bytes"}, "job_id"),
        ({"model_id": b"\x00" * 31}, "model_id"),
        ({"prompt_tokens": [1, -2]}, "prompt_tokens"),
        ({"output_tokens": "abc"}, "output_tokens"),
        ({"output_tokens": []}, "non-empty"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"seed": -1}, "seed"),
        ({"temperature": "hot"}, "temperature"),
        ({"positions": []}, "at least one"),
        ({"positions": [3, 1]}, "increasing"),
        ({"positions": [0, 99]}, "past"),
        ({"positions": [True]}, "positions"),
    ],
)
def test_malformed_request_is_rejected(change: dict, message: str) -> None:
    data = {
        "job_id": JOB_ID,
        "model_id": bytes(32),
        "prompt_tokens": [1, 2],
        "output_tokens": [3, 4, 5],
        "max_tokens": 3,
        "seed": 0,
        "temperature": 0.0,
        "positions": [0, 2],
    } | change
    with pytest.raises(ValueError, match=message):
        VerificationRequest.from_dict(data)


@pytest.mark.parametrize(
    "data, message",
    [
        ([], "dict"),
        ({"request_digest": bytes(32), "results": []}, "lacks"),
        ({"request_digest": bytes(32), "results": "x", "pubkey": PUBKEY, "signature": b"s" * 70}, "results"),
        ({"request_digest": bytes(31), "results": [], "pubkey": PUBKEY, "signature": b"s" * 70}, "request_digest"),
        ({"request_digest": bytes(32), "results": [], "pubkey": b"k", "signature": b"s" * 70}, "pubkey"),
        ({"request_digest": bytes(32), "results": [], "pubkey": PUBKEY, "signature": b"s" * 99}, "signature"),
        (
            {
                "request_digest": bytes(32),
                "results": [{"position": 0, "ok": 1, "gap": 0.0}],
                "pubkey": PUBKEY,
                "signature": b"s" * 70,
            },
            "bool",
        ),
        (
            {
                "request_digest": bytes(32),
                "results": [{"position": 0, "ok": True, "gap": float("nan")}],
                "pubkey": PUBKEY,
                "signature": b"s" * 70,
            },
            "gap",
        ),
    ],
)
def test_malformed_verdict_is_rejected(data, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SignedVerdict.from_dict(data)


def test_a_structurally_wrong_output_fails_where_it_is_wrong(engine: Engine, job) -> None:
    """A cut-short output fails at its last position even if every token there is the model's own choice."""
    prompt, output = job
    request = VerificationRequest(JOB_ID, engine.model_id, tuple(prompt), tuple(output[:10]), 24, 0, 0.0, (0, 9))
    verdict = answer_request(engine, request, SECRET)
    assert [(r.position, r.ok) for r in verdict.results] == [(0, True), (9, False)]
    assert verdict.results[1].gap == GAP_CAP
    check_verdict(request, verdict, PUBKEY)


def test_a_client_without_the_model_computes_the_request_digest_from_the_commitment(engine: Engine, job) -> None:
    request = _request(engine, *job)
    output_hash = tokens_hash(request.output_tokens)
    assert request_digest(JOB_ID, request.commitment(), output_hash, request.positions) == request.digest()
    assert request_digest(JOB_ID, request.commitment(), output_hash, (0, 5)) != request.digest()
    other_output = tokens_hash((*request.output_tokens[:-1], request.output_tokens[-1] + 1))
    assert request_digest(JOB_ID, request.commitment(), other_output, request.positions) != request.digest()
