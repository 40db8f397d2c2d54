"""Private prompts (whitepaper 4.1; docs/jobs-design.md, "Private prompts"): what a job shows in place of its prompt.

A flooded job carries no prompt, only a salted commitment to it and its declared length, so that a compute
node can decide whether to take the job (the length bounds its cost and its fit in one on-chain delivery)
and the Job ID still binds the prompt. The salt is 32 random bytes: without it a short or guessable prompt
("yes", a name, one of a few templates) could be confirmed by hashing candidates against the commitment.

The client sends the prompt and salt to the one node whose jobaccept it chooses, ECIES-sealed to that
node's identity key with aad = tag || Job ID, so a sealed prompt replayed under another job does not open,
and signed by the job's client key Pc (`sealed_prompt_digest`), so nobody else can hand the node a prompt.
The node opens it and checks it against the commitment and the declared length (`reveal_problem`) before
computing: a mismatch is the client's fault.

    commitment = sha256d("camelid/prompt-commit/v1" || salt[32] || prompt UTF-8)
    revealed   = salt[32] || prompt UTF-8                (the plaintext of the sealed prompt)

The declared length has a unit (`LengthUnit`): TOKENS of the job's model where the client can tokenize
(it holds the model or its vocabulary), exact and checked after the node tokenizes; otherwise BYTES, the
prompt's UTF-8 length, exact and checked before any tokenizing. Every vocabulary our models use covers each
byte with at most one token (byte fallback), so BYTES + 1 (the BOS token) bounds the token count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import IntEnum

from camelid.core.job import MAX_PROMPT_BYTES
from camelid.crypto import ecies
from camelid.crypto.hashes import sha256, sha256d
from camelid.crypto.keys import PrivateKey, PublicKey

SALT_SIZE = 32
MAX_SEALED_PROMPT = SALT_SIZE + MAX_PROMPT_BYTES + ecies.OVERHEAD
_COMMIT_TAG = b"camelid/prompt-commit/v1"
_SEAL_TAG = b"camelid/prompt-seal/v1"


class LengthUnit(IntEnum):
    """What a job's declared prompt length counts."""

    BYTES = 0  # the prompt's UTF-8 length: any client can state it; bounds the tokens by BYTES + 1
    TOKENS = 1  # tokens of the job's model, as its tokenizer makes them: exact, from a client holding the model


class PromptMismatch(ValueError):
    """A revealed prompt does not answer its job's commitment or declared length: the client's fault."""


def new_salt() -> bytes:
    return os.urandom(SALT_SIZE)


def prompt_commitment(prompt: str, salt: bytes) -> bytes:
    """The 32-byte commitment a job carries in place of `prompt`."""
    if len(salt) != SALT_SIZE:
        raise ValueError(f"prompt salt must be {SALT_SIZE} bytes, got {len(salt)}")
    return sha256d(_COMMIT_TAG + salt + prompt.encode())


def hide(prompt: str, tokens: int | None) -> tuple[RevealedPrompt, int, LengthUnit]:
    """A fresh salt for `prompt`, and the length a job declares: its `tokens` where the client counted them
    with the job's model, else its UTF-8 length."""
    revealed = RevealedPrompt(prompt, new_salt())
    if tokens is not None:
        return revealed, tokens, LengthUnit.TOKENS
    return revealed, len(prompt.encode()), LengthUnit.BYTES


@dataclass(frozen=True)
class RevealedPrompt:
    """What the chosen node receives: the prompt and the salt that open the job's commitment."""

    prompt: str
    salt: bytes

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_SIZE:
            raise ValueError(f"prompt salt must be {SALT_SIZE} bytes, got {len(self.salt)}")
        if len(self.prompt.encode()) > MAX_PROMPT_BYTES:
            raise ValueError(f"prompt exceeds {MAX_PROMPT_BYTES} bytes")

    def to_bytes(self) -> bytes:
        return self.salt + self.prompt.encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> RevealedPrompt:
        """Parse salt || prompt; ValueError naming the defect."""
        if len(data) < SALT_SIZE:
            raise ValueError(f"revealed prompt is {len(data)} bytes, shorter than its {SALT_SIZE}-byte salt")
        try:
            prompt = data[SALT_SIZE:].decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"revealed prompt is not valid UTF-8: {exc}") from None
        return cls(prompt, bytes(data[:SALT_SIZE]))

    def commitment(self) -> bytes:
        return prompt_commitment(self.prompt, self.salt)


def seal_prompt(node_key: PublicKey, job_id: bytes, revealed: RevealedPrompt) -> bytes:
    """The prompt and salt, ECIES-sealed to the chosen node's identity key for this job only."""
    return ecies.encrypt(node_key, revealed.to_bytes(), _SEAL_TAG + job_id)


def sealed_prompt_digest(job_id: bytes, node: bytes, sealed: bytes) -> bytes:
    """What the client's job key Pc signs for a sealed prompt: only the client can hand a node its prompt, so a
    prompt that does not match is the client's fault, never a third party's forgery."""
    return sha256d(_SEAL_TAG + job_id + node + sha256(sealed))


def open_prompt(node_key: PrivateKey, job_id: bytes, sealed: bytes) -> RevealedPrompt:
    """The revealed prompt of a sealed one; PromptMismatch if it does not open for this key and job or is
    malformed inside (both only the sender could cause)."""
    try:
        return RevealedPrompt.from_bytes(ecies.decrypt(node_key, sealed, _SEAL_TAG + job_id))
    except ValueError as exc:  # ecies.DecryptionError is a ValueError
        raise PromptMismatch(f"sealed prompt does not open: {exc}") from None


def reveal_problem(
    revealed: RevealedPrompt, commitment: bytes, length: int, unit: LengthUnit, tokens: int | None = None
) -> str | None:
    """Why `revealed` is not the job's prompt, None if it is. `tokens` is the count the node's tokenizer made
    (needed, and checked, only for a TOKENS length); a BYTES length is checked without the model."""
    if revealed.commitment() != commitment:
        return "the revealed prompt and salt do not match the job's prompt commitment"
    if unit is LengthUnit.BYTES and len(revealed.prompt.encode()) != length:
        return f"the revealed prompt is {len(revealed.prompt.encode())} UTF-8 bytes, the job declared {length}"
    if unit is LengthUnit.TOKENS and tokens is not None and tokens != length:
        return f"the revealed prompt is {tokens} tokens, the job declared {length}"
    return None
