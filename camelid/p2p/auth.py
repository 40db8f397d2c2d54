"""The signed challenge that authenticates a peer's node id during the version/verack handshake.

Each side puts a fresh 32-byte `challenge` in its `version` and, in its `verack`,
signs with its node key

    sha256("camelid/handshake/v1" || magic || role || initiator node_id || responder node_id
           || initiator challenge || responder challenge)

where `role` is 0x00 when the signer opened the connection and 0x01 when it
accepted it. Every field has a fixed size, so the encoding is unambiguous. The
signature proves the peer holds the key behind the node id it claims, in this
handshake (the challenge we chose is fresh), on this network (magic), towards
us (our node id), in its own role: it cannot be replayed from another
connection, reflected back to its signer, or reused on another network.

What it does not prove: that no one relays the whole conversation. A node M
that both accepts a connection from X and opens one to Y can pass each side's
messages through unchanged, and both handshakes then succeed with M in the
middle, able to drop or inject later frames -- the protocol is not encrypted or
MACed. The role byte means M must be dialled by X to pose as X to Y. Closing
this needs a transport whose session keys the signatures cover (as BIP 324
plus authentication); docs/protocol.md 11.4 lists it as open.
"""

from __future__ import annotations

from camelid.crypto.hashes import sha256
from camelid.crypto.keys import PrivateKey, PublicKey
from camelid.p2p.messages import Version

HANDSHAKE_TAG = b"camelid/handshake/v1"
INITIATOR = 0x00
RESPONDER = 0x01


def handshake_digest(magic: bytes, initiator: Version, responder: Version, signer_role: int) -> bytes:
    """The 32 bytes the `signer_role` side of this connection signs in its verack."""
    if signer_role not in (INITIATOR, RESPONDER):
        raise ValueError(f"unknown handshake role {signer_role}")
    return sha256(
        HANDSHAKE_TAG
        + magic
        + bytes([signer_role])
        + initiator.node_id
        + responder.node_id
        + initiator.challenge
        + responder.challenge
    )


def sign_handshake(key: PrivateKey, magic: bytes, initiator: Version, responder: Version, role: int) -> bytes:
    """Our verack signature, `role` being ours."""
    return key.sign(handshake_digest(magic, initiator, responder, role))


def handshake_signature_valid(
    signature: bytes, magic: bytes, initiator: Version, responder: Version, role: int
) -> bool:
    """Whether `signature` is by the node id of the `role` side (taken from its version) over this handshake."""
    signer = initiator if role == INITIATOR else responder
    return PublicKey.from_bytes(signer.node_id).verify(signature, handshake_digest(magic, initiator, responder, role))
