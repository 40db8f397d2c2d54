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

Opening without the private key: the recipient may publish the shared point
S = c*E of one blob with a DLEQ proof (SharedPointReveal, camelid.crypto.dleq)
so that anyone can open that blob -- how a client proves a delivery is garbage.
Encryption, decryption and opening from a reveal share one key schedule (_cipher).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from camelid.crypto.dleq import POINT_LENGTH, PROOF_LENGTH, DleqProof, parse_point, prove_dleq, verify_dleq
from camelid.crypto.hashes import sha256
from camelid.crypto.keys import PrivateKey, PublicKey

VERSION = 0x01
EPHEMERAL_KEY_LENGTH = 33
NONCE_LENGTH = 12
TAG_LENGTH = 16
HEADER_LENGTH = 1 + EPHEMERAL_KEY_LENGTH + NONCE_LENGTH
OVERHEAD = HEADER_LENGTH + TAG_LENGTH
REVEAL_LENGTH = POINT_LENGTH + PROOF_LENGTH
_KDF_INFO = b"camelid-ecies-v1"


class DecryptionError(ValueError):
    """The blob is malformed, was altered, or was not encrypted to this key and aad."""


@dataclass(frozen=True)
class SharedPointReveal:
    """A recipient's shared point S = c*E for one blob, with the DLEQ proof that it is c*E for c behind C.

    97 bytes on the wire: S (33, compressed) || proof (64). Publishing it lets anyone open that one blob
    (open_revealed) and nothing else: other blobs have other ephemeral keys, and c stays secret.
    """

    point: PublicKey
    proof: DleqProof

    def to_bytes(self) -> bytes:
        return self.point.to_bytes() + self.proof.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> SharedPointReveal:
        """Parse S || proof; ValueError naming the defect."""
        if not isinstance(data, bytes | bytearray) or len(data) != REVEAL_LENGTH:
            raise ValueError(f"shared-point reveal must be {REVEAL_LENGTH} bytes")
        return cls(parse_point(data[:POINT_LENGTH]), DleqProof.from_bytes(data[POINT_LENGTH:]))


@dataclass(frozen=True)
class _Parsed:
    header: bytes
    ephemeral: PublicKey
    nonce: bytes
    ciphertext: bytes
    tag: bytes


def encrypt(recipient: PublicKey, plaintext: bytes, aad: bytes = b"") -> bytes:
    """Blob that only `recipient`'s private key can open, authenticating `aad` too."""
    ephemeral = PrivateKey.generate()
    nonce = os.urandom(NONCE_LENGTH)
    header = bytes([VERSION]) + ephemeral.public_key.to_bytes() + nonce
    cipher = _cipher(ephemeral.ecdh_point(recipient), ephemeral.public_key, recipient, nonce, header + aad)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    return header + ciphertext + tag


def decrypt(recipient: PrivateKey, blob: bytes, aad: bytes = b"") -> bytes:
    """Plaintext of `blob`; DecryptionError if it is truncated, altered, or for another key or aad."""
    parsed = _parse(blob)
    return _open(parsed, recipient.ecdh_point(parsed.ephemeral), recipient.public_key, aad)


def ephemeral_key(blob: bytes) -> PublicKey:
    """The sender's ephemeral key E of `blob`: the base a recipient's reveal is proven against."""
    return _parse(blob).ephemeral


def reveal_shared_point(recipient: PrivateKey, blob: bytes) -> SharedPointReveal:
    """What a recipient publishes so that anyone can open `blob`: S = c*E and its DLEQ proof."""
    point, proof = prove_dleq(recipient, ephemeral_key(blob))
    return SharedPointReveal(point, proof)


def open_revealed(reveal: SharedPointReveal, recipient: PublicKey, blob: bytes, aad: bytes = b"") -> bytes:
    """Plaintext of `blob` from a recipient's reveal, for anyone holding only public data.

    DecryptionError if the proof does not show the point is the one `recipient`'s key makes with this
    blob's ephemeral key, or if the blob does not open with it (the sender sealed garbage).
    """
    if not reveal_holds(reveal, recipient, blob):
        raise DecryptionError("shared-point reveal has no valid DLEQ proof for this recipient and blob")
    return open_with_point(reveal.point, recipient, blob, aad)


def reveal_holds(reveal: SharedPointReveal, recipient: PublicKey, blob: bytes) -> bool:
    """Whether the reveal's DLEQ proof shows its point is `recipient`'s key times this blob's ephemeral key.

    DecryptionError for a blob too malformed to have an ephemeral key.
    """
    return verify_dleq(recipient, _parse(blob).ephemeral, reveal.point, reveal.proof)


def open_with_point(shared: PublicKey, recipient: PublicKey, blob: bytes, aad: bytes = b"") -> bytes:
    """Plaintext of `blob` under the shared point `shared` (checked with reveal_holds first); DecryptionError
    if it does not open."""
    return _open(_parse(blob), shared, recipient, aad)


def _parse(blob: bytes) -> _Parsed:
    if not isinstance(blob, bytes | bytearray):
        raise DecryptionError(f"ECIES blob must be bytes, not {type(blob).__name__}")
    if len(blob) < OVERHEAD:
        raise DecryptionError(f"ECIES blob is {len(blob)} bytes, shorter than the {OVERHEAD}-byte minimum")
    if blob[0] != VERSION:
        raise DecryptionError(f"unknown ECIES version 0x{blob[0]:02x}")
    header = bytes(blob[:HEADER_LENGTH])
    try:
        ephemeral = PublicKey.from_bytes(header[1 : 1 + EPHEMERAL_KEY_LENGTH])
    except ValueError as exc:
        raise DecryptionError(f"ECIES ephemeral key is invalid: {exc}") from None
    nonce = header[1 + EPHEMERAL_KEY_LENGTH :]
    return _Parsed(header, ephemeral, nonce, bytes(blob[HEADER_LENGTH:-TAG_LENGTH]), bytes(blob[-TAG_LENGTH:]))


def _open(parsed: _Parsed, shared: PublicKey, recipient: PublicKey, aad: bytes) -> bytes:
    cipher = _cipher(shared, parsed.ephemeral, recipient, parsed.nonce, parsed.header + aad)
    try:
        return cipher.decrypt_and_verify(parsed.ciphertext, parsed.tag)
    except ValueError:
        raise DecryptionError("ECIES authentication failed: blob altered, or wrong key or aad") from None


def _cipher(shared: PublicKey, ephemeral: PublicKey, recipient: PublicKey, nonce: bytes, authenticated: bytes) -> Any:
    """The one key schedule every path uses: AES-256-GCM keyed by HKDF(SHA-256(compressed S), salt E || P)."""
    key = HKDF(sha256(shared.to_bytes()), 32, ephemeral.to_bytes() + recipient.to_bytes(), SHA256, context=_KDF_INFO)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce, mac_len=TAG_LENGTH)
    cipher.update(authenticated)
    return cipher
