"""A job's private-prompt fields for tests that build JobParams: a fixed salt, so a prompt gives one Job ID."""

from camelid.core.private_prompt import LengthUnit, RevealedPrompt, prompt_commitment

SALT = b"\x5a" * 32


def hidden(prompt: str) -> tuple[bytes, int, int]:
    """(prompt_commitment, prompt_length, prompt_unit) of `prompt` under SALT, its length in UTF-8 bytes."""
    return prompt_commitment(prompt, SALT), len(prompt.encode()), LengthUnit.BYTES


def revealed(prompt: str) -> RevealedPrompt:
    return RevealedPrompt(prompt, SALT)
