"""What every request to the RPC port passes before its handler: a work-queue bound, CSRF and DNS-rebinding checks.

* At most `work_queue` requests are served at once (Bitcoin Core's -rpcworkqueue); one more gets
  HTTP 503 at once, so a flood cannot queue up unbounded work or memory.
* A POST must say its body is JSON: Content-Type application/json or text/plain (what bitcoin-cli
  and curl users send), else 415. A POST carrying an Origin header is refused (403): browsers send
  one on every cross-site POST, and no RPC or OpenAI client does. Together they keep a web page from
  posting to the node with credentials the browser has cached (CSRF).
* The status page and status.json need no credentials, so a GET outside /v1 must name the node by
  an IP address, `localhost` or one of `allowed_hosts` in its Host header, else 403: a page on
  evil.example whose name was rebound to 127.0.0.1 sends Host: evil.example and learns nothing.
* A body may be at most `max_body` bytes: a Content-Length above it is refused before reading (413),
  and aiohttp stops reading one that grows past it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from camelid.node.config import DEFAULT_WORK_QUEUE, MAX_REQUEST_BYTES

JSON_CONTENT_TYPES = frozenset({"application/json", "text/plain"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HTTPLimits:
    """The bounds of the RPC port (--rpcworkqueue, --rpcmaxbody, --rpcallowhost)."""

    work_queue: int = DEFAULT_WORK_QUEUE
    max_body: int = MAX_REQUEST_BYTES
    allowed_hosts: tuple[str, ...] = ()  # DNS names the status page answers to, besides IPs and localhost


def host_allowed(host_header: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header names this node by IP, `localhost` or an allowed name (none at all: no browser)."""
    if host_header is None:
        return True
    host = host_header.strip()
    if host.startswith("["):  # [IPv6]:port
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    return name == "localhost" or name in {a.rstrip(".").lower() for a in allowed}


def refusal(request: web.Request, limits: HTTPLimits) -> web.Response | None:
    """The response refusing `request`, or None if it may go to its handler."""
    if request.method == "POST":
        if "Origin" in request.headers:
            return web.Response(status=403, text="cross-origin requests are refused\n")
        if request.content_type not in JSON_CONTENT_TYPES:
            return web.Response(status=415, text="Content-Type must be application/json or text/plain\n")
        if request.content_length is not None and request.content_length > limits.max_body:
            return web.Response(status=413, text=f"request body is over {limits.max_body} bytes\n")
    elif not request.path.startswith("/v1/") and not host_allowed(request.headers.get("Host"), limits.allowed_hosts):
        return web.Response(status=403, text="Host not allowed: use the node's IP address or --rpcallowhost\n")
    return None


def http_guard(limits: HTTPLimits) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """aiohttp middleware applying `limits` to every request."""
    in_flight = 0

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        nonlocal in_flight
        if in_flight >= limits.work_queue:
            return web.Response(status=503, text="Work queue depth exceeded\n")
        refused = refusal(request, limits)
        if refused is not None:
            return refused
        in_flight += 1
        try:
            return await handler(request)
        finally:
            in_flight -= 1

    return guard
