"""The handshake signature: what it binds, and every way a signature from elsewhere is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from camelid.core.params import get_params
from camelid.crypto.hashes import sha256
from camelid.crypto.keys import PrivateKey
from camelid.p2p.auth import INITIATOR, RESPONDER, handshake_digest, handshake_signature_valid, sign_handshake
from camelid.p2p.messages import PROTOCOL_VERSION, ServiceFlags, Version

MAGIC = get_params("regtest").magic
ALICE, BOB, MALLORY = (PrivateKey.from_bytes(bytes([i]) * 32) for i in (1, 2, 3))


def version(key: PrivateKey, challenge: bytes) -> Version:
    return Version(
        "regtest", PROTOCOL_VERSION, ServiceFlags.FULL_NODE, 0, key.public_key.to_bytes(), (), "/t/", 0, 0, 1, challenge
    )


DIALLER = version(ALICE, b"\x0a" * 32)  # Alice opened the connection
LISTENER = version(BOB, b"\x0b" * 32)


def test_the_digest_is_the_documented_hash():
    expected = sha256(
        b"camelid/handshake/v1"
        + MAGIC
        + b"\x01"
        + ALICE.public_key.to_bytes()
        + BOB.public_key.to_bytes()
        + b"\x0a" * 32
        + b"\x0b" * 32
    )
    assert handshake_digest(MAGIC, DIALLER, LISTENER, RESPONDER) == expected
    with pytest.raises(ValueError, match="unknown handshake role 2"):
        handshake_digest(MAGIC, DIALLER, LISTENER, 2)


def test_each_side_proves_its_own_key():
    alice_signs = sign_handshake(ALICE, MAGIC, DIALLER, LISTENER, INITIATOR)
    bob_signs = sign_handshake(BOB, MAGIC, DIALLER, LISTENER, RESPONDER)
    assert handshake_signature_valid(alice_signs, MAGIC, DIALLER, LISTENER, INITIATOR)
    assert handshake_signature_valid(bob_signs, MAGIC, DIALLER, LISTENER, RESPONDER)


def test_claiming_another_nodes_id_without_its_key_fails():
    impostor = version(ALICE, b"\x0c" * 32)  # Mallory announces Alice's id
    signature = sign_handshake(MALLORY, MAGIC, impostor, LISTENER, INITIATOR)
    assert not handshake_signature_valid(signature, MAGIC, impostor, LISTENER, INITIATOR)


@pytest.mark.parametrize(
    "elsewhere",
    [
        {"initiator": replace(DIALLER, challenge=b"\x0c" * 32)},  # another connection (replay)
        {"responder": replace(LISTENER, challenge=b"\x0c" * 32)},  # another challenge from the listener
        {"responder": version(MALLORY, b"\x0b" * 32)},  # made towards another node (relayed to us)
        {"magic": get_params("testnet").magic},  # another network
    ],
)
def test_a_signature_from_another_handshake_is_refused(elsewhere):
    signature = sign_handshake(ALICE, MAGIC, DIALLER, LISTENER, INITIATOR)
    context = {"magic": MAGIC, "initiator": DIALLER, "responder": LISTENER} | elsewhere
    assert not handshake_signature_valid(
        signature, context["magic"], context["initiator"], context["responder"], INITIATOR
    )


def test_the_roles_sign_different_digests():
    """So a dialler's signature never stands in for a listener's: a relay must be dialled by whom it poses as."""
    assert handshake_digest(MAGIC, DIALLER, LISTENER, INITIATOR) != handshake_digest(
        MAGIC, DIALLER, LISTENER, RESPONDER
    )


def test_garbage_signatures_are_invalid_not_errors():
    for signature in (b"\x30", b"\x00" * 72, b"not der"):
        assert not handshake_signature_valid(signature, MAGIC, DIALLER, LISTENER, INITIATOR)
