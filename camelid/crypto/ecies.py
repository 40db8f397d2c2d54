"""ECIES on secp256k1: how a compute node encrypts a job's output to the client (whitepaper 2.4).

Blob layout, version 1 (offsets in bytes, n = plaintext length):

    0        1   version, 0x01
    1       33   ephemeral public key E, compressed SEC1
    34      12   AES-GCM nonce
    46       n   ciphertext
    46+n    16   GCM tag

Key schedule: shared = SHA-256(compressed(e * P)) (libsecp256k1's ECDH, e the
ephemeral secret, P the recipient's key); key = HKDF-SHA256(ikm=shared,
salt=E || P compressed, info="camelid-ecies-v1", 32 bytes). Salting with both
public keys binds the key to this exact sender/recipient pair. AES-256-GCM
authenticates blob[0:46] || aad, so the header and the caller's context (a
job id, say) are covered by the tag as well as the ciphertext.

Every message has a fresh ephemeral key and so a fresh AES key; the random
nonce is therefore never at risk of reuse.
"""

from __future__ import annotations

import os

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from camelid.crypto.keys import PrivateKey, PublicKey

VERSION = 0x01
EPHEMERAL_KEY_LENGTH = 33
NONCE_LENGTH = 12
TAG_LENGTH = 16
HEADER_LENGTH = 1 + EPHEMERAL_KEY_LENGTH + NONCE_LENGTH
OVERHEAD = HEADER_LENGTH + TAG_LENGTH
_KDF_INFO = b"camelid-ecies-v1"


class DecryptionError(ValueError):
    """The blob is malformed, was altered, or was not encrypted to this key and aad."""


def encrypt(recipient: PublicKey, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Blob that only `recipient`'s private key can open, authenticating `aad` too."""
    ephemeral = PrivateKey.generate()
    ephemeral_bytes = ephemeral.public_key.to_bytes()
    key = _derive_key(ephemeral.ecdh(recipient), ephemeral_bytes, recipient)
    nonce = os.urandom(NONCE_LENGTH)
    header = bytes([VERSION]) + ephemeral_bytes + nonce
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_LENGTH)
    cipher.update(header + aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return header + ciphertext + tag


def decrypt(recipient: PrivateKey, blob: bytes, aad: bytes = b"") -> bytes:
    """Plaintext of `blob`; DecryptionError if it is truncated, altered, or for another key or aad."""
    if not isinstance(blob, bytes | bytearray):
        raise DecryptionError(f"ECIES blob must be bytes, not {type(blob).__name__}")
    if len(blob) < OVERHEAD:
        raise DecryptionError(f"ECIES blob is {len(blob)} bytes, shorter than the {OVERHEAD}-byte minimum")
    if blob[0] != VERSION:
        raise DecryptionError(f"unknown ECIES version 0x{blob[0]:02x}")
    header, ciphertext, tag = bytes(blob[:HEADER_LENGTH]), blob[HEADER_LENGTH:-TAG_LENGTH], blob[-TAG_LENGTH:]
    ephemeral_bytes, nonce = header[1 : 1 + EPHEMERAL_KEY_LENGTH], header[1 + EPHEMERAL_KEY_LENGTH :]
    try:
        ephemeral = PublicKey.from_bytes(ephemeral_bytes)
    except ValueError as exc:
        raise DecryptionError(f"ECIES ephemeral key is invalid: {exc}") from None
    key = _derive_key(recipient.ecdh(ephemeral), ephemeral_bytes, recipient.public_key)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_LENGTH)
    cipher.update(header + aad)
    try:
        return cipher.decrypt_and_verify(ciphertext, tag)
    except ValueError:
        raise DecryptionError("ECIES authentication failed: blob altered, or wrong key or aad") from None


def _derive_key(shared: bytes, ephemeral_bytes: bytes, recipient: PublicKey) -> bytes:
    return HKDF(shared, 32, ephemeral_bytes + recipient.to_bytes(), SHA256, context=_KDF_INFO)
