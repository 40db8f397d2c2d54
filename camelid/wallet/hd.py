"""BIP32 hierarchical deterministic keys: the master key from a seed, private and public child derivation.

This is BIP32 exactly (HMAC-SHA512 keyed "Bitcoin seed", ser32/ser256/serP), so the
BIP32 test vectors hold and the seed can be checked with any BIP32 tool. Public
derivation is what lets a locked wallet hand out new addresses: it needs only the
chain's public key and chain code, never a private key.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import coincurve

from camelid.crypto.keys import SECP256K1_ORDER, PrivateKey

HARDENED = 0x8000_0000
CHAIN_CODE_LENGTH = 32
MIN_SEED_LENGTH, MAX_SEED_LENGTH = 16, 64
_MASTER_HMAC_KEY = b"Bitcoin seed"


@dataclass(frozen=True)
class ExtendedPrivateKey:
    secret: bytes
    chain_code: bytes

    def public(self) -> ExtendedPublicKey:
        return ExtendedPublicKey(self.private_key().public_key.to_bytes(), self.chain_code)

    def private_key(self) -> PrivateKey:
        return PrivateKey.from_bytes(self.secret)

    def child(self, index: int) -> ExtendedPrivateKey:
        """CKDpriv: hardened indices (>= 2**31) hash the private key, others the public key."""
        _check_index(index)
        data = b"\x00" + self.secret if index >= HARDENED else self.private_key().public_key.to_bytes()
        tweak, chain_code = _split(self.chain_code, data + index.to_bytes(4, "big"))
        secret = (int.from_bytes(tweak, "big") + int.from_bytes(self.secret, "big")) % SECP256K1_ORDER
        if secret == 0:
            raise ValueError(f"BIP32 child {index} is invalid (zero key); use the next index")
        return ExtendedPrivateKey(secret.to_bytes(32, "big"), chain_code)

    def derive(self, path: tuple[int, ...]) -> ExtendedPrivateKey:
        key = self
        for index in path:
            key = key.child(index)
        return key


@dataclass(frozen=True)
class ExtendedPublicKey:
    public_key: bytes  # 33-byte compressed
    chain_code: bytes

    def child(self, index: int) -> ExtendedPublicKey:
        """CKDpub: only non-hardened children can be derived without the private key."""
        _check_index(index)
        if index >= HARDENED:
            raise ValueError(f"hardened child {index - HARDENED}' needs the private key")
        tweak, chain_code = _split(self.chain_code, self.public_key + index.to_bytes(4, "big"))
        # tweak*G + parent; coincurve raises ValueError for the point at infinity.
        child_point = coincurve.PublicKey(self.public_key).add(tweak)
        return ExtendedPublicKey(child_point.format(compressed=True), chain_code)


def master_key(seed: bytes) -> ExtendedPrivateKey:
    """BIP32 master key of a 16..64-byte seed."""
    if not MIN_SEED_LENGTH <= len(seed) <= MAX_SEED_LENGTH:
        raise ValueError(f"BIP32 seed must be {MIN_SEED_LENGTH}..{MAX_SEED_LENGTH} bytes, got {len(seed)}")
    secret, chain_code = _split(_MASTER_HMAC_KEY, seed)
    PrivateKey.from_bytes(secret)  # ValueError for the (astronomically unlikely) invalid master key
    return ExtendedPrivateKey(secret, chain_code)


def _split(key: bytes, data: bytes) -> tuple[bytes, bytes]:
    digest = hmac.new(key, data, hashlib.sha512).digest()
    left, right = digest[:32], digest[32:]
    if int.from_bytes(left, "big") >= SECP256K1_ORDER:
        raise ValueError("BIP32 tweak is not below the curve order; use the next index")
    return left, right


def _check_index(index: int) -> None:
    if not 0 <= index < 2**32:
        raise ValueError(f"BIP32 child index must be in [0, 2**32), got {index}")
