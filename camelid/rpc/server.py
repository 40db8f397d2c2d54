"""JSON-RPC over HTTP, with Bitcoin Core's wire behaviour so its clients work unchanged.

* POST only (with `status_page`, GET serves the read-only page of camelid.rpc.status; /v1 is the
  OpenAI-compatible API of camelid.rpc.openai_api);
  HTTP Basic auth against the cookie or rpcuser/rpcpassword, 401 (after
  a short delay, to slow guessing) when it does not match.
* A JSON object is one call, an array a batch (always HTTP 200, one reply per call).
* JSON-RPC 1.0 (or no "jsonrpc" member): replies carry both "result" and "error";
  a failed single call answers HTTP 400 for -32600, 404 for -32601, 500 otherwise.
* JSON-RPC 2.0: replies carry "jsonrpc": "2.0" and either "result" or "error",
  always HTTP 200; a call without "id" is a notification and gets no reply.
* While the chain state loads, methods not marked `during_warmup` answer -28.
* Every request first passes camelid.rpc.http_guard: a bound on requests served at once (503 past
  it), Content-Type and Origin checks against CSRF, a Host check on the status page against DNS
  rebinding, and a body size bound.

No request can take the node down: every failure, expected or not, becomes an
error reply, and unexpected ones are logged with their traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from camelid.rpc import jsonenc
from camelid.rpc.auth import Credentials
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.http_guard import HTTPLimits, http_guard
from camelid.rpc.openai_api import OpenAIAPI
from camelid.rpc.status import add_status_routes

log = logging.getLogger(__name__)

AUTH_FAILURE_DELAY = 0.25  # seconds, as Bitcoin Core, to make password guessing slow
_LEGACY_HTTP_STATUS = {RPCErrorCode.INVALID_REQUEST: 400, RPCErrorCode.METHOD_NOT_FOUND: 404}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class RPCServer:
    """The aiohttp application serving `context.methods` to callers holding `credentials`."""

    def __init__(
        self,
        context: RPCContext,
        credentials: Credentials,
        host: str,
        port: int,
        *,
        status_page: bool = False,
        limits: HTTPLimits = HTTPLimits(),
    ) -> None:
        self.context = context
        self.credentials = credentials
        self.host = host
        self.port = port
        app = web.Application(client_max_size=limits.max_body, middlewares=[http_guard(limits)])
        if status_page:  # GET routes first: the catch-all below would answer GET / with 405
            add_status_routes(app.router, context)
        OpenAIAPI(context, credentials, AUTH_FAILURE_DELAY).add_routes(app)
        app.router.add_route("*", "/", self._handle_http)
        self._runner = web.AppRunner(app, access_log=None)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        log.info("RPC server listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        await self._runner.cleanup()
        log.info("RPC server stopped")

    async def _handle_http(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="JSONRPC server handles only POST requests\n")
        if not self.credentials.check_header(request.headers.get("Authorization")):
            log.warning("RPC: incorrect credentials from %s", request.remote)
            await asyncio.sleep(AUTH_FAILURE_DELAY)
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="jsonrpc"'})
        body = await request.read()
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except ValueError:
            error = RPCError(RPCErrorCode.PARSE_ERROR, "Parse error")
            return self._json_response(_legacy_reply(None, None, error), 500)
        if isinstance(payload, list):
            replies = [reply for reply in [await self.dispatch(call) for call in payload] if reply is not None]
            return self._json_response(replies, 200)
        if not isinstance(payload, dict):
            error = RPCError(RPCErrorCode.PARSE_ERROR, "Top-level object parse error")
            return self._json_response(_legacy_reply(None, None, error), 500)
        reply = await self.dispatch(payload)
        if reply is None:
            return web.Response(status=204)
        status = 200
        if "jsonrpc" not in reply and reply["error"] is not None:
            status = _LEGACY_HTTP_STATUS.get(reply["error"]["code"], 500)
        return self._json_response(reply, status)

    @staticmethod
    def _json_response(value: Any, status: int) -> web.Response:
        return web.Response(status=status, text=jsonenc.dumps(value) + "\n", content_type="application/json")

    async def dispatch(self, call: Any) -> dict[str, Any] | None:
        """Execute one JSON-RPC call object; its reply, or None for a 2.0 notification."""
        if not isinstance(call, dict):
            return _legacy_reply(None, None, RPCError(RPCErrorCode.INVALID_REQUEST, "Invalid Request object"))
        call_id = call.get("id")
        version = call.get("jsonrpc")
        if version not in (None, "1.0", "2.0"):
            error = RPCError(RPCErrorCode.INVALID_REQUEST, "JSON-RPC version not supported")
            return _legacy_reply(None, call_id, error)
        result, error = None, None
        try:
            result = await self._execute(call)
        except RPCError as exc:
            error = exc
        except Exception as exc:  # a bug in a handler must not take the server down
            log.exception("RPC: %s failed unexpectedly", call.get("method"))
            error = RPCError(RPCErrorCode.MISC_ERROR, f"internal error: {exc}")
        if version == "2.0":
            if "id" not in call:
                return None
            reply: dict[str, Any] = {"jsonrpc": "2.0"}
            reply.update({"error": error.to_json()} if error else {"result": result})
            reply["id"] = call_id
            return reply
        return _legacy_reply(result, call_id, error)

    async def _execute(self, call: dict[str, Any]) -> Any:
        name = call.get("method")
        if name is None:
            raise RPCError(RPCErrorCode.INVALID_REQUEST, "Missing method")
        if not isinstance(name, str):
            raise RPCError(RPCErrorCode.INVALID_REQUEST, "Method must be a string")
        params = call.get("params")
        if params is not None and not isinstance(params, list | dict):
            raise RPCError(RPCErrorCode.INVALID_REQUEST, "Params must be an array or object")
        method = self.context.methods.get(name)
        if method is None:
            raise RPCError(RPCErrorCode.METHOD_NOT_FOUND, "Method not found")
        if self.context.warming_up and not method.during_warmup:
            raise RPCError(RPCErrorCode.IN_WARMUP, self.context.warmup_status)
        args = method.bind(params)
        log.debug("RPC: %s %r", name, args)
        return await method.handler(self.context, *args)


def _legacy_reply(result: Any, call_id: Any, error: RPCError | None) -> dict[str, Any]:
    return {"result": result, "error": error.to_json() if error else None, "id": call_id}
