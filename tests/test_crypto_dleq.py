"""DLEQ proofs and opening ECIES blobs from a revealed shared point, cross-checked against pure-Python `ecdsa`."""

from __future__ import annotations

import hashlib

import pytest
from ecdsa import SECP256k1
from ecdsa.ellipticcurve import INFINITY, PointJacobi
from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.crypto import ecies
from camelid.crypto.dleq import GENERATOR, PROOF_LENGTH, DleqProof, parse_point, prove_dleq, verify_dleq
from camelid.crypto.hashes import sha256
from camelid.crypto.keys import SECP256K1_ORDER, PrivateKey, PublicKey

N = SECP256K1_ORDER
CLIENT = PrivateKey.from_bytes(hashlib.sha256(b"client job key").digest())
BASE = PrivateKey.from_bytes(hashlib.sha256(b"ephemeral").digest()).public_key
scalars = st.integers(1, N - 1)


def key(scalar: int) -> PrivateKey:
    return PrivateKey.from_bytes(scalar.to_bytes(32, "big"))


# -- an independent implementation of the group and of the documented proof -----------------------


def ecdsa_point(point: PublicKey) -> PointJacobi:
    return PointJacobi.from_bytes(SECP256k1.curve, point.to_bytes())


def sec1(point: PointJacobi) -> bytes:
    return bytes([2 + (point.y() & 1)]) + point.x().to_bytes(32, "big")


def tagged(tag: bytes, data: bytes) -> bytes:
    tag_hash = hashlib.sha256(tag).digest()
    return hashlib.sha256(tag_hash + tag_hash + data).digest()


def ecdsa_verify(public: PublicKey, base: PublicKey, result: PublicKey, proof: DleqProof) -> bool:
    """The verification equations of camelid.crypto.dleq's docstring, in `ecdsa`'s arithmetic."""
    g = SECP256k1.generator
    x_point, h, y = ecdsa_point(public), ecdsa_point(base), ecdsa_point(result)
    r1 = g * proof.s + x_point * (N - proof.e)
    r2 = h * proof.s + y * (N - proof.e)
    if r1 == INFINITY or r2 == INFINITY:
        return False
    transcript = b"".join(sec1(p) for p in (g, x_point, h, y, r1, r2))
    return int.from_bytes(tagged(b"camelid/dleq/challenge", transcript), "big") % N == proof.e


# -- the group operations the proof is built on ----------------------------------------------------


@settings(max_examples=25)
@given(scalars, scalars, scalars)
def test_point_arithmetic_agrees_with_ecdsa(a: int, b: int, c: int) -> None:
    p, q = key(a).public_key, key(b).public_key
    assert ecdsa_point(p.multiply(c)) == ecdsa_point(p) * c
    total = p.add(q)
    assert total is not None and ecdsa_point(total) == ecdsa_point(p) + ecdsa_point(q)
    assert ecdsa_point(key(a).ecdh_point(q)) == ecdsa_point(q) * a
    assert key(a).ecdh(q) == sha256(key(a).ecdh_point(q).to_bytes())  # libsecp256k1's ECDH hashes this point


def test_a_sum_at_infinity_is_none_and_bad_scalars_are_refused() -> None:
    assert GENERATOR.add(key(N - 1).public_key) is None
    assert GENERATOR.to_bytes() == sec1(SECP256k1.generator)
    for scalar in (0, N, -1):
        with pytest.raises(ValueError, match=r"\[1, n-1\]"):
            GENERATOR.multiply(scalar)


# -- proofs ----------------------------------------------------------------------------------------


@settings(max_examples=25)
@given(scalars, scalars)
def test_proofs_verify_here_and_in_the_independent_implementation(secret: int, base: int) -> None:
    prover, base_point = key(secret), key(base).public_key
    result, proof = prove_dleq(prover, base_point)
    assert ecdsa_point(result) == ecdsa_point(base_point) * secret
    assert verify_dleq(prover.public_key, base_point, result, proof)
    assert ecdsa_verify(prover.public_key, base_point, result, proof)
    assert DleqProof.from_bytes(proof.to_bytes()) == proof
    assert len(proof.to_bytes()) == PROOF_LENGTH


def test_proofs_are_deterministic() -> None:
    assert prove_dleq(CLIENT, BASE) == prove_dleq(CLIENT, BASE)
    assert prove_dleq(CLIENT, BASE)[1] != prove_dleq(CLIENT, GENERATOR.multiply(5))[1]


def test_tampered_proofs_points_and_bases_are_rejected() -> None:
    result, proof = prove_dleq(CLIENT, BASE)
    public = CLIENT.public_key
    other = key(12345).public_key
    forged_result = result.add(GENERATOR)
    assert forged_result is not None
    for case in (
        (public, BASE, result, DleqProof(proof.e % (N - 1) + 1, proof.s)),  # challenge changed
        (public, BASE, result, DleqProof(proof.e, proof.s % (N - 1) + 1)),  # response changed
        (public, BASE, forged_result, proof),  # another point claimed as c*N
        (public, other, result, proof),  # the same point, claimed for another base
        (other, BASE, result, proof),  # someone else's key
        (public, BASE, other.multiply(7), prove_dleq(key(7), other)[1]),  # a valid proof for other statements
    ):
        assert not verify_dleq(*case)
        assert not ecdsa_verify(*case)


