"""Job parameters (whitepaper 2.4) and the Job ID that transactions carry.

The parameters never go on chain; only their hash does, in the Job ID field of the
payment transactions. The encoding is therefore fixed byte for byte: any two nodes
must derive the same Job ID from the same parameters.

    version u8 (2) | model_id[32] | prompt_commitment[32] | prompt_unit u8 | prompt_length u32 |
    max_tokens u32 | seed u64 | temperature_milli u16 | timestamp u64 | timelock u32 |
    client_pubkey[33] | var_bytes client_host (ASCII) | client_port u16

The prompt itself is not a parameter: the job carries its salted commitment and its length
(camelid.core.private_prompt), and only the node the client chooses is sent the prompt.

Temperature is carried in thousandths so that no float ever enters a hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from camelid.core.jobscripts import COMMITMENT_BODY_OVERHEAD, MAX_DELIVERY_SIZE
from camelid.core.serialize import ByteReader, var_bytes
from camelid.crypto import ecies
from camelid.crypto.hashes import sha256d

JOB_VERSION = 2
MAX_PROMPT_BYTES = 64 * 1024
MAX_JOB_TOKENS = (MAX_DELIVERY_SIZE - ecies.OVERHEAD - COMMITMENT_BODY_OVERHEAD) // 4
"""2,308 prompt + output tokens: a delivery seals the commitment body B (the job's fields, the prompt and the
output tokens, 4 bytes each; ECIES), which must fit the one delivery scriptSig that puts it on chain and the
bad-delivery proof that carries the same blob. max_tokens alone is bounded by it here; where the prompt's
tokens are known (a compute node, a client holding the model) job_tokens_problem bounds the sum."""
MAX_TEMPERATURE_MILLI = 2000
MAX_HOST_BYTES = 255
_JOB_ID_TAG = b"camelid/job-id/v1"


def job_tokens_problem(prompt_tokens: int, max_tokens: int) -> str | None:
    """Why a job whose prompt is `prompt_tokens` tokens long cannot be delivered on chain, None if it can."""
    if prompt_tokens + max_tokens > MAX_JOB_TOKENS:
        return (
            f"its prompt's {prompt_tokens} tokens and max_tokens {max_tokens} exceed the {MAX_JOB_TOKENS} "
            "tokens one delivery carries on chain"
        )
    return None


@dataclass(frozen=True)
class JobParams:
    model_id: bytes  # the model's id (camelid.compute.model_id; whitepaper 2.6.1)
    prompt_commitment: bytes  # private_prompt.prompt_commitment(prompt, salt): the prompt stays with the client
    prompt_length: int  # the prompt's length, in private_prompt.LengthUnit `prompt_unit`
    prompt_unit: int
    max_tokens: int
    seed: int
    temperature_milli: int  # sampling temperature x 1000; 0 is greedy
    timestamp: int  # creation time, UNIX seconds
    timelock: int  # seconds after `timestamp` by which the output must be delivered
    client_pubkey: bytes  # 33-byte compressed key the output is encrypted to (ECIES)
    client_host: str
    client_port: int

    def __post_init__(self) -> None:
        _check(len(self.model_id) == 32, f"model_id must be 32 bytes, got {len(self.model_id)}")
        size = len(self.prompt_commitment)
        _check(size == 32, f"prompt_commitment must be 32 bytes, got {size}")
        _check(self.prompt_unit in (0, 1), f"prompt_unit must be 0 (UTF-8 bytes) or 1 (tokens), got {self.prompt_unit}")
        limit = MAX_PROMPT_BYTES if self.prompt_unit == 0 else MAX_JOB_TOKENS
        _check(0 <= self.prompt_length <= limit, f"prompt_length must be 0..{limit}, got {self.prompt_length}")
        _check(1 <= self.max_tokens <= MAX_JOB_TOKENS, f"max_tokens must be 1..{MAX_JOB_TOKENS}, got {self.max_tokens}")
        _check(0 <= self.seed < 2**64, f"seed must fit 64 bits, got {self.seed}")
        _check(
            0 <= self.temperature_milli <= MAX_TEMPERATURE_MILLI,
            f"temperature_milli must be 0..{MAX_TEMPERATURE_MILLI}, got {self.temperature_milli}",
        )
        _check(0 <= self.timestamp < 2**64, f"timestamp out of range: {self.timestamp}")
        _check(0 < self.timelock < 2**32, f"timelock must be 1..2^32-1 seconds, got {self.timelock}")
        _check(
            len(self.client_pubkey) == 33 and self.client_pubkey[0] in (2, 3),
            "client_pubkey must be a 33-byte compressed public key",
        )
        _check(
            self.client_host.isascii() and len(self.client_host) <= MAX_HOST_BYTES,
            f"client_host must be ASCII of at most {MAX_HOST_BYTES} characters",
        )
        _check(0 < self.client_port < 65536, f"client_port must be 1..65535, got {self.client_port}")

    @property
    def temperature(self) -> float:
        return self.temperature_milli / 1000

    def to_bytes(self) -> bytes:
        return b"".join(
            [
                bytes([JOB_VERSION]),
                self.model_id,
                self.prompt_commitment,
                bytes([self.prompt_unit]),
                self.prompt_length.to_bytes(4, "little"),
                self.max_tokens.to_bytes(4, "little"),
                self.seed.to_bytes(8, "little"),
                self.temperature_milli.to_bytes(2, "little"),
                self.timestamp.to_bytes(8, "little"),
                self.timelock.to_bytes(4, "little"),
                self.client_pubkey,
                var_bytes(self.client_host.encode("ascii")),
                self.client_port.to_bytes(2, "little"),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> JobParams:
        """Decode job parameters; ValueError naming the field for any malformed input."""
        r = ByteReader(data)
        version = r.u8("job version")
        _check(version == JOB_VERSION, f"unknown job version {version}")
        model_id = r.read(32, "model id")
        prompt_commitment = r.read(32, "prompt commitment")
        prompt_unit, prompt_length = r.u8("prompt unit"), r.u32("prompt length")
        max_tokens, seed = r.u32("max_tokens"), r.u64("seed")
        temperature_milli = int.from_bytes(r.read(2, "temperature"), "little")
        timestamp, timelock = r.u64("timestamp"), r.u32("timelock")
        client_pubkey = r.read(33, "client pubkey")
        host_raw = r.var_bytes("client host")
        port = int.from_bytes(r.read(2, "client port"), "little")
        r.finish("job parameters")
        try:
            host = host_raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ValueError(f"job client host is not ASCII: {exc}") from None
        return cls(
            model_id, prompt_commitment, prompt_length, prompt_unit, max_tokens, seed, temperature_milli, timestamp,
            timelock, client_pubkey, host, port,
        )

    def job_id(self) -> bytes:
        """The 32-byte Job ID: a tagged sha256d of the canonical encoding."""
        return sha256d(_JOB_ID_TAG + self.to_bytes())


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
