"""Base58 and Base58Check, the text encodings of addresses and WIF keys.

The `base58` package does the alphabet arithmetic; this module adds what it
leaves loose: characters are checked up front so a bad one is named (the
package would strip trailing whitespace and accept it), and the 4-byte
SHA-256d checksum is computed here from the consensus hash module.
"""

from __future__ import annotations

import math

import base58

from camelid.crypto.hashes import sha256d

ALPHABET = base58.BITCOIN_ALPHABET.decode("ascii")
CHECKSUM_LENGTH = 4
_ALPHABET_SET = frozenset(ALPHABET)


def b58encode(data: bytes) -> str:
    """Base58 text of `data`; each leading zero byte becomes a leading '1'."""
    return base58.b58encode(data).decode("ascii")


def b58decode(text: str) -> bytes:
    """Bytes of Base58 `text`; ValueError naming the first character outside the alphabet."""
    if not isinstance(text, str):
        raise ValueError(f"base58 input must be str, not {type(text).__name__}")
    for position, char in enumerate(text):
        if char not in _ALPHABET_SET:
            raise ValueError(f"invalid base58 character {char!r} at position {position}")
    return base58.b58decode(text)


def checksum(payload: bytes) -> bytes:
    """First 4 bytes of SHA-256d(payload), the Base58Check checksum."""
    return sha256d(payload)[:CHECKSUM_LENGTH]


def b58check_encode(payload: bytes) -> str:
    """Base58 of payload || checksum(payload)."""
    return b58encode(payload + checksum(payload))


def max_encoded_length(byte_length: int) -> int:
    """Longest Base58 text that `byte_length` bytes can encode to."""
    return math.ceil(byte_length * math.log(256, 58))


def b58check_decode(text: str, max_payload_length: int | None = None) -> bytes:
    """Payload of Base58Check `text`, its checksum verified and removed.

    With `max_payload_length`, text too long to hold such a payload is refused
    before decoding, since Base58 decoding is quadratic in the text length.
    """
    if max_payload_length is not None and isinstance(text, str):
        limit = max_encoded_length(max_payload_length + CHECKSUM_LENGTH)
        if len(text) > limit:
            raise ValueError(f"base58check text is {len(text)} characters, longer than the {limit} allowed")
    raw = b58decode(text)
    if len(raw) < CHECKSUM_LENGTH:
        raise ValueError(f"base58check data is {len(raw)} bytes, shorter than its {CHECKSUM_LENGTH}-byte checksum")
    payload, check = raw[:-CHECKSUM_LENGTH], raw[-CHECKSUM_LENGTH:]
    if checksum(payload) != check:
        raise ValueError("base58check checksum mismatch")
    return payload
