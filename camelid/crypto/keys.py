"""secp256k1 keys, ECDSA and ECDH, backed by libsecp256k1 through coincurve.

Signatures are strict DER with low S: libsecp256k1 only ever produces low-S
signatures (nonces by RFC 6979, so signing is deterministic) and its verifier
rejects high-S ones, which removes the malleability Bitcoin needed BIP 62/146
to tame. Signing takes the 32-byte digest itself; what is hashed is the
caller's business (the transaction sighash, a job commitment).
"""

from __future__ import annotations

from typing import NamedTuple

import coincurve

from camelid.crypto.address import NETWORKS, hash160_to_address, network_prefixes
from camelid.crypto.base58check import b58check_decode, b58check_encode
from camelid.crypto.hashes import hash160

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
SECRET_LENGTH = 32
DIGEST_LENGTH = 32
_WIF_COMPRESSED_FLAG = 0x01
_PUBKEY_FORMS = {33: (0x02, 0x03), 65: (0x04,)}


class PublicKey:
    """A point on secp256k1; serialises compressed (33 bytes) unless asked otherwise."""

    __slots__ = ("_point",)

    def __init__(self, point: coincurve.PublicKey) -> None:
        self._point = point

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Parse SEC1 bytes: 33 compressed (02/03) or 65 uncompressed (04); hybrid forms are refused."""
        if not isinstance(data, bytes | bytearray):
            raise ValueError(f"public key must be bytes, not {type(data).__name__}")
        prefixes = _PUBKEY_FORMS.get(len(data))
        if prefixes is None:
            raise ValueError(f"public key must be 33 or 65 bytes, got {len(data)}")
        if data[0] not in prefixes:
            raise ValueError(f"public key of {len(data)} bytes cannot start with 0x{data[0]:02x}")
        try:
            return cls(coincurve.PublicKey(bytes(data)))
        except ValueError:
            raise ValueError("public key is not a point on secp256k1") from None

    def to_bytes(self, compressed: bool = True) -> bytes:
        """SEC1 encoding."""
        return self._point.format(compressed=compressed)

    def verify(self, signature: bytes, digest: bytes) -> bool:
        """True if `signature` (strict DER, low S) signs `digest`; False for any malformed signature."""
        digest = _checked_digest(digest)
        if not isinstance(signature, bytes | bytearray):
            return False
        try:
            return self._point.verify(bytes(signature), digest, hasher=None)
        except ValueError:
            return False

    def multiply(self, scalar: int) -> PublicKey:
        """scalar * self, for a scalar in [1, n-1] (the order is prime, so never infinity)."""
        if not 0 < scalar < SECP256K1_ORDER:
            raise ValueError("scalar must be in [1, n-1] for the secp256k1 order n")
        return PublicKey(self._point.multiply(scalar.to_bytes(SECRET_LENGTH, "big")))

    def add(self, other: PublicKey) -> PublicKey | None:
        """self + other, or None when the sum is the point at infinity (which has no SEC1 encoding)."""
        try:
            return PublicKey(coincurve.PublicKey.combine_keys([self._point, other._point]))
        except ValueError:  # libsecp256k1 refuses a sum at infinity
            return None

    def hash160(self, compressed: bool = True) -> bytes:
        """HASH160 of the SEC1 encoding: the 20 bytes an address commits to."""
        return hash160(self.to_bytes(compressed))

    def address(self, network: str = "mainnet", compressed: bool = True) -> str:
        """P2PKH address of this key on `network`."""
        return hash160_to_address(self.hash160(compressed), network)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and self.to_bytes() == other.to_bytes()

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def __repr__(self) -> str:
        return f"PublicKey({self.to_bytes().hex()})"


class PrivateKey:
    """A secp256k1 secret with the WIF flags it was created or imported with.

    `compressed` and `network` only matter for WIF export; they default to the
    flags the key arrived with so that from_wif(w).to_wif() == w.
    """

    __slots__ = ("_secret", "compressed", "network")

    def __init__(self, secret: coincurve.PrivateKey, compressed: bool = True, network: str = "mainnet") -> None:
        network_prefixes(network)  # ValueError for an unknown network
        self._secret = secret
        self.compressed = compressed
        self.network = network

    @classmethod
    def generate(cls, *, compressed: bool = True, network: str = "mainnet") -> PrivateKey:
        """A fresh key from the OS random source."""
        return cls(coincurve.PrivateKey(), compressed, network)

    @classmethod
    def from_bytes(cls, secret: bytes, *, compressed: bool = True, network: str = "mainnet") -> PrivateKey:
        """Key from a 32-byte big-endian scalar in [1, n-1]."""
        if not isinstance(secret, bytes | bytearray):
            raise ValueError(f"private key must be bytes, not {type(secret).__name__}")
        if len(secret) != SECRET_LENGTH:
            raise ValueError(f"private key must be {SECRET_LENGTH} bytes, got {len(secret)}")
        if not 0 < int.from_bytes(secret, "big") < SECP256K1_ORDER:
            raise ValueError("private key must be in [1, n-1] for the secp256k1 order n")
        return cls(coincurve.PrivateKey(bytes(secret)), compressed, network)

    @classmethod
    def from_wif(cls, wif: str, network: str | None = None) -> PrivateKey:
        """Import a WIF key, compressed or not; the network is checked if given, else inferred."""
        decoded = decode_wif(wif, network)
        return cls.from_bytes(decoded.secret, compressed=decoded.compressed, network=decoded.network)

    def to_wif(self, compressed: bool | None = None, network: str | None = None) -> str:
        """WIF export; flags left as None take the key's own."""
        return encode_wif(
            self.secret,
            self.compressed if compressed is None else compressed,
            self.network if network is None else network,
        )

    @property
    def secret(self) -> bytes:
        """The 32-byte scalar."""
        return self._secret.secret

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self._secret.public_key)

    def sign(self, digest: bytes) -> bytes:
        """DER signature of the 32-byte `digest` (deterministic RFC 6979 nonce, low S)."""
        return self._secret.sign(_checked_digest(digest), hasher=None)

    def ecdh(self, public_key: PublicKey) -> bytes:
        """Shared secret with `public_key`: SHA-256 of the compressed shared point (libsecp256k1's ECDH)."""
        return self._secret.ecdh(public_key.to_bytes())

    def ecdh_point(self, public_key: PublicKey) -> PublicKey:
        """The unhashed shared point secret * public_key: what a client reveals (with a DLEQ proof) to open a blob."""
        return public_key.multiply(int.from_bytes(self.secret, "big"))

    def __repr__(self) -> str:
        return f"PrivateKey(public_key={self.public_key.to_bytes().hex()}, network={self.network!r})"


