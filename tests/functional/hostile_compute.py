"""A hostile compute node and a sybil verifier for functional tests, on the real wire with real keys.

HostileComputeNode takes a job as any compute node would: it funds a real STAKE through the miner, publishes a
testament signed by its node key and its job key Pn, and takes the client's directed payment. What it then
delivers is up to the test: garbage that does not decrypt, the right output sealed to the wrong key, a tampered
output it committed to, or nothing. SybilVerifier announces the model in its `version` without running it and
answers every `rasticask` with a "pass" signed by its own key. Nothing in camelidd cooperates: the nodes under
test see only what a real cheater would send.

    cheater = HostileComputeNode(miner, mine_to, client, "127.0.0.21")
    work = cheater.take(reward=COIN)        # job seen, stake funded, testament flooded
    cheater.wait_payment(work)              # the client paid
    cheater.deliver(work, os.urandom(64))   # garbage
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import msgpack

from camelid.chain.jobpool import TestamentRecord, job_delivery_digest
from camelid.compute.outsourced import PositionResult, SignedVerdict, request_digest, tokens_hash, verdict_digest
from camelid.core.job import JobParams
from camelid.core.jobscripts import commitment_body, commitment_signature_digest, output_commitment
from camelid.core.params import REGTEST
from camelid.core.transaction import OutPoint, TxOut
from camelid.crypto import ecies
from camelid.crypto.keys import PrivateKey, PublicKey
from camelid.node.jobs.common import DELIVERY_FEE, STAKE_MULTIPLE, testament_message
from camelid.node.jobs.contract import JobTerms, Spent
from camelid.p2p.messages import (
    DEFAULT_HOPS,
    MESSAGE_ID_SIZE,
    Directed,
    JobDelivery,
    JobMessage,
    JobPayment,
    Message,
)
from camelid.p2p.messages.verify import RasticAnswer, RasticAsk

from .framework import TestNode
from .hostile import fund, pay_to_script
from .p2p_raw import RawPeer


@dataclass
class HostileWork:
    """A job the hostile node took: what it committed to and staked."""

    params: JobParams
    job_key: PrivateKey  # Pn
    commitment: bytes
    stake_txid: bytes
    stake_out: TxOut  # output 0 of the stake transaction

    def sign_job_digest(self, public_key: bytes, digest: bytes) -> bytes:
        """JobSigner for Pn: how JobTerms signs our delivery transaction."""
        assert public_key == self.job_key.public_key.to_bytes()
        return self.job_key.sign(digest)

    @property
    def job_id(self) -> bytes:
        return self.params.job_id()


class _RawNode:
    """A raw peer with a node key of its own, reading what its node floods or directs to it."""

    def __init__(self, node: TestNode, source: str, models: tuple[bytes, ...] = ()) -> None:
        self.key = PrivateKey.generate(network="regtest")
        self.node_id = self.key.public_key.to_bytes()
        self.peer = RawPeer.connect(node.p2p_port, source=source)
        self.peer.handshake(key=self.key, models=models)
        self.received: list[Message] = []

    def close(self) -> None:
        self.peer.close()

    def next(self, matches, timeout: float = 60) -> Message:  # noqa: ANN001 (a predicate on messages)
        """The first message received (or already kept) for which `matches` holds."""
        for message in self.received:
            if matches(message):
                self.received.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.peer.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = self.peer.receive()
            except (TimeoutError, OSError):
                break
            if matches(message):
                return message
            self.received.append(message)
        raise TimeoutError(f"nothing the test waited for within {timeout} s")

    def send_directed(self, recipient: bytes, inner: Message) -> None:
        message_id = os.urandom(MESSAGE_ID_SIZE)
        self.peer.send(Directed(self.node_id, recipient, DEFAULT_HOPS, message_id, inner.command, inner.to_payload()))


class HostileComputeNode(_RawNode):
    """A compute node that stakes for real and then cheats; connected to `node` (the client, or a relay)."""

    def __init__(self, miner: TestNode, mine_to: str, node: TestNode, source: str) -> None:
        super().__init__(node, source)
        self.miner, self.mine_to = miner, mine_to

    def take(self, reward: int, output: Sequence[int] | None = None, prompt_tokens: Sequence[int] = ()) -> HostileWork:
        """Take the next job flooded to us: commit to `output` (with the job's `prompt_tokens`), or to nothing
        at all (a random commitment without a preimage), stake reward x STAKE_MULTIPLE, publish the testament."""
        job = self.next(lambda m: isinstance(m, JobMessage))
        params = JobParams.from_bytes(job.params)
        terms = JobTerms(params, REGTEST.dispute_window)
        if output is None:
            commitment = os.urandom(32)
        else:
            commitment = output_commitment(
                params.model_id, prompt_tokens, output, params.max_tokens, params.seed, params.temperature
            )
        job_key, funder = PrivateKey.generate(network="regtest"), PrivateKey.generate(network="regtest")
        coin = fund(self.miner, self.mine_to, funder)
        stake_tx = pay_to_script(
            coin, funder, terms.stake_script(job_key.public_key.to_bytes(), commitment), reward * STAKE_MULTIPLE,
            terms.job_id,
        )
        self.miner.sendrawtransaction(stake_tx.to_bytes().hex())
        testament = TestamentRecord(
            self.node_id,
            job_key.public_key.to_bytes(),
            commitment,
            job_key.sign(commitment_signature_digest(commitment)),
            stake_tx.hash,
        )
        signed = replace(testament, node_signature=self.key.sign(testament.digest(terms.job_id)))
        self.peer.send(testament_message(terms.job_id, signed))
        return HostileWork(params, job_key, commitment, stake_tx.hash, stake_tx.outputs[0])

    def wait_payment(self, work: HostileWork, timeout: float = 60) -> Directed:
        """The client's directed payment for `work`."""
        return self.next(
            lambda m: isinstance(m, Directed)
            and m.inner_command == JobPayment.command
            and JobPayment.from_payload(m.payload).job_id == work.job_id,
            timeout,
        )

    @staticmethod
    def seal(
        work: HostileWork, tokens: Sequence[int], prompt_tokens: Sequence[int] = (), to: bytes | None = None
    ) -> bytes:
        """`tokens` sealed as a delivery is (the commitment body, with the job's `prompt_tokens`), to the client's
        key or to `to`."""
        params = work.params
        plain = commitment_body(params.model_id, prompt_tokens, tokens, params.max_tokens, params.seed,
                                params.temperature)
        return ecies.encrypt(PublicKey.from_bytes(to or params.client_pubkey), plain, aad=work.job_id)

    def deliver(self, work: HostileWork, sealed: bytes, on_chain: bool = False) -> None:
        """Flood `sealed` as our delivery, validly signed by Pn and our node key; `on_chain`: first put it on chain
        as an honest node does, the STAKE moved into its DELIVERED lock (through the miner's mempool)."""
        if on_chain:
            terms = JobTerms(work.params, REGTEST.dispute_window)
            lock = terms.stake_lock(work.job_key.public_key.to_bytes(), work.commitment)
            staked = Spent(OutPoint(work.stake_txid, 0), work.stake_out)
            self.miner.sendrawtransaction(terms.delivery(staked, lock, sealed, DELIVERY_FEE, work).to_bytes().hex())
        digest = job_delivery_digest(work.job_id, self.node_id, work.stake_txid, sealed)
        self.peer.send(
            JobDelivery(
                work.job_id, self.node_id, sealed, work.job_key.sign(digest), work.stake_txid, self.key.sign(digest)
            )
        )


class SybilVerifier(_RawNode):
    """A peer that claims `model_id` without holding it and signs "pass" on whatever it is asked."""

    def __init__(self, node: TestNode, source: str, model_id: bytes) -> None:
        super().__init__(node, source, models=(model_id,))

    def answer_pass(self, timeout: float = 60) -> None:
        """Answer the next rasticask with every position passed, signed by our key over the request."""
        directed = self.next(lambda m: isinstance(m, Directed) and m.inner_command == RasticAsk.command, timeout)
        ask = RasticAsk.from_payload(directed.payload)
        tokens = struct.unpack(f"<{len(ask.output) // 4}I", ask.output)
        positions = tuple(range(len(tokens)))
        digest = request_digest(ask.job_id, ask.commitment, tokens_hash(tokens), positions)
        results = tuple(PositionResult(j, True, 0.0) for j in positions)
        verdict = SignedVerdict(digest, results, self.node_id, self.key.sign(verdict_digest(digest, results)))
        answer = RasticAnswer(ask.job_id, ask.commitment, msgpack.packb(verdict.to_dict(), use_bin_type=True), "")
        self.send_directed(directed.sender, answer)
