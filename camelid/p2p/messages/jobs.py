"""job / jobaccept / testament / jobdelivery (flooded) and jobpayment (directed): the job lifecycle (whitepaper 2.4).

Flooded messages let every full node track every job: the client's offer (`job`), a compute node's claim
(`jobaccept`), its signed output commitment with the stake transaction (`testament`) and its output,
encrypted to the client and signed (`jobdelivery`): every node must hold the delivery, because it is the
counter-proof that keeps a client from taking the stake of a node that delivered. The payment is for the
node only until it publishes it, so it travels inside a `directed` envelope (inner command `jobpayment`);
it is a Message class for its strict schema but not a top-level command. So is `jobprompt`, the private prompt
the client seals to the one node whose jobaccept it chose (camelid.core.private_prompt). Signatures are checked by the
job pool (camelid.chain.jobpool), not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.core.consensus import MAX_TX_SIZE
from camelid.core.job import MAX_HOST_BYTES, MAX_JOB_TOKENS
from camelid.core.private_prompt import MAX_SEALED_PROMPT
from camelid.crypto import ecies
from camelid.p2p.schema import Blob, Message, NodeId, wire

JOB_ID_SIZE = 32
TXID_SIZE = 32
MAX_SIGNATURE = 72  # a DER secp256k1 signature
MAX_JOB_PARAMS = MAX_HOST_BYTES + 160  # JobParams.to_bytes() at its largest: 389 bytes, no prompt in it
MAX_SEALED_OUTPUT = MAX_JOB_TOKENS * 4 + ecies.OVERHEAD  # the pool holds each delivery to its job's max_tokens


@dataclass(frozen=True)
class JobMessage(Message):
    """A client's job: its JobParams bytes, the escrow funding it, and the node to deliver to, signed by Pc."""

    command: ClassVar[str] = "job"
    max_payload: ClassVar[int] = MAX_JOB_PARAMS + 256

    params: bytes = wire(Blob(1, MAX_JOB_PARAMS))
    escrow_txid: bytes = wire(Blob(TXID_SIZE))
    client_node: bytes = wire(NodeId())
    signature: bytes = wire(Blob(1, MAX_SIGNATURE))


@dataclass(frozen=True)
class JobAccept(Message):
    """A compute node starts working on a job; signed by its node identity key."""

    command: ClassVar[str] = "jobaccept"
    max_payload: ClassVar[int] = 256

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    node: bytes = wire(NodeId())
    signature: bytes = wire(Blob(1, MAX_SIGNATURE))


@dataclass(frozen=True)
class JobTestament(Message):
    """A node's output commitment C, signed with its job key Pn, and the stake transaction standing behind it;
    the whole signed by the node's key (job_testament_digest in camelid.chain.jobpool)."""

    command: ClassVar[str] = "testament"
    max_payload: ClassVar[int] = 512

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    node: bytes = wire(NodeId())
    node_pubkey: bytes = wire(NodeId())  # Pn: the key of the STAKE and PAYOUT scripts
    commitment: bytes = wire(Blob(32))
    signature: bytes = wire(Blob(1, MAX_SIGNATURE))
    stake_txid: bytes = wire(Blob(TXID_SIZE))
    node_signature: bytes = wire(Blob(1, MAX_SIGNATURE))


@dataclass(frozen=True)
class JobPayment(Message):
    """Directed client -> node: the signed transaction moving the escrow to the node's PAYOUT."""

    command: ClassVar[str] = "jobpayment"
    max_payload: ClassVar[int] = MAX_TX_SIZE + 128

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    tx: bytes = wire(Blob(1, MAX_TX_SIZE))


@dataclass(frozen=True)
class JobPrompt(Message):
    """Directed client -> chosen node: the job's prompt and salt, ECIES-sealed to that node's identity key and
    signed by the job's client key Pc over sealed_prompt_digest(job_id, node, sealed)."""

    command: ClassVar[str] = "jobprompt"
    max_payload: ClassVar[int] = MAX_SEALED_PROMPT + 160

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    sealed: bytes = wire(Blob(1, MAX_SEALED_PROMPT))
    signature: bytes = wire(Blob(1, MAX_SIGNATURE))


@dataclass(frozen=True)
class JobDelivery(Message):
    """A node's output tokens (u32 LE each), ECIES-encrypted to Pc with aad = Job ID, signed with its job key Pn.

    Both signatures cover job_delivery_digest(job_id, node, stake_txid, sealed) (camelid.chain.jobpool):
    `signature` by the Pn of the testament that `node` and `stake_txid` name, `node_signature` by the node key.
    """

    command: ClassVar[str] = "jobdelivery"
    max_payload: ClassVar[int] = MAX_SEALED_OUTPUT + 384

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    node: bytes = wire(NodeId())
    sealed: bytes = wire(Blob(1, MAX_SEALED_OUTPUT))
    signature: bytes = wire(Blob(1, MAX_SIGNATURE))
    stake_txid: bytes = wire(Blob(TXID_SIZE))
    node_signature: bytes = wire(Blob(1, MAX_SIGNATURE))
