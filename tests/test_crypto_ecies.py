"""ECIES: round trips, tamper detection, and the blob layout the module docstring documents."""

from __future__ import annotations

import hashlib

import pytest
from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF
from ecdsa import SECP256k1, VerifyingKey
from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.crypto.ecies import OVERHEAD, DecryptionError, decrypt, encrypt
from camelid.crypto.keys import PrivateKey

RECIPIENT = PrivateKey.from_bytes(hashlib.sha256(b"client").digest())
plaintexts = st.binary(max_size=300)
aads = st.binary(max_size=40)


@settings(max_examples=50)
@given(plaintexts, aads)
def test_round_trip(plaintext: bytes, aad: bytes) -> None:
    blob = encrypt(RECIPIENT.public_key, plaintext, aad)
    assert len(blob) == len(plaintext) + OVERHEAD
    assert decrypt(RECIPIENT, blob, aad) == plaintext


@settings(max_examples=50)
@given(plaintexts, aads, st.data())
def test_any_flipped_bit_is_detected(plaintext: bytes, aad: bytes, data: st.DataObject) -> None:
    blob = bytearray(encrypt(RECIPIENT.public_key, plaintext, aad))
    position = data.draw(st.integers(0, len(blob) - 1))
    blob[position] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecryptionError):
        decrypt(RECIPIENT, bytes(blob), aad)


@settings(max_examples=50)
@given(plaintexts, st.data())
def test_truncation_is_detected(plaintext: bytes, data: st.DataObject) -> None:
    blob = encrypt(RECIPIENT.public_key, plaintext)
    cut = data.draw(st.integers(0, len(blob) - 1))
    with pytest.raises(DecryptionError):
        decrypt(RECIPIENT, blob[:cut])


def test_wrong_key_or_aad_is_refused_with_a_clear_message() -> None:
    blob = encrypt(RECIPIENT.public_key, b"completion text", b"job-1")
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt(PrivateKey.generate(), blob, b"job-1")
    with pytest.raises(DecryptionError, match="authentication failed"):
        decrypt(RECIPIENT, blob, b"job-2")


def test_malformed_headers_are_named() -> None:
    blob = encrypt(RECIPIENT.public_key, b"x")
    with pytest.raises(DecryptionError, match="shorter than the 62-byte minimum"):
        decrypt(RECIPIENT, blob[:61])
    with pytest.raises(DecryptionError, match="unknown ECIES version 0x02"):
        decrypt(RECIPIENT, b"\x02" + blob[1:])
    with pytest.raises(DecryptionError, match="ephemeral key is invalid"):
        decrypt(RECIPIENT, blob[:1] + b"\x05" + blob[2:])
    with pytest.raises(DecryptionError, match="must be bytes"):
        decrypt(RECIPIENT, "not bytes")  # type: ignore[arg-type]
    assert issubclass(DecryptionError, ValueError)


def test_each_encryption_uses_a_fresh_ephemeral_key_and_nonce() -> None:
    first, second = (encrypt(RECIPIENT.public_key, b"same") for _ in range(2))
    assert first[1:34] != second[1:34]
    assert first[34:46] != second[34:46]


def test_blob_follows_the_documented_layout() -> None:
    """Open a blob with an independent ECDH (ecdsa) and the documented key schedule."""
    plaintext, aad = b"the answer is 42", b"job-7"
    blob = encrypt(RECIPIENT.public_key, plaintext, aad)
    version, ephemeral, nonce = blob[0], blob[1:34], blob[34:46]
    ciphertext, tag = blob[46:-16], blob[-16:]
    assert version == 0x01
    point = VerifyingKey.from_string(ephemeral, curve=SECP256k1).pubkey.point * int.from_bytes(RECIPIENT.secret, "big")
    shared = hashlib.sha256(bytes([2 + (point.y() & 1)]) + point.x().to_bytes(32, "big")).digest()
    salt = ephemeral + RECIPIENT.public_key.to_bytes()
    key = HKDF(shared, 32, salt, SHA256, context=b"camelid-ecies-v1")
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=16)
    cipher.update(blob[:46] + aad)
    assert cipher.decrypt_and_verify(ciphertext, tag) == plaintext
