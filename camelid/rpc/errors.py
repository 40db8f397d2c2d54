"""JSON-RPC error codes, numbered as Bitcoin Core's rpc/protocol.h so existing clients read them."""

from __future__ import annotations

from enum import IntEnum


class RPCErrorCode(IntEnum):
    # Standard JSON-RPC 2.0 errors.
    INVALID_REQUEST = -32600
    METHOD_NOT_FOUND = -32601
    INVALID_PARAMS = -32602
    INTERNAL_ERROR = -32603
    PARSE_ERROR = -32700
    # Bitcoin Core's application errors.
    MISC_ERROR = -1
    TYPE_ERROR = -3
    INVALID_ADDRESS_OR_KEY = -5
    INVALID_PARAMETER = -8
    DESERIALIZATION_ERROR = -22
    VERIFY_ERROR = -25
    VERIFY_REJECTED = -26
    VERIFY_ALREADY_IN_CHAIN = -27
    IN_WARMUP = -28
    # Bitcoin Core's P2P client errors.
    CLIENT_NODE_ALREADY_ADDED = -23
    CLIENT_NODE_NOT_ADDED = -24
    CLIENT_NODE_NOT_CONNECTED = -29
    CLIENT_INVALID_IP_OR_SUBNET = -30


class RPCError(Exception):
    """An error the caller caused or should see; becomes the `error` member of the reply."""

    def __init__(self, code: RPCErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, object]:
        return {"code": int(self.code), "message": self.message}
