"""The official `openai` package and `camelid-cli complete` buying verified completions from a real job network.

One network (miner, client, compute node on the tiny model) serves the whole module: building one costs
about ten seconds, and every request here is a job of its own on it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import openai
import pytest

from camelid.rpc.auth import read_cookie

from .framework import TestNode
from .jobnet import job_network, node_starter

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Iterator[tuple[TestNode, TestNode]]:
    """(client, compute node) of one job network, stopped when the module's tests are done."""
    basedir = tmp_path_factory.mktemp("openai")
    with node_starter(basedir) as start:
        _, client, compute, _ = job_network(start, basedir)
        yield client, compute


def api(node: TestNode, api_key: str | None = None) -> openai.OpenAI:
    key = api_key if api_key is not None else read_cookie(node.net_datadir).password
    return openai.OpenAI(base_url=f"http://127.0.0.1:{node.rpc_port}/v1", api_key=key, max_retries=0, timeout=120)


def test_the_openai_client_gets_verified_completions(network):
    client_node, compute = network
    client = api(client_node)
    (model,) = client.models.list().data
    assert model.id == client_node.listmodels()[0]["id"] and model.owned_by == "camelid"
    assert client.models.retrieve("default").id == model.id
    assert client.models.retrieve("camelid-tiny-0").id == model.id  # its GGUF general.name

    completion = client.completions.create(model=model.id, prompt="The llama", max_tokens=6, temperature=0, seed=3)
    extra = completion.model_extra["camelid"]
    job = client_node.getjob(extra["job_id"])
    assert completion.id == "cmpl-" + extra["job_id"] and completion.object == "text_completion"
    assert completion.choices[0].text == job["text"] and job["verdict"] == extra["verdict"] == "verified"
    assert (job["max_tokens"], job["seed"], job["temperature"]) == (6, 3, 0)
    assert extra["paid_node"] == compute.getnetworkinfo()["nodeid"]
    assert [entry["state"] for entry in extra["history"]][-1] == "verified"
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.prompt_tokens == 10  # <s> and the nine bytes of "The llama" in the byte vocabulary
    assert 1 <= completion.usage.completion_tokens <= 6

    chat = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0.5
    )
    job = client_node.getjob(chat.model_extra["camelid"]["job_id"])
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert chat.choices[0].message.content == job["text"] and job["verdict"] == "verified"
    assert (job["max_tokens"], job["temperature"]) == (4, 0.5)

    stream = client.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, seed=9, stream=True
    )
    chunks = list(stream)
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    job = client_node.getjob(chunks[-1].model_extra["camelid"]["job_id"])
    assert streamed == job["text"] and job["verdict"] == "verified"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    (chunk,) = client.completions.create(model="default", prompt="Llamas", max_tokens=3, temperature=0, stream=True)
    assert chunk.choices[0].text == client_node.getjob(chunk.model_extra["camelid"]["job_id"])["text"]


def test_the_openai_client_sees_openai_errors(network):
    client_node, _ = network
    jobs_before = client_node.listjobs()
    with pytest.raises(openai.AuthenticationError) as wrong_key:
        api(client_node, "not-the-password").models.list()
    assert wrong_key.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.BadRequestError) as bad:
        api(client_node).completions.create(model="default", prompt="llamas", max_tokens=0)
    assert bad.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as bad:
        api(client_node).completions.create(model="default", prompt="llamas", temperature=2.5)
    assert bad.value.body["param"] == "temperature"
    with pytest.raises(openai.NotFoundError) as missing:
        api(client_node).completions.create(model="gpt-4", prompt="llamas")
    assert missing.value.body["code"] == "model_not_found"
    with pytest.raises(openai.APIStatusError) as unpaid:
        api(client_node).completions.create(model="default", prompt="llamas", extra_body={"camelid_reward": 1000})
    assert unpaid.value.status_code == 402 and unpaid.value.body["code"] == "insufficient_funds"
    assert client_node.listjobs() == jobs_before  # nothing was paid for a refused request


def test_camelid_cli_complete_prints_the_verified_text(network):
    client_node, _ = network
    command = [sys.executable, "-m", "camelid.cli.camelid_cli", f"--datadir={client_node.datadir}", "complete"]
    done = subprocess.run(
        [*command, "The llama", "--max-tokens", "5", "--temperature", "0"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    job_id = next(job["jobid"] for job in client_node.listjobs()[::-1] if job["role"] == "client")
    job = client_node.getjob(job_id)
    assert done.stdout == job["text"] + "\n" and job["verdict"] == "verified"
    # Not on a terminal: a progress line for every state the job reached, however briefly.
    assert [line.split(": ")[1].split(" after ")[0] for line in done.stderr.splitlines()] == [
        entry["state"] for entry in job["history"]
    ]
    assert all(line.startswith(f"job {job_id[:16]}: ") for line in done.stderr.splitlines())
    unpaid = subprocess.run(
        [*command, "llamas", "--max-tokens", "4", "--reward", "1000"], capture_output=True, text=True, timeout=60
    )
    assert unpaid.returncode == 1 and unpaid.stderr.startswith("error code: -6\n")  # insufficient funds
