"""Private prompts (issue 18, docs/jobs-design.md "Private prompts"): only the node the client chooses sees a prompt.

The first test runs a client -- relay -- provider line of real camelidd processes (the relay is the miner, which
holds no model; client and provider each connect only to it) and a raw peer on the relay, and looks for a unique
prompt everywhere the relay could have put it. The others play a client that sends a wrong or malformed prompt.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_support import revealed
from tiny_model import write_tiny_model

from camelid.core.private_prompt import LengthUnit
from camelid.crypto.keys import PrivateKey

from .framework import TestNode, wait_until
from .hostile import HostileClient
from .jobnet import funded_network, job_network
from .p2p_raw import RawPeer

pytestmark = pytest.mark.slow

REWARD = 1


class Listener:
    """A raw peer that shook hands with a node and keeps every byte the node sends it."""

    def __init__(self, node: TestNode) -> None:
        self.peer = RawPeer.connect(node.p2p_port, source="127.0.0.9")
        self.peer.handshake()
        self.data = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        self.peer.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                chunk = self.peer.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.data.extend(chunk)

    def close(self) -> bytes:
        self._stop.set()
        self._thread.join()
        self.peer.close()
        return bytes(self.data)


def files_holding(root: Path, needle: bytes) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file() and needle in path.read_bytes()]


def test_a_relay_never_sees_the_prompt_only_the_chosen_node_does(camelid_nodes, tmp_path):
    relay, client, provider, _ = job_network(camelid_nodes, tmp_path)
    listener = Listener(relay)
    prompt = f"The private llama {uuid.uuid4().hex} hums"
    job = client.submitjob(prompt, 8, None, 0, 0, REWARD, 30)
    wait_until(lambda: client.getjob(job)["state"] == "verified", timeout=40, what="the verdict")
    wait_until(lambda: relay.getjob(job)["state"] == "delivered", what="the delivery at the relay")
    heard = listener.close()

    mine, work, seen = client.getjob(job), provider.getjob(job), relay.getjob(job)
    assert mine["prompt"] == work["prompt"] == prompt and mine["text"]
    assert "prompt" not in seen and prompt not in json.dumps(seen, default=str)
    assert seen["prompt_commitment"] == mine["prompt_commitment"] and seen["prompt_unit"] == "tokens"
    needle = prompt.encode()
    assert bytes.fromhex(seen["prompt_commitment"]) in heard  # the raw peer got the job, but not its prompt
    assert needle not in heard
    assert files_holding(relay.datadir, needle) == []  # its job store, debug.log and every other file
    assert files_holding(client.datadir, needle) != []  # the search finds a prompt where one is kept


@pytest.fixture
def hostile(camelid_nodes, tmp_path) -> Iterator[tuple[HostileClient, TestNode]]:
    model = write_tiny_model(tmp_path / "tiny.gguf")
    miner, (compute,), mine_to = funded_network(camelid_nodes, [[f"--serve-model={model}"]])
    client = HostileClient.connect(miner, compute, mine_to)
    yield client, compute
    client.close()


@pytest.mark.parametrize(
    "sent,declared,problem",
    [
        ("Not the prompt the job committed to", None, "do not match the job's prompt commitment"),
        ("The llama", (3, LengthUnit.BYTES), "is 9 UTF-8 bytes, the job declared 3"),
        ("The llama", (40, LengthUnit.TOKENS), "tokens, the job declared 40"),
    ],
    ids=["another prompt", "another byte length", "another token count"],
)
def test_a_prompt_that_is_not_the_jobs_is_the_clients_fault_and_nothing_is_staked(hostile, sent, declared, problem):
    client, compute = hostile
    with compute.assert_debug_log(["not computed, its client's prompt is wrong (the client's fault)"]):
        job = client.submit(sent=revealed(sent), declared=declared)
        with pytest.raises(TimeoutError):
            client.testament(job, timeout=5)
    info = compute.getjob(job.rpc_id)
    assert problem in info["prompt_problem"]
    assert info["testaments"] == [] and compute.getcomputeinfo()["market"]["taken"] == 0
    honest = client.submit()  # the node goes on taking jobs
    assert client.testament(honest).node == client.compute_id


def test_a_malformed_or_forged_prompt_message_is_dropped_and_the_node_goes_on(hostile):
    client, compute = hostile
    with compute.assert_debug_log(["directed jobprompt from"]):
        client.send_directed("jobprompt", b"\x00not a prompt message")
    job = client.submit()
    _, right = client.prompts[job.job_id]
    forger = PrivateKey.generate(network="regtest")
    client.prompts[job.job_id] = (forger, right)  # the right prompt from a third party: not signed by the job's Pc
    with compute.assert_debug_log(["is not signed by the job's client key"]), pytest.raises(TimeoutError):
        client.testament(job, timeout=5)
    assert compute.getjob(job.rpc_id)["testaments"] == [] and "prompt_problem" not in compute.getjob(job.rpc_id)
    assert client.testament(client.submit()).node == client.compute_id
