"""Chaum-Pedersen proof of discrete-log equality on secp256k1 (non-interactive, Fiat-Shamir).

Why: a client that received a bad delivery must show everyone what the delivery
decrypts to without giving away its job key. It reveals the ECDH point S = c*N
(c its secret, N the delivery's ephemeral key) and proves log_G(C) = log_N(S)
for its public key C = c*G. Anyone can then open that one delivery (see
camelid.crypto.ecies.open_revealed), and learns nothing about c.

Proof of x with X = x*G and Y = x*H (here X = C, H = N, Y = S):

    k  = nonce(x, X, H, Y)                         deterministic, as RFC 6979 / BIP 340
    R1 = k*G,  R2 = k*H
    e  = int(tagged("camelid/dleq/challenge", G || X || H || Y || R1 || R2)) mod n
    s  = k + e*x mod n
    proof = e || s                                  64 bytes, big-endian scalars

Verification recomputes R1 = s*G - e*X and R2 = s*H - e*Y and checks e. Points
are 33-byte compressed SEC1 everywhere (the one canonical form); scalars must
lie in [1, n-1]; a recomputed R at infinity fails the proof.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from camelid.crypto.keys import SECP256K1_ORDER, PrivateKey, PublicKey

SCALAR_LENGTH = 32
PROOF_LENGTH = 2 * SCALAR_LENGTH
POINT_LENGTH = 33
_NONCE_TAG = b"camelid/dleq/nonce"
_CHALLENGE_TAG = b"camelid/dleq/challenge"
GENERATOR = PrivateKey.from_bytes((1).to_bytes(SCALAR_LENGTH, "big")).public_key


def _tagged_hash(tag: bytes, *parts: bytes) -> bytes:
    """BIP 340's tagged hash: SHA-256(SHA-256(tag) || SHA-256(tag) || data), so no other protocol's hash collides."""
    tag_hash = hashlib.sha256(tag).digest()
    return hashlib.sha256(tag_hash + tag_hash + b"".join(parts)).digest()


def _scalar_bytes(value: int) -> bytes:
    return value.to_bytes(SCALAR_LENGTH, "big")


def _combination(s: int, base: PublicKey, e: int, point: PublicKey) -> PublicKey | None:
    """s*base - e*point, or None when that is the point at infinity."""
    return base.multiply(s).add(point.multiply(SECP256K1_ORDER - e))


def _challenge(public: PublicKey, base: PublicKey, result: PublicKey, r1: PublicKey, r2: PublicKey) -> int:
    points = (GENERATOR, public, base, result, r1, r2)
    return int.from_bytes(_tagged_hash(_CHALLENGE_TAG, *(p.to_bytes() for p in points)), "big") % SECP256K1_ORDER


@dataclass(frozen=True)
class DleqProof:
    """The challenge e and response s of a proof; both in [1, n-1]."""

    e: int
    s: int

    def __post_init__(self) -> None:
        for name, value in (("e", self.e), ("s", self.s)):
            if not 0 < value < SECP256K1_ORDER:
                raise ValueError(f"DLEQ proof scalar {name} must be in [1, n-1]")

    def to_bytes(self) -> bytes:
        return _scalar_bytes(self.e) + _scalar_bytes(self.s)

    @classmethod
    def from_bytes(cls, data: bytes) -> DleqProof:
        """Parse e || s; ValueError for a wrong length or a scalar outside [1, n-1] (non-canonical)."""
        if not isinstance(data, bytes | bytearray) or len(data) != PROOF_LENGTH:
            raise ValueError(f"DLEQ proof must be {PROOF_LENGTH} bytes")
        return cls(int.from_bytes(data[:SCALAR_LENGTH], "big"), int.from_bytes(data[SCALAR_LENGTH:], "big"))


def parse_point(data: bytes) -> PublicKey:
    """A 33-byte compressed point on secp256k1; ValueError for any other encoding (which includes infinity)."""
    if not isinstance(data, bytes | bytearray) or len(data) != POINT_LENGTH:
        raise ValueError(f"point must be {POINT_LENGTH} bytes compressed")
    return PublicKey.from_bytes(data)


def prove_dleq(secret: PrivateKey, base: PublicKey) -> tuple[PublicKey, DleqProof]:
    """(Y, proof) with Y = secret*base and a proof that log_G(secret*G) = log_base(Y)."""
    x = int.from_bytes(secret.secret, "big")
    public = secret.public_key
    result = base.multiply(x)
    transcript = b"".join(p.to_bytes() for p in (public, base, result))
    for counter in range(256):  # another nonce only if k, e or s is 0: probability about 2**-254 each
        k = int.from_bytes(_tagged_hash(_NONCE_TAG, secret.secret, transcript, bytes([counter])), "big")
        k %= SECP256K1_ORDER
        if k == 0:
            continue
        e = _challenge(public, base, result, GENERATOR.multiply(k), base.multiply(k))
        s = (k + e * x) % SECP256K1_ORDER
        if e and s:
            return result, DleqProof(e, s)
    raise AssertionError("no usable DLEQ nonce in 256 tries")  # unreachable unless SHA-256 is broken


def verify_dleq(public: PublicKey, base: PublicKey, result: PublicKey, proof: DleqProof) -> bool:
    """Whether `proof` shows log_G(public) = log_base(result)."""
    r1 = _combination(proof.s, GENERATOR, proof.e, public)
    r2 = _combination(proof.s, base, proof.e, result)
    if r1 is None or r2 is None:
        return False
    return _challenge(public, base, result, r1, r2) == proof.e
