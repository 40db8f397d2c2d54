"""A hostile client for functional tests: keys of its own, transactions built by hand, job messages on the raw wire.

Nothing in camelidd helps it cheat. It holds a key the miner funds on regtest, builds its escrow, payments and
self-payouts itself (camelid.node.jobs.contract builds the honest shapes, which it then bends), pushes its
transactions through the miner's RPC as any wallet could, and speaks to the compute node over a RawPeer
(tests/functional/p2p_raw.py): the job message, and the payment as a directed message. The compute node under
test is a real camelidd that sees only what a real cheating client would send.

    client = HostileClient.connect(miner, compute, mine_to)
    job = client.submit(reward=COIN)              # escrow in the miner's mempool, job message to the compute node
    testament = client.testament(job)             # the compute node's signed commitment, flooded to us
    client.send_payment(job, client.payment(job, testament))
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from prompt_support import hidden, revealed

from camelid.chain.jobpool import job_offer_digest
from camelid.chain.template import BLOCK_VERSION, make_coinbase
from camelid.compute.engine import Engine
from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import COIN, block_subsidy
from camelid.core.job import JobParams
from camelid.core.jobscripts import (
    FraudProof,
    claim_script_sig,
    commitment_signature_digest,
    escrow_script_sig,
    fraud_proof_script_sig,
    output_commitment,
)
from camelid.core.params import REGTEST
from camelid.core.private_prompt import RevealedPrompt, seal_prompt, sealed_prompt_digest
from camelid.core.script import p2pkh_script, p2pkh_script_sig
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto.address import hash160_to_address
from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PrivateKey, PublicKey
from camelid.crypto.merkle import merkle_root
from camelid.node.jobs.client import PAYMENT_FEE
from camelid.node.jobs.common import RELEASE_FEE
from camelid.node.jobs.contract import NON_FINAL, JobTerms, Spent
from camelid.p2p.messages import (
    DEFAULT_HOPS,
    MESSAGE_ID_SIZE,
    Directed,
    JobAccept,
    JobDelivery,
    JobMessage,
    JobPayment,
    JobPrompt,
    JobTestament,
    Message,
)

from .framework import TestNode, wait_until
from .p2p_raw import RawPeer

FUNDING = Decimal(5)
"""Coins the miner sends the hostile client per job it funds."""
ESCROW_TX_FEE = 10_000


def fund(miner: TestNode, mine_to: str, key: PrivateKey) -> Spent:
    """A confirmed output of FUNDING coins to `key`, from the miner."""
    address = hash160_to_address(hash160(key.public_key.to_bytes()), "regtest")
    txid = miner.sendtoaddress(address, FUNDING)
    miner.generatetoaddress(1, mine_to)
    script = p2pkh_script(hash160(key.public_key.to_bytes()))
    for index in range(2):
        out = miner.gettxout(txid, index)
        if out is not None and out["scriptPubKey"]["hex"] == script.hex():
            return Spent(OutPoint(bytes.fromhex(txid)[::-1], index), TxOut(int(out["value"] * COIN), script))
    raise AssertionError(f"funding {txid} has no output to the hostile client")


def p2pkh_spend(coin: Spent, key: PrivateKey, outputs: tuple[TxOut, ...], job_id: bytes | None = None) -> Transaction:
    """`coin` (paying `key`'s P2PKH) spent to `outputs`, signed."""
    unsigned = Transaction(inputs=(TxIn(coin.outpoint.txid, coin.outpoint.index),), outputs=outputs)
    if job_id is not None:
        unsigned = replace(unsigned, job_id=job_id)
    digest = unsigned.signature_hash(0, coin.out.script_pubkey, coin.out.value, SIGHASH_ALL)
    script_sig = p2pkh_script_sig(key.sign(digest) + bytes([SIGHASH_ALL]), key.public_key.to_bytes())
    return replace(unsigned, inputs=(replace(unsigned.inputs[0], script_sig=script_sig),))


def pay_to_script(coin: Spent, key: PrivateKey, script: bytes, value: int, job_id: bytes) -> Transaction:
    """`coin` (a P2PKH output to `key`) spent to `value` on `script` for job `job_id`, the change back to it."""
    change = TxOut(coin.out.value - value - ESCROW_TX_FEE, coin.out.script_pubkey)
    return p2pkh_spend(coin, key, (TxOut(value, script), change), job_id)


UNSERVED_MODEL = b"\x5a" * 32
"""A model nobody serves: jobs for it are only stored and relayed, never computed."""


def unfunded_job(client_node: bytes, model_id: bytes = UNSERVED_MODEL) -> JobMessage:
    """A job correctly signed by its client, naming an escrow that does not exist: free to make."""
    client = PrivateKey.generate(network="regtest")
    params = JobParams(model_id, *hidden("free"), 8, 0, 0, int(time.time()), 600, client.public_key.to_bytes(), "", 1)
    escrow = os.urandom(32)
    signature = client.sign(job_offer_digest(params.job_id(), escrow, client_node))
    return JobMessage(params.to_bytes(), escrow, client_node, signature)


def escrowed_jobs(
    miner: TestNode, mine_to: str, client_node: bytes, count: int, model_id: bytes, reward: int = COIN // 100
) -> list[JobMessage]:
    """`count` signed job messages from `client_node` whose escrows are outputs of one transaction, in the
    miner's mempool: job spam as cheap as it gets once every job needs an escrow (one fee for many jobs)."""
    funder, client_key = PrivateKey.generate(network="regtest"), PrivateKey.generate(network="regtest")
    coin = fund(miner, mine_to, funder)
    now = int(time.time())
    terms = [
        JobTerms(
            JobParams(model_id, *hidden(f"spam {i}"), 8, 0, 0, now, 600, client_key.public_key.to_bytes(), "", 1),
            REGTEST.dispute_window,
        )
        for i in range(count)
    ]
    change = TxOut(coin.out.value - count * reward - ESCROW_TX_FEE * (1 + count // 10), coin.out.script_pubkey)
    escrow_tx = p2pkh_spend(coin, funder, (*(TxOut(reward, t.escrow_script) for t in terms), change))
    miner.sendrawtransaction(escrow_tx.to_bytes().hex())
    return [
        JobMessage(
            t.params.to_bytes(),
            escrow_tx.hash,
            client_node,
            client_key.sign(job_offer_digest(t.job_id, escrow_tx.hash, client_node)),
        )
        for t in terms
    ]


def fraud_proofs(
    node: TestNode, model: Path, tamper: Callable[[list[int], int], list[int]], count: int, max_tokens: int = 4
) -> list[Transaction]:
    """`count` fraud-proof spends, each of its own STAKE (one staking transaction, mined on `node`): the STAKE
    of a "node" that committed to `tamper(the model's own output, i)`, taken with a proof at position 0 to a key's
    output instead of the GAME the proof must open (move 0 of the dispute game)."""
    node.createwallet("soak")
    mine_to = node.getnewaddress()
    node.generatetoaddress(101, mine_to)
    with Engine(model, n_threads=1, n_ctx=512) as engine:
        model_id, prompt = engine.model_id, engine.tokenize("The llama")
        honest = engine.generate(prompt, max_tokens)
    client, pn, funder = (PrivateKey.generate(network="regtest") for _ in range(3))
    params = JobParams(model_id, *hidden("The llama"), max_tokens, 0, 0, int(time.time()) - 60, 600,
                       client.public_key.to_bytes(), "", 1)
    terms = JobTerms(params, REGTEST.dispute_window)
    outputs = [tamper(honest, i) for i in range(count)]
    commitments = [output_commitment(model_id, prompt, output, max_tokens, 0, 0.0) for output in outputs]
    stakes = [TxOut(COIN // 10, terms.stake_script(pn.public_key.to_bytes(), c)) for c in commitments]
    coin = fund(node, mine_to, funder)
    change = TxOut(coin.out.value - count * COIN // 10 - 10_000, coin.out.script_pubkey)
    stake_tx = p2pkh_spend(coin, funder, (*stakes, change), terms.job_id)
    node.sendrawtransaction(stake_tx.to_bytes().hex())
    node.generatetoaddress(1, mine_to)
    spends = []
    for i, commitment in enumerate(commitments):
        proof = FraudProof(tuple(prompt), tuple(outputs[i]), max_tokens, 0, 0, 0,
                           pn.sign(commitment_signature_digest(commitment)), honest[0] + 1)
        unsigned = Transaction(inputs=(TxIn(stake_tx.hash, i),),
                               outputs=(TxOut(stakes[i].value - 20_000, p2pkh_script(bytes(20))),), job_id=terms.job_id)
        digest = unsigned.signature_hash(0, stakes[i].script_pubkey, stakes[i].value, SIGHASH_ALL)
        script_sig = fraud_proof_script_sig(client.sign(digest) + bytes([SIGHASH_ALL]), proof)
        spends.append(replace(unsigned, inputs=(replace(unsigned.inputs[0], script_sig=script_sig),)))
    return spends


class KeySigner:
    """A JobSigner over keys the hostile client holds in memory (a real client's keys stay in its wallet)."""

    def __init__(self, *keys: PrivateKey) -> None:
        self._keys = {key.public_key.to_bytes(): key for key in keys}

    def sign_job_digest(self, public_key: bytes, digest: bytes) -> bytes:
        return self._keys[public_key].sign(digest)


@dataclass
class HostileJob:
    terms: JobTerms
    client_key: PrivateKey  # Pc
    escrow: Spent

    @property
    def job_id(self) -> bytes:
        return self.terms.job_id

    @property
    def rpc_id(self) -> str:
        return self.job_id[::-1].hex()


class HostileClient:
    """One cheating client: a raw P2P connection to the compute node, and the miner's RPC for its transactions."""

    def __init__(self, miner: TestNode, compute: TestNode, mine_to: str, peer: RawPeer, node_id: bytes) -> None:
        self.miner, self.compute, self.mine_to = miner, compute, mine_to
        self.peer, self.node_id = peer, node_id
        self.compute_id = bytes.fromhex(compute.getnetworkinfo()["nodeid"])
        self.model_id = bytes.fromhex(compute.listmodels()[0]["id"])
        self.received: list[Message] = []
        self.prompts: dict[bytes, tuple[PrivateKey, RevealedPrompt]] = {}  # by Job ID: sent once the node accepts

    @classmethod
    def connect(cls, miner: TestNode, compute: TestNode, mine_to: str, source: str = "127.0.0.66") -> HostileClient:
        peer = RawPeer.connect(compute.p2p_port, source=source)
        peer.handshake()
        return cls(miner, compute, mine_to, peer, peer.node_id)

    def close(self) -> None:
        self.peer.close()

    # -- coins -----------------------------------------------------------------------------------

    def fund(self, key: PrivateKey) -> Spent:
        """A confirmed output of FUNDING coins to `key`, from the miner."""
        return fund(self.miner, self.mine_to, key)

    def broadcast(self, tx: Transaction) -> str:
        """Hand `tx` to the miner, as a client with its own miner (or paying one) would."""
        return self.miner.sendrawtransaction(tx.to_bytes().hex())

    # -- a job -----------------------------------------------------------------------------------

    def submit(
        self,
        reward: int = COIN,
        t0: int | None = None,
        timelock: int = 30,
        max_tokens: int = 8,
        sent: RevealedPrompt | None = None,
        declared: tuple[int, int] | None = None,
    ) -> HostileJob:
        """Fund an escrow for a new job and send the job message to the compute node; the job. Once the node
        accepts it (seen while we wait for its messages), it is sent the job's prompt, or `sent` instead.
        `declared`: the (length, unit) the job declares instead of the prompt's UTF-8 length."""
        funder, client_key = PrivateKey.generate(network="regtest"), PrivateKey.generate(network="regtest")
        coin = self.fund(funder)
        params = JobParams(
            self.model_id,
            *(hidden("The llama") if declared is None else (hidden("The llama")[0], *declared)),
            max_tokens,
            0,
            0,
            int(time.time()) if t0 is None else t0,
            timelock,
            client_key.public_key.to_bytes(),
            "",
            REGTEST.default_port,
        )
        terms = JobTerms(params, REGTEST.dispute_window)
        escrow_tx = pay_to_script(coin, funder, terms.escrow_script, reward, terms.job_id)
        self.broadcast(escrow_tx)
        signature = client_key.sign(job_offer_digest(terms.job_id, escrow_tx.hash, self.node_id))
        self.peer.send(JobMessage(params.to_bytes(), escrow_tx.hash, self.node_id, signature))
        self.prompts[terms.job_id] = client_key, revealed("The llama") if sent is None else sent
        return HostileJob(terms, client_key, Spent(OutPoint(escrow_tx.hash, 0), escrow_tx.outputs[0]))

    def send_prompt(self, job_id: bytes, client_key: PrivateKey, prompt: RevealedPrompt) -> None:
        """The prompt sealed to the compute node and signed by Pc, as a directed message over our connection."""
        sealed = seal_prompt(PublicKey.from_bytes(self.compute_id), job_id, prompt)
        signature = client_key.sign(sealed_prompt_digest(job_id, self.compute_id, sealed))
        self.send_directed(JobPrompt.command, JobPrompt(job_id, sealed, signature).to_payload())

    def send_directed(self, command: str, payload: bytes) -> None:
        message_id = os.urandom(MESSAGE_ID_SIZE)
        self.peer.send(Directed(self.node_id, self.compute_id, DEFAULT_HOPS, message_id, command, payload))

    def testament(self, job: HostileJob, timeout: float = 60) -> JobTestament:
        """The compute node's testament for `job`, as it floods it to us."""
        return self._expect(JobTestament, job, timeout)

    def delivery(self, job: HostileJob, timeout: float) -> JobDelivery | None:
        """The compute node's delivery for `job` if it floods one within `timeout` seconds."""
        try:
            return self._expect(JobDelivery, job, timeout)
        except TimeoutError:
            return None

    def _expect(self, kind: type, job: HostileJob, timeout: float):  # noqa: ANN202 (returns a `kind`)
        deadline = time.monotonic() + timeout
        for message in self.received:
            if isinstance(message, kind) and message.job_id == job.job_id:
                return message
        while time.monotonic() < deadline:
            self.peer.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = self.peer.receive()
            except (TimeoutError, OSError):
                break
            self.received.append(message)
            if isinstance(message, JobAccept) and message.node == self.compute_id and message.job_id in self.prompts:
                self.send_prompt(message.job_id, *self.prompts.pop(message.job_id))
            if isinstance(message, kind) and message.job_id == job.job_id:
                return message
        raise TimeoutError(f"no {kind.__name__} for job {job.rpc_id} within {timeout} s")

    # -- paying (honestly or not) ----------------------------------------------------------------

    def payment(self, job: HostileJob, testament: JobTestament) -> Transaction:
        """The honest payment: the escrow moved to the testament node's PAYOUT."""
        return job.terms.payment(
            job.escrow, testament.node_pubkey, testament.commitment, PAYMENT_FEE, KeySigner(job.client_key)
        )

    def escrow_spend(
        self, job: HostileJob, outputs: tuple[TxOut, ...], lock_time: int = 0, sequence: int = 0xFFFFFFFF
    ) -> Transaction:
        """Any spend of the escrow the client likes, signed with Pc (consensus decides whether it is valid)."""
        txin = TxIn(job.escrow.outpoint.txid, job.escrow.outpoint.index, sequence=sequence)
        unsigned = Transaction(inputs=(txin,), outputs=outputs, lock_time=lock_time, job_id=job.job_id)
        digest = unsigned.signature_hash(0, job.escrow.out.script_pubkey, job.escrow.out.value, SIGHASH_ALL)
        signed = replace(txin, script_sig=escrow_script_sig(job.client_key.sign(digest) + bytes([SIGHASH_ALL])))
        return replace(unsigned, inputs=(signed,))

    def self_payout(self, job: HostileJob) -> Transaction:
        """The escrow moved to a PAYOUT for this job whose "node" is a key of the client's own."""
        own = PrivateKey.generate(network="regtest").public_key.to_bytes()
        payout = job.terms.payout_script(own, os.urandom(32))
        return self.escrow_spend(job, (TxOut(job.escrow.out.value - PAYMENT_FEE, payout),))

    def send_payment(self, job: HostileJob, tx: Transaction) -> None:
        """The payment as a directed message to the compute node, straight over our connection to it."""
        self.send_directed(JobPayment.command, JobPayment(job.job_id, tx.to_bytes()).to_payload())

    def stake(self, job: HostileJob, testament: JobTestament, timeout: float = 30) -> Spent:
        """The testament's STAKE output, once it shows (unspent) at the miner."""
        script = job.terms.stake_script(testament.node_pubkey, testament.commitment)
        txid = testament.stake_txid[::-1].hex()

        def find() -> Spent | None:
            for index in range(2):
                out = self.miner.gettxout(txid, index)
                if out is not None and out["scriptPubKey"]["hex"] == script.hex():
                    outpoint = OutPoint(testament.stake_txid, index)
                    return Spent(outpoint, TxOut(int(out["value"] * COIN), script))
            return None

        wait_until(lambda: find() is not None, timeout=timeout, what="the stake at the miner")
        found = find()
        assert found is not None
        return found

    def claim(self, job: HostileJob, *locked: Spent) -> Transaction:
        """The client's non-delivery claim on the STAKE and PAYOUT outputs `locked` (any of them, in one
        transaction), to a key of its own: consensus takes it from D only as a STAKE with its PAYOUT mined
        before D - W, the STAKE still there (jobrules.check_job_claims)."""
        pay_to = p2pkh_script(hash160(PrivateKey.generate(network="regtest").public_key.to_bytes()))
        inputs = tuple(TxIn(s.outpoint.txid, s.outpoint.index, sequence=NON_FINAL) for s in locked)
        outputs = (TxOut(sum(s.out.value for s in locked) - RELEASE_FEE, pay_to),)
        unsigned = Transaction(inputs=inputs, outputs=outputs, lock_time=job.terms.deadline, job_id=job.job_id)
        signed = []
        for index, (txin, s) in enumerate(zip(inputs, locked, strict=True)):
            digest = unsigned.signature_hash(index, s.out.script_pubkey, s.out.value, SIGHASH_ALL)
            signature = job.client_key.sign(digest) + bytes([SIGHASH_ALL])
            signed.append(replace(txin, script_sig=claim_script_sig(signature)))
        return replace(unsigned, inputs=tuple(signed))

    def mine_until_median_time(self, when: int, timeout: float = 120) -> None:
        """Mine a block every half second (through the miner, which includes its mempool) until the median time
        past passes `when`: the client's miner moving the chain to where its time-locked spends are valid."""

        def passed() -> bool:
            if self.miner.getblockchaininfo()["mediantime"] > when:
                return True
            self.miner.generatetoaddress(1, self.mine_to)
            return False

        wait_until(passed, timeout=timeout, interval=0.5, what=f"the median time past beyond {when}")

    def admit(self, tx: Transaction, mine: bool = False, timeout: float = 60) -> None:
        """Get `tx` into the miner's mempool the moment the rules allow, mining blocks until they do (the
        dispute window waits for the median time past), and with `mine` into a block: what a client with
        its own miner does. Each block is followed at once by the transaction, before any other node can
        react to that block."""

        def admitted() -> bool:
            self.miner.generatetoaddress(1, self.mine_to)
            try:
                self.broadcast(tx)
            except Exception as exc:  # the RPC's error names the rule; only the dispute window is worth waiting out
                if "job-dispute-window" not in str(exc):
                    raise
                return False
            return True

        wait_until(admitted, timeout=timeout, interval=0.2, what="the miner to admit the client's transaction")
        if mine:
            self.miner.generatetoaddress(1, self.mine_to)


def block_on_tip(miner: TestNode, *txs: Transaction) -> Block:
    """A block on `miner`'s tip holding exactly `txs` (none: an empty block), built and solved here rather than
    by the miner's template: what a miner that leaves chosen transactions out, for a bribe, publishes."""
    tip = miner.getblockheader(miner.getbestblockhash())
    height = tip["height"] + 1
    coinbase = make_coinbase(height, 0, p2pkh_script(bytes(20)), block_subsidy(height))
    transactions = (coinbase, *txs)
    header = BlockHeader(
        BLOCK_VERSION,
        bytes.fromhex(tip["hash"])[::-1],
        merkle_root([tx.hash for tx in transactions]),
        max(int(time.time()), tip["mediantime"] + 1),
        int(tip["bits"], 16),
        0,
    )
    while not header.check_pow(REGTEST.pow_limit):
        header = header.with_nonce(header.nonce + 1)
    return Block(header, transactions)
