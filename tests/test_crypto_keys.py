"""secp256k1 keys, cross-checked against the pure-Python `ecdsa` package."""

from __future__ import annotations

import hashlib
import sys
import threading
import time

import pytest
from ecdsa import SECP256k1, SigningKey, VerifyingKey
from ecdsa.keys import BadSignatureError
from ecdsa.util import sigdecode_der, sigencode_der, sigencode_der_canonize
from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.crypto.keys import SECP256K1_ORDER, PrivateKey, PublicKey, encode_wif, verify_signature

secrets = st.integers(1, SECP256K1_ORDER - 1).map(lambda n: n.to_bytes(32, "big"))
digests = st.binary(min_size=32, max_size=32)


def _ecdsa_pair(secret: bytes) -> tuple[SigningKey, VerifyingKey]:
    signing = SigningKey.from_string(secret, curve=SECP256k1)
    return signing, signing.get_verifying_key()


def test_secret_one_is_the_generator_with_its_known_addresses() -> None:
    public = PrivateKey.from_bytes((1).to_bytes(32, "big")).public_key
    assert public.to_bytes().hex() == "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
    assert public.address() == "1BgGZ9tcN4rm9KBzDn7KprQz87SZ26SAMH"
    assert public.address(compressed=False) == "1EHNa6Q4Jz2uvNExL497mE43ikXhwF6kZm"


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        (bytes(32), r"\[1, n-1\]"),
        (SECP256K1_ORDER.to_bytes(32, "big"), r"\[1, n-1\]"),
        ((2**256 - 1).to_bytes(32, "big"), r"\[1, n-1\]"),
        (bytes(31) + b"\x01", None),
        (b"\x01" * 33, "must be 32 bytes, got 33"),
        ("00" * 32, "must be bytes, not str"),
    ],
)
def test_private_key_range_and_length(secret: bytes, problem: str | None) -> None:
    if problem is None:
        assert PrivateKey.from_bytes(secret).secret == secret
    else:
        with pytest.raises(ValueError, match=problem):
            PrivateKey.from_bytes(secret)


def test_largest_secret_is_accepted() -> None:
    secret = (SECP256K1_ORDER - 1).to_bytes(32, "big")
    assert PrivateKey.from_bytes(secret).secret == secret


def test_public_key_parsing_refuses_bad_input() -> None:
    generator = PrivateKey.from_bytes((1).to_bytes(32, "big")).public_key
    uncompressed = generator.to_bytes(compressed=False)
    assert PublicKey.from_bytes(uncompressed) == generator
    with pytest.raises(ValueError, match="cannot start with 0x06"):
        PublicKey.from_bytes(b"\x06" + uncompressed[1:])
    with pytest.raises(ValueError, match="must be 33 or 65 bytes, got 32"):
        PublicKey.from_bytes(generator.to_bytes()[1:])
    with pytest.raises(ValueError, match="not a point on secp256k1"):
        PublicKey.from_bytes(b"\x02" + (5).to_bytes(32, "big"))  # x = 5 has no y on the curve
    with pytest.raises(ValueError, match="not a point on secp256k1"):
        PublicKey.from_bytes(uncompressed[:-1] + bytes([uncompressed[-1] ^ 1]))


@settings(max_examples=50)
@given(secrets, digests)
def test_signature_is_rfc6979_low_s_and_matches_ecdsa_byte_for_byte(secret: bytes, digest: bytes) -> None:
    key = PrivateKey.from_bytes(secret)
    signing, verifying = _ecdsa_pair(secret)
    signature = key.sign(digest)
    assert key.public_key.verify(signature, digest)
    assert verifying.verify_digest(signature, digest, sigdecode=sigdecode_der)
    expected = signing.sign_digest_deterministic(digest, hashfunc=hashlib.sha256, sigencode=sigencode_der_canonize)
    assert signature == expected


@settings(max_examples=50)
@given(secrets, digests)
def test_ecdsa_signatures_verify_and_high_s_is_refused(secret: bytes, digest: bytes) -> None:
    signing, _ = _ecdsa_pair(secret)
    public = PublicKey.from_bytes(signing.get_verifying_key().to_string("compressed"))
    low_s = signing.sign_digest(digest, sigencode=sigencode_der_canonize)
    assert public.verify(low_s, digest)
    r, s = sigdecode_der(low_s, SECP256K1_ORDER)
    high_s = sigencode_der(r, SECP256K1_ORDER - s, SECP256K1_ORDER)
    assert signing.get_verifying_key().verify_digest(high_s, digest, sigdecode=sigdecode_der)
    assert not public.verify(high_s, digest)


def test_wrong_digest_key_or_trailing_bytes_fail_verification() -> None:
    key = PrivateKey.generate()
    digest = hashlib.sha256(b"job commitment").digest()
    signature = key.sign(digest)
    assert not key.public_key.verify(signature, hashlib.sha256(b"other").digest())
    assert not PrivateKey.generate().public_key.verify(signature, digest)
    assert not key.public_key.verify(signature + b"\x01", digest)
    with pytest.raises(BadSignatureError):
        _ecdsa_pair(key.secret)[1].verify_digest(signature, hashlib.sha256(b"other").digest(), sigdecode=sigdecode_der)


