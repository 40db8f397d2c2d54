"""Private prompts: the salted commitment, the sealed prompt only the chosen node opens, and every mismatch named."""

import pytest

from camelid.core.job import MAX_PROMPT_BYTES
from camelid.core.private_prompt import (
    SALT_SIZE,
    LengthUnit,
    PromptMismatch,
    RevealedPrompt,
    new_salt,
    open_prompt,
    prompt_commitment,
    reveal_problem,
    seal_prompt,
)
from camelid.crypto.keys import PrivateKey

PROMPT = "Why do llamas hum? 🦙"
JOB = b"\x42" * 32


def test_the_commitment_is_salted_so_a_guessed_prompt_cannot_be_confirmed_by_hashing():
    salt_a, salt_b = new_salt(), new_salt()
    assert salt_a != salt_b and len(salt_a) == SALT_SIZE
    assert prompt_commitment("yes", salt_a) != prompt_commitment("yes", salt_b)
    assert prompt_commitment("yes", salt_a) == prompt_commitment("yes", salt_a)
    assert prompt_commitment("yes", salt_a) != prompt_commitment("no", salt_a)


def test_a_salt_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match="salt must be 32 bytes"):
        prompt_commitment(PROMPT, b"\x00" * 16)
    with pytest.raises(ValueError, match="salt must be 32 bytes"):
        RevealedPrompt(PROMPT, b"")


def test_only_the_chosen_node_opens_the_sealed_prompt_and_only_for_its_job():
    chosen, other = PrivateKey.generate(), PrivateKey.generate()
    revealed = RevealedPrompt(PROMPT, new_salt())
    sealed = seal_prompt(chosen.public_key, JOB, revealed)
    assert PROMPT.encode() not in sealed and revealed.salt not in sealed
    assert open_prompt(chosen, JOB, sealed) == revealed
    with pytest.raises(PromptMismatch, match="does not open"):
        open_prompt(other, JOB, sealed)
    with pytest.raises(PromptMismatch, match="does not open"):
        open_prompt(chosen, b"\x43" * 32, sealed)  # replayed under another job
    with pytest.raises(PromptMismatch, match="does not open"):
        open_prompt(chosen, JOB, sealed[:-1] + bytes([sealed[-1] ^ 1]))
    with pytest.raises(PromptMismatch, match="does not open"):
        open_prompt(chosen, JOB, b"\x01")


def test_a_sealed_prompt_that_opens_to_malformed_content_is_the_senders_fault():
    from camelid.crypto import ecies

    node = PrivateKey.generate()
    aad = b"camelid/prompt-seal/v1" + JOB
    with pytest.raises(PromptMismatch, match="shorter than its 32-byte salt"):
        open_prompt(node, JOB, ecies.encrypt(node.public_key, b"\x00" * 10, aad))
    with pytest.raises(PromptMismatch, match="not valid UTF-8"):
        open_prompt(node, JOB, ecies.encrypt(node.public_key, b"\x00" * 32 + b"\xff\xfe", aad))
    with pytest.raises(PromptMismatch, match=f"exceeds {MAX_PROMPT_BYTES} bytes"):
        open_prompt(node, JOB, ecies.encrypt(node.public_key, b"\x00" * 32 + b"a" * (MAX_PROMPT_BYTES + 1), aad))


def test_the_revealed_prompt_is_checked_against_commitment_and_declared_length():
    revealed = RevealedPrompt(PROMPT, new_salt())
    commitment, n_bytes = revealed.commitment(), len(PROMPT.encode())
    assert reveal_problem(revealed, commitment, n_bytes, LengthUnit.BYTES) is None
    assert reveal_problem(revealed, commitment, 9, LengthUnit.TOKENS, tokens=9) is None
    other = RevealedPrompt(PROMPT + "!", revealed.salt)
    assert "do not match the job's prompt commitment" in reveal_problem(other, commitment, n_bytes, LengthUnit.BYTES)
    resalted = RevealedPrompt(PROMPT, new_salt())
    assert "do not match" in reveal_problem(resalted, commitment, n_bytes, LengthUnit.BYTES)
    assert f"is {n_bytes} UTF-8 bytes, the job declared 3" in reveal_problem(revealed, commitment, 3, LengthUnit.BYTES)
    assert "is 9 tokens, the job declared 4" in reveal_problem(revealed, commitment, 4, LengthUnit.TOKENS, tokens=9)
