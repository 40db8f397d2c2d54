"""Encryption at rest: scrypt turns the passphrase into a key that seals a random master key, which seals secrets.

Two layers, as Bitcoin Core's CMasterKey/CCrypter: changing the passphrase re-seals
only the 32-byte master key, never the secrets. AES-256-GCM authenticates as well as
encrypts, so a wrong passphrase is detected (the master key fails its tag) instead
of yielding garbage keys; each sealed blob is bound to what it holds by the
associated data, so blobs cannot be swapped between slots of the file.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import cast

from Crypto.Cipher import AES
from Crypto.Protocol.KDF import scrypt

KEY_LENGTH = 32
SALT_LENGTH = 16
_NONCE_LENGTH = 12
_TAG_LENGTH = 16


@dataclass(frozen=True)
class ScryptParams:
    """Cost parameters stored next to the salt; N=2**15, r=8 takes about 100-200 ms and 32 MiB.

    The bounds keep a damaged or hostile file from asking for more than 1 GiB of memory.
    """

    log2_n: int = 15
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if not (1 <= self.log2_n <= 20 and 1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise ValueError(f"scrypt parameters out of range: log2(N)={self.log2_n} r={self.r} p={self.p}")


class DecryptionError(ValueError):
    """A sealed blob failed authentication: the wrong key, or the file was altered."""


def passphrase_key(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    """The 32-byte key-encryption key for `passphrase`."""
    # scrypt returns a tuple only when asked for several keys (num_keys > 1).
    return cast(bytes, scrypt(passphrase.encode("utf-8"), salt, KEY_LENGTH, N=2**params.log2_n, r=params.r, p=params.p))


def seal(key: bytes, plaintext: bytes, purpose: bytes) -> bytes:
    """nonce || ciphertext || tag, with `purpose` authenticated as associated data."""
    nonce = secrets.token_bytes(_NONCE_LENGTH)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG_LENGTH)
    cipher.update(purpose)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return nonce + ciphertext + tag


def unseal(key: bytes, blob: bytes, purpose: bytes) -> bytes:
    """The plaintext of `seal`; DecryptionError if the key, the purpose or the blob is wrong."""
    if len(blob) < _NONCE_LENGTH + _TAG_LENGTH:
        raise DecryptionError(f"sealed blob of {len(blob)} bytes is too short")
    nonce, ciphertext, tag = blob[:_NONCE_LENGTH], blob[_NONCE_LENGTH:-_TAG_LENGTH], blob[-_TAG_LENGTH:]
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG_LENGTH)
    cipher.update(purpose)
    try:
        return cipher.decrypt_and_verify(ciphertext, tag)
    except ValueError:
        raise DecryptionError("authentication failed") from None


def new_salt() -> bytes:
    return secrets.token_bytes(SALT_LENGTH)


def new_master_key() -> bytes:
    return secrets.token_bytes(KEY_LENGTH)