@given(st.binary(max_size=80), digests)
def test_malformed_signatures_return_false(signature: bytes, digest: bytes) -> None:
    assert PrivateKey.from_bytes(b"\x07" * 32).public_key.verify(signature, digest) is False


def test_digest_must_be_32_bytes() -> None:
    key = PrivateKey.generate()
    with pytest.raises(ValueError, match="digest must be 32 bytes"):
        key.sign(b"not hashed")
    with pytest.raises(ValueError, match="digest must be 32 bytes"):
        key.public_key.verify(key.sign(bytes(32)), bytes(31))


@settings(max_examples=30)
@given(secrets, secrets)
def test_ecdh_is_symmetric_and_matches_ecdsa_point_multiplication(ours: bytes, theirs: bytes) -> None:
    mine, other = PrivateKey.from_bytes(ours), PrivateKey.from_bytes(theirs)
    shared = mine.ecdh(other.public_key)
    assert shared == other.ecdh(mine.public_key)
    point = _ecdsa_pair(theirs)[1].pubkey.point * int.from_bytes(ours, "big")
    compressed = bytes([2 + (point.y() & 1)]) + point.x().to_bytes(32, "big")
    assert shared == hashlib.sha256(compressed).digest()


@given(secrets, st.booleans(), st.sampled_from(["mainnet", "testnet", "regtest"]))
def test_wif_round_trip_keeps_flags(secret: bytes, compressed: bool, network: str) -> None:
    wif = PrivateKey.from_bytes(secret).to_wif(compressed=compressed, network=network)
    key = PrivateKey.from_wif(wif, network)
    assert (key.secret, key.compressed, key.network) == (secret, compressed, network)
    assert key.to_wif() == wif


def test_uncompressed_wif_key_remembers_its_flag() -> None:
    key = PrivateKey.from_wif("5HsL2nZuEebU5nM3RxNVQD9GcAnvNMahqQskf4fkqHe54zwd14e")
    assert (key.compressed, key.network) == (False, "mainnet")
    assert key.to_wif(compressed=True).startswith(("K", "L"))


def test_wif_with_out_of_range_secret_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[1, n-1\]"):
        PrivateKey.from_wif(encode_wif(bytes(32)))


def test_repr_hides_the_secret_and_unknown_network_is_refused() -> None:
    key = PrivateKey.from_bytes(b"\x42" * 32)
    assert "42" * 32 not in repr(key)
    with pytest.raises(ValueError, match="unknown network"):
        PrivateKey.from_bytes(b"\x42" * 32, network="main")


def test_verify_signature_agrees_with_public_key_verify() -> None:
    key = PrivateKey.from_bytes(bytes(31) + b"\x05")
    digest = hashlib.sha256(b"checkqueue").digest()
    der = key.sign(digest)
    for pubkey in (key.public_key.to_bytes(), key.public_key.to_bytes(compressed=False)):
        assert verify_signature(pubkey, der, digest) and PublicKey.from_bytes(pubkey).verify(der, digest)
        assert not verify_signature(pubkey, der, bytes(32))
        assert not verify_signature(pubkey, der[:-1], digest)  # not DER
    hybrid = b"\x06" + key.public_key.to_bytes(compressed=False)[1:]  # libsecp256k1 would parse it
    assert not verify_signature(hybrid, der, digest) and not verify_signature(hybrid[:-1] + b"\x07", der, digest)
    assert not verify_signature(b"\x02" + bytes(31) + b"\x05", der, digest)  # not on the curve
    assert not verify_signature(b"", der, digest)


def test_verify_signature_releases_the_gil() -> None:
    """Block validation checks signatures on several threads only because this holds. With forced GIL
    switching off, a thread runs only when the holder gives the GIL up in a C call: of two verifying
    threads, the second advances while the first runs, where of two threads of GIL-holding work (small
    sha256) the second starts only once the first is done."""
    key = PrivateKey.from_bytes(bytes(31) + b"\x09")
    checks = [(key.public_key.to_bytes(), key.sign(digest), digest) for digest in (bytes([n]) * 32 for n in range(200))]
    progress = {"a": 0, "b": 0}
    other_at_finish: list[int] = []

    def verify(name: str, other: str) -> None:
        # Until the other thread has advanced (or 10 s): on a loaded machine the OS may not run it at once.
        deadline = time.monotonic() + 10
        while True:
            for check in checks:
                assert verify_signature(*check)
                progress[name] += 1
            if progress[other] or time.monotonic() > deadline:
                break
        other_at_finish.append(progress[other])

    def hash_small(name: str, other: str) -> None:
        for pubkey, _, _ in checks:
            hashlib.sha256(pubkey).digest()
            progress[name] += 1
        other_at_finish.append(progress[other])

    def race(work) -> int:
        progress.update(a=0, b=0)
        other_at_finish.clear()
        threads = [threading.Thread(target=work, args=pair) for pair in (("a", "b"), ("b", "a"))]
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1_000.0)
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            sys.setswitchinterval(interval)
        return other_at_finish[0]  # how far the other thread got when the first finished

    assert race(verify) > 0
    assert race(hash_small) == 0
