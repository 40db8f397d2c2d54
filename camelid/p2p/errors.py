"""The one exception every P2P decoder raises.

A peer controls every byte we decode, so decoding must fail in exactly one,
predictable way: the connection code catches ProtocolViolation, drops the
message, disconnects and discourages the peer, and never has to guess which
other exception a malformed frame might have provoked.
"""

from __future__ import annotations


class ProtocolViolation(ValueError):
    """A peer sent bytes that break the wire protocol; `reason` is a short machine-readable tag.

    Reasons: "bad-magic", "bad-command", "unknown-command", "oversized", "bad-checksum",
    "truncated", "trailing-data" and "bad-payload: <detail>"; the connection code adds
    "unexpected-message: <detail>" for a message out of order (anything before the handshake
    completes, a second version).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HandshakeRefused(Exception):
    """The peer speaks the protocol correctly but we will not talk to it.

    Reasons: "wrong-network", "obsolete-version", "self-connection". Unlike a
    ProtocolViolation this is no misbehaviour: the connection is closed and the
    address is not discouraged.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
