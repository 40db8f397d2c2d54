"""A small synchronous JSON-RPC client for camelid-cli and the functional tests.

Floats in replies are parsed as Decimal so amounts keep their 8 decimals exactly.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
from decimal import Decimal
from typing import Any

from camelid.rpc import jsonenc
from camelid.rpc.auth import Credentials


class JSONRPCError(Exception):
    """The node answered with an error object."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code
        self.message = message


class AuthorizationError(Exception):
    """The node refused the credentials (HTTP 401)."""


class RPCClient:
    """Calls methods on one node: `client.call("getblockhash", 5)` or `client.call("getblock", blockhash=h)`."""

    def __init__(self, host: str, port: int, credentials: Credentials, timeout: float = 120.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        token = base64.b64encode(f"{credentials.user}:{credentials.password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
        self._ids = itertools.count(1)

    def post(self, body: bytes) -> tuple[int, bytes]:
        """Send a raw request body; (HTTP status, response body). ConnectionError when nobody listens."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", "/", body=body, headers=self._headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def call(self, method: str, *args: Any, **named: Any) -> Any:
        """The method's result; JSONRPCError for an error reply, AuthorizationError for HTTP 401."""
        if args and named:
            raise ValueError("pass positional or named arguments, not both")
        request = {"jsonrpc": "1.0", "id": next(self._ids), "method": method, "params": named or list(args)}
        status, body = self.post(jsonenc.dumps(request).encode())
        if status == 401:
            raise AuthorizationError("Authorization failed: incorrect rpcuser or rpcpassword")
        try:
            reply = json.loads(body, parse_float=Decimal)
        except ValueError:
            raise JSONRPCError(-32700, f"HTTP {status}: unreadable reply {body[:200]!r}") from None
        error = reply.get("error") if isinstance(reply, dict) else None
        if error:
            raise JSONRPCError(error.get("code", 0), error.get("message", ""))
        return reply["result"]
