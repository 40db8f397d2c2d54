"""Job parameters: canonical encoding, Job ID, and rejection of malformed parameters."""

import contextlib
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camelid.core.job import MAX_JOB_TOKENS, MAX_PROMPT_BYTES, JobParams, job_tokens_problem

BASE = JobParams(
    model_id=b"\x01" * 32,
    prompt_commitment=b"\x33" * 32,
    prompt_length=18,
    prompt_unit=0,
    max_tokens=64,
    seed=7,
    temperature_milli=800,
    timestamp=1_795_600_000,
    timelock=600,
    client_pubkey=b"\x02" + b"\x11" * 32,
    client_host="127.0.0.1",
    client_port=29733,
)

jobs = st.builds(
    JobParams,
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.integers(0, MAX_JOB_TOKENS),
    st.sampled_from([0, 1]),
    st.integers(1, MAX_JOB_TOKENS),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2000),
    st.integers(0, 2**64 - 1),
    st.integers(1, 2**32 - 1),
    st.builds(lambda p, b: bytes([p]) + b, st.sampled_from([2, 3]), st.binary(min_size=32, max_size=32)),
    st.text(alphabet=st.characters(max_codepoint=127), max_size=40),
    st.integers(1, 65535),
)


@given(jobs)
def test_round_trip_and_stable_id(job):
    decoded = JobParams.from_bytes(job.to_bytes())
    assert decoded == job
    assert decoded.job_id() == job.job_id()


@pytest.mark.parametrize(
    "field,value",
    [
        ("prompt_commitment", b"\x34" * 32),
        ("prompt_length", 19),
        ("prompt_unit", 1),
        ("seed", 8),
        ("temperature_milli", 0),
        ("max_tokens", 65),
        ("model_id", b"\x02" * 32),
        ("client_port", 29734),
        ("timelock", 601),
    ],
)
def test_every_field_changes_the_job_id(field, value):
    assert dataclasses.replace(BASE, **{field: value}).job_id() != BASE.job_id()


@pytest.mark.parametrize(
    "field,value,message",
    [
        ("model_id", b"\x01" * 31, "model_id must be 32 bytes"),
        ("prompt_commitment", b"\x01" * 31, "prompt_commitment must be 32 bytes"),
        ("prompt_unit", 2, "prompt_unit must be 0"),
        ("prompt_length", MAX_PROMPT_BYTES + 1, "prompt_length must be 0..65536"),
        ("max_tokens", 0, "max_tokens must be"),
        ("max_tokens", 4097, "max_tokens must be"),
        ("temperature_milli", 2001, "temperature_milli"),
        ("client_pubkey", b"\x04" + b"\x11" * 32, "compressed public key"),
        ("client_host", "hôte", "ASCII"),
        ("client_port", 0, "client_port"),
        ("timelock", 0, "timelock"),
    ],
)
def test_invalid_parameters_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(BASE, **{field: value})


def test_decoder_rejects_version_trailing_and_bad_text():
    raw = BASE.to_bytes()
    with pytest.raises(ValueError, match="unknown job version 1"):
        JobParams.from_bytes(b"\x01" + raw[1:])  # version 1 carried the prompt in clear
    with pytest.raises(ValueError, match="trailing"):
        JobParams.from_bytes(raw + b"\x00")
    one_char_host = dataclasses.replace(BASE, client_host="h").to_bytes()
    with pytest.raises(ValueError, match="not ASCII"):
        JobParams.from_bytes(one_char_host[:-3] + b"\xff" + one_char_host[-2:])


def test_the_encoding_carries_no_prompt_only_its_commitment_and_length():
    raw = BASE.to_bytes()
    assert raw[1 + 32 : 1 + 64] == BASE.prompt_commitment
    assert raw[65] == 0 and int.from_bytes(raw[66:70], "little") == 18
    assert len(raw) == 1 + 32 + 32 + 1 + 4 + 4 + 8 + 2 + 8 + 4 + 33 + 1 + len(BASE.client_host) + 2


@given(st.binary(max_size=200))
def test_random_bytes_only_raise_value_error(raw):
    with contextlib.suppress(ValueError):
        JobParams.from_bytes(raw)


def test_prompt_and_output_tokens_together_must_fit_one_delivery() -> None:
    """A delivery seals the commitment body (prompt and output tokens) in one 9,360-byte blob."""
    assert MAX_JOB_TOKENS == 2308
    assert job_tokens_problem(8, MAX_JOB_TOKENS - 8) is None
    problem = job_tokens_problem(9, MAX_JOB_TOKENS - 8)
    assert problem is not None and "exceed the 2308 tokens one delivery carries" in problem
