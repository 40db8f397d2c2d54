"""rasticask / rasticanswer (directed): outsourced RASTiC for a client that does not hold the model (whitepaper 2.5.3).

The client sends a neighbour that holds the model the output tokens it was delivered and the commitment the
compute node signed; the neighbour takes the prompt and sampling parameters from the job in its own pool,
checks the tokens against the commitment, and answers a SignedVerdict (camelid.compute.outsourced) over the
hash of those exact tokens, or a refusal saying why it cannot answer; never text, which the client reads
itself. The verdict is signed by the neighbour's node key, so a relay cannot forge it; the envelope is not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.core.job import MAX_JOB_TOKENS
from camelid.core.private_prompt import MAX_SEALED_PROMPT
from camelid.p2p.messages.jobs import JOB_ID_SIZE
from camelid.p2p.schema import MAX_TEXT_LEN, Blob, Message, Text, wire

TOKEN_SIZE = 4  # u32 LE, as in deliveries
MAX_VERDICT_BYTES = 64 * MAX_JOB_TOKENS + 256  # msgpack of one position result per output token, with the signature


@dataclass(frozen=True)
class RasticAsk(Message):
    """Directed client -> verifier: check these output tokens of a job against the node's commitment; `prompt` is
    the job's private prompt and salt, ECIES-sealed to this verifier's node key (camelid.core.private_prompt)."""

    command: ClassVar[str] = "rasticask"
    max_payload: ClassVar[int] = TOKEN_SIZE * MAX_JOB_TOKENS + MAX_SEALED_PROMPT + 256

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    commitment: bytes = wire(Blob(32))
    output: bytes = wire(Blob(TOKEN_SIZE, TOKEN_SIZE * MAX_JOB_TOKENS))
    prompt: bytes = wire(Blob(1, MAX_SEALED_PROMPT))


@dataclass(frozen=True)
class RasticAnswer(Message):
    """Directed verifier -> client: a msgpack SignedVerdict over every output position, or an empty one and a
    refusal naming why the verifier could not check."""

    command: ClassVar[str] = "rasticanswer"
    max_payload: ClassVar[int] = MAX_VERDICT_BYTES + MAX_TEXT_LEN + 256

    job_id: bytes = wire(Blob(JOB_ID_SIZE))
    commitment: bytes = wire(Blob(32))
    verdict: bytes = wire(Blob(0, MAX_VERDICT_BYTES))
    refusal: str = wire(Text(MAX_TEXT_LEN))