def test_a_proof_for_someone_elses_point_does_not_transfer() -> None:
    """The point c*N alone, without c, cannot be proven: a proof with c' != c fails for C."""
    impostor = key(99)
    result, proof = prove_dleq(impostor, BASE)
    assert not verify_dleq(CLIENT.public_key, BASE, result, proof)


def test_a_response_that_makes_r_infinite_fails_cleanly() -> None:
    """s = e*x puts R1 = s*G - e*X at infinity, which libsecp256k1 cannot even represent."""
    x = int.from_bytes(CLIENT.secret, "big")
    e = 7
    proof = DleqProof(e, e * x % N)
    result = BASE.multiply(x)
    assert not verify_dleq(CLIENT.public_key, BASE, result, proof)
    assert not ecdsa_verify(CLIENT.public_key, BASE, result, proof)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes(64), r"scalar e must be in \[1, n-1\]"),
        (b"\x01" * 32 + bytes(32), r"scalar s must be in \[1, n-1\]"),
        (N.to_bytes(32, "big") + b"\x01" * 32, r"scalar e must be in \[1, n-1\]"),  # e + n: non-canonical
        (b"\x01" * 32 + (N + 1).to_bytes(32, "big"), r"scalar s must be in \[1, n-1\]"),
        (b"\x01" * 63, "must be 64 bytes"),
        ("not bytes", "must be 64 bytes"),
    ],
)
def test_non_canonical_proofs_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DleqProof.from_bytes(data)


def test_only_compressed_points_on_the_curve_are_parsed() -> None:
    parse_point(BASE.to_bytes())
    with pytest.raises(ValueError, match="33 bytes compressed"):
        parse_point(BASE.to_bytes(compressed=False))
    with pytest.raises(ValueError, match="cannot start with 0x00"):
        parse_point(bytes(33))  # what infinity would look like
    x = next(x for x in range(1, 100) if (x**3 + 7) % SECP256k1.curve.p() and not on_curve(x))
    with pytest.raises(ValueError, match="not a point on secp256k1"):
        parse_point(b"\x02" + x.to_bytes(32, "big"))


def on_curve(x: int) -> bool:
    p = SECP256k1.curve.p()
    rhs = (x**3 + 7) % p
    return pow(rhs, (p - 1) // 2, p) == 1


# -- opening an ECIES blob from a reveal -----------------------------------------------------------


@settings(max_examples=20)
@given(st.binary(max_size=200), st.binary(max_size=32))
def test_a_reveal_opens_the_blob_exactly_as_the_private_key_does(plaintext: bytes, aad: bytes) -> None:
    blob = ecies.encrypt(CLIENT.public_key, plaintext, aad)
    reveal = ecies.reveal_shared_point(CLIENT, blob)
    wire = reveal.to_bytes()
    assert len(wire) == ecies.REVEAL_LENGTH == 97
    parsed = ecies.SharedPointReveal.from_bytes(wire)
    assert ecies.open_revealed(parsed, CLIENT.public_key, blob, aad) == ecies.decrypt(CLIENT, blob, aad) == plaintext


def test_a_reveal_opens_only_its_own_blob_for_its_own_key() -> None:
    first, second = (ecies.encrypt(CLIENT.public_key, b"output", b"job") for _ in range(2))
    reveal = ecies.reveal_shared_point(CLIENT, first)
    with pytest.raises(ecies.DecryptionError, match="no valid DLEQ proof"):
        ecies.open_revealed(reveal, CLIENT.public_key, second, b"job")
    with pytest.raises(ecies.DecryptionError, match="no valid DLEQ proof"):
        ecies.open_revealed(reveal, key(5).public_key, first, b"job")
    forged = ecies.SharedPointReveal(key(5).ecdh_point(ecies.ephemeral_key(first)), reveal.proof)
    with pytest.raises(ecies.DecryptionError, match="no valid DLEQ proof"):
        ecies.open_revealed(forged, CLIENT.public_key, first, b"job")
    with pytest.raises(ecies.DecryptionError, match="authentication failed"):
        ecies.open_revealed(reveal, CLIENT.public_key, first, b"another job")


def test_a_garbage_delivery_is_shown_to_be_garbage_by_anyone() -> None:
    """A sender that seals random bytes under a valid header: the reveal is valid, the blob does not open."""
    honest = ecies.encrypt(CLIENT.public_key, b"x" * 40, b"job")
    garbage = honest[: ecies.HEADER_LENGTH] + bytes(56)
    reveal = ecies.reveal_shared_point(CLIENT, garbage)
    with pytest.raises(ecies.DecryptionError, match="authentication failed"):
        ecies.open_revealed(reveal, CLIENT.public_key, garbage, b"job")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x02" * 96, "must be 97 bytes"),
        (bytes(33) + b"\x01" * 64, "cannot start with 0x00"),
        (GENERATOR.to_bytes() + bytes(64), r"scalar e must be in \[1, n-1\]"),
    ],
)
def test_malformed_reveals_are_named(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ecies.SharedPointReveal.from_bytes(data)