def verify_signature(pubkey: bytes, signature: bytes, digest: bytes) -> bool:
    """PublicKey.from_bytes(pubkey).verify(signature, digest), False where the key does not parse.

    Block validation's hot path, and safe to call from several threads: libsecp256k1
    releases the GIL, so signature checks can run on every core.
    """
    prefixes = _PUBKEY_FORMS.get(len(pubkey))
    if prefixes is None or pubkey[0] not in prefixes:
        return False
    try:
        return coincurve.PublicKey(pubkey).verify(signature, digest, hasher=None)
    except ValueError:
        return False


class DecodedWif(NamedTuple):
    secret: bytes
    compressed: bool
    network: str


def encode_wif(secret: bytes, compressed: bool = True, network: str = "mainnet") -> str:
    """Base58Check(version || secret [|| 0x01]); the trailing 0x01 marks a compressed public key."""
    if len(secret) != SECRET_LENGTH:
        raise ValueError(f"private key must be {SECRET_LENGTH} bytes, got {len(secret)}")
    suffix = bytes([_WIF_COMPRESSED_FLAG]) if compressed else b""
    return b58check_encode(bytes([network_prefixes(network).wif]) + secret + suffix)


def decode_wif(wif: str, network: str | None = None) -> DecodedWif:
    """Split a WIF string; without `network`, the first network in NETWORKS with its version byte."""
    payload = b58check_decode(wif, max_payload_length=1 + SECRET_LENGTH + 1)
    if len(payload) not in (1 + SECRET_LENGTH, 1 + SECRET_LENGTH + 1):
        raise ValueError(f"WIF payload is {len(payload)} bytes, expected 33 or 34")
    compressed = len(payload) == 1 + SECRET_LENGTH + 1
    if compressed and payload[-1] != _WIF_COMPRESSED_FLAG:
        raise ValueError(f"WIF compression flag is 0x{payload[-1]:02x}, expected 0x01")
    version = payload[0]
    if network is not None:
        if network_prefixes(network).wif != version:
            raise ValueError(f"WIF version 0x{version:02x} is not {network}'s")
    else:
        network = next((name for name, prefixes in NETWORKS.items() if prefixes.wif == version), None)
        if network is None:
            raise ValueError(f"WIF version 0x{version:02x} belongs to no known network")
    return DecodedWif(payload[1 : 1 + SECRET_LENGTH], compressed, network)


def _checked_digest(digest: bytes) -> bytes:
    if not isinstance(digest, bytes | bytearray) or len(digest) != DIGEST_LENGTH:
        raise ValueError(f"digest must be {DIGEST_LENGTH} bytes")
    return bytes(digest)
