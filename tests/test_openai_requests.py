"""OpenAI request bodies read into job parameters, chat rendering, and the answer shapes the openai package parses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import openai.types as oai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from tiny_model import write_tiny_model

from camelid.compute.vocab import ModelVocab
from camelid.node.job_outcome import failure
from camelid.rpc.openai_answer import CHAT_KIND, COMPLETION_KIND, Answer
from camelid.rpc.openai_jobs import verified_text, wait_for_verdict
from camelid.rpc.openai_models import OfferedModel
from camelid.rpc.openai_requests import (
    DEFAULT_CHAT_TOKENS,
    DEFAULT_COMPLETION_TOKENS,
    OpenAIError,
    parse_chat,
    parse_completion,
)


def seven() -> int:
    return 7


def test_a_completion_body_becomes_job_parameters():
    job = parse_completion({"model": "default", "prompt": ["The llama"], "max_tokens": 5, "temperature": 0.7}, seven)
    assert (job.prompt, job.max_tokens, job.temperature_milli, job.seed) == ("The llama", 5, 700, 7)
    assert job.reward is None and job.max_reward is None  # the market's estimate, uncapped
    assert not job.chat and not job.stream
    defaults = parse_completion(
        {"model": "m", "prompt": "x", "seed": 3, "camelid_reward": "0.25", "camelid_max_reward": 2, "stream": True}
    )
    assert (defaults.max_tokens, defaults.temperature_milli, defaults.seed) == (DEFAULT_COMPLETION_TOKENS, 1000, 3)
    assert defaults.reward == 25_000_000 and defaults.max_reward == 2 * 10**8 and defaults.stream


def test_a_chat_body_keeps_its_messages_and_reads_text_parts():
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
        ],
        "max_completion_tokens": 9,
    }
    job = parse_chat(body, seven)
    assert job.chat and job.messages == (("system", "Be brief."), ("user", "Hi there")) and job.max_tokens == 9
    assert parse_chat({"model": "m", "messages": [{"role": "user", "content": ""}]}).max_tokens == DEFAULT_CHAT_TOKENS


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 4097}, "max_tokens"),
        ({"max_tokens": 2.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"temperature": 2.01}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"model": ""}, "model"),
        ({"model": None}, "model"),
        ({"stream": "yes"}, "stream"),
        ({"prompt": [1, 2, 3]}, "prompt"),
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"n": 2}, "n"),
        ({"stop": ["\n"]}, "stop"),
        ({"logprobs": 2}, "logprobs"),
        ({"top_p": 0.5}, "top_p"),
        ({"camelid_reward": 0}, "camelid_reward"),
        ({"camelid_reward": "0.000000001"}, "camelid_reward"),
        ({"camelid_reward": [1]}, "camelid_reward"),
        ({"camelid_max_reward": -1}, "camelid_max_reward"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(change, param):
    with pytest.raises(OpenAIError) as bad:
        parse_completion({"model": "m", "prompt": "x", **change})
    assert bad.value.status == 400 and bad.value.param == param
    assert bad.value.body()["error"]["type"] == "invalid_request_error" and param in bad.value.message


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        (None, "messages"),
        ([], "messages"),
        (["hi"], "messages[0].role"),
        ([{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}], "messages[1].role"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content"),
        ([{"role": "user"}], "messages[0].content"),
    ],
)
def test_bad_messages_are_a_400_naming_the_message(messages, param):
    with pytest.raises(OpenAIError) as bad:
        parse_chat({"model": "m", "messages": messages})
    assert bad.value.param == param


@pytest.mark.parametrize("body", [[], "prompt", None, 3])
def test_a_body_that_is_not_an_object_is_a_400(body):
    with pytest.raises(OpenAIError, match="must be a JSON object"):
        parse_completion(body)


def test_unused_defaults_of_unsupported_parameters_are_accepted():
    body = {"model": "m", "prompt": "x", "n": 1, "stop": None, "top_p": 1, "echo": False, "presence_penalty": 0}
    assert parse_completion(body).prompt == "x"


def test_a_vocab_reads_the_name_and_counts_tokens(tmp_path):
    vocab = ModelVocab(write_tiny_model(tmp_path / "tiny.gguf"))
    try:
        assert vocab.name == "camelid-tiny-0" and vocab.chat_template is None
        assert (vocab.count_tokens("The llama", True), vocab.count_tokens("The llama", False)) == (10, 9)
    finally:
        vocab.close()


def test_a_chat_its_model_template_refuses_is_a_400_naming_the_messages(tmp_path):
    refusing = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ messages[0]['content'] }}"
    )
    vocab = ModelVocab(write_tiny_model(tmp_path / "chat.gguf", chat_template=refusing))
    model = OfferedModel(b"\x01" * 32, "chat.gguf", vocab, 0)
    try:
        with pytest.raises(OpenAIError, match="System role not supported") as refused:
            model.render_chat((("system", "Be brief."), ("user", "Hi")))
        assert (refused.value.status, refused.value.param) == (400, "messages")
        assert model.render_chat((("user", "Hi"),)).prompt == "Hi"
    finally:
        vocab.close()


def test_a_job_gives_text_only_when_verified():
    info = {"jobid": "ab" * 32, "state": "verified", "verdict": "verified", "text": "llamas"}
    assert failure(info) is None
    assert failure({**info, "state": "slashed", "verdict": "failed: RASTiC rejected 2 of 8 positions"}).startswith(
        "failed: RASTiC"
    )
    assert failure({**info, "state": "expired", "verdict": None, "text": None}) == (
        "ended expired without a delivered output"
    )
    # Verified by neighbours, but this node cannot read the tokens: no text, said so.
    assert failure({**info, "text": None}).startswith("verified, but this node lacks the model file")


def answer(kind: str) -> Answer:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    extra = {"job_id": "ab" * 32, "verdict": "verified", "state": "verified", "history": [], "paid_node": "02" * 33}
    return Answer("x-1", kind, 1700000000, "cd" * 32, "llamas", "length", usage, extra)


def test_answers_parse_as_the_openai_package_types():
    completion = oai.Completion.model_validate(answer(COMPLETION_KIND).body())
    assert completion.choices[0].text == "llamas" and completion.usage.total_tokens == 5
    assert completion.model_extra["camelid"]["verdict"] == "verified"
    chat = ChatCompletion.model_validate(answer(CHAT_KIND).body())
    assert chat.choices[0].message.content == "llamas" and chat.choices[0].finish_reason == "length"


def test_a_streamed_answer_carries_the_text_then_the_finish():
    chunks = [ChatCompletionChunk.model_validate(c) for c in answer(CHAT_KIND).chunks()]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "llamas"
    assert [c.choices[0].finish_reason for c in chunks] == [None, None, "length"]
    assert chunks[0].choices[0].delta.role == "assistant" and chunks[-1].model_extra["camelid"]["job_id"]
    (text,) = [oai.Completion.model_validate(c) for c in answer(COMPLETION_KIND).chunks()]
    assert text.choices[0].text == "llamas" and text.choices[0].finish_reason == "length" and text.usage.total_tokens


class ScriptedJobs:
    """A job pool view whose job goes through `states`, changing (JobChanged) after each look until the last."""

    def __init__(self, *states: dict | None) -> None:
        self._states = list(states)
        self._changed = asyncio.Event()

    def job_info(self, job_id: bytes) -> dict | None:
        if len(self._states) == 1:
            return self._states[0]
        asyncio.get_running_loop().call_soon(self._changed.set)
        return self._states.pop(0)

    @contextlib.asynccontextmanager
    async def watch(self, job_id: bytes) -> AsyncIterator[asyncio.Event]:
        yield self._changed


JOB_ID = bytes(range(32))
RUNNING = {"jobid": JOB_ID[::-1].hex(), "state": "accepted", "verdict": None, "text": None}


async def test_waiting_ends_at_the_verdict_and_only_a_verified_one_gives_text():
    delivered = {**RUNNING, "state": "delivered", "verdict": "verified", "text": "llamas"}
    info = await wait_for_verdict(ScriptedJobs(RUNNING, RUNNING, delivered), JOB_ID, timeout=5)
    assert verified_text(info) == "llamas"
    disputed = {**RUNNING, "state": "disputed", "verdict": "failed: RASTiC rejected 1 of 8 positions", "text": "x"}
    with pytest.raises(OpenAIError) as rejected:
        verified_text(await wait_for_verdict(ScriptedJobs(RUNNING, disputed), JOB_ID, timeout=5))
    assert rejected.value.status == 502 and RUNNING["jobid"] in rejected.value.message
    assert "failed: RASTiC rejected 1 of 8" in rejected.value.message


async def test_a_job_still_running_when_the_wait_ends_is_a_504_naming_it():
    with pytest.raises(OpenAIError) as late:
        await wait_for_verdict(ScriptedJobs(RUNNING), JOB_ID, timeout=0.2)
    assert late.value.status == 504 and RUNNING["jobid"] in late.value.message and "accepted" in late.value.message
    with pytest.raises(OpenAIError) as gone:
        await wait_for_verdict(ScriptedJobs(None), JOB_ID, timeout=5)
    assert gone.value.status == 502
