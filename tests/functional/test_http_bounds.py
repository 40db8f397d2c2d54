"""A real camelidd's RPC port against hostile HTTP (issue 15): CSRF, DNS rebinding, big bodies, a request flood."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from camelid.rpc.auth import read_cookie

from .framework import TestNode, wait_until
from .inprocess import basic_auth

pytestmark = pytest.mark.slow

CALL = json.dumps({"id": 1, "method": "getblockcount", "params": []}).encode()


def request(node: TestNode, method: str, path: str, body: bytes = b"", **headers: str) -> int:
    """The HTTP status of one request with the node's cookie credentials and these extra headers."""
    connection = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=10)
    try:
        names = {name.replace("_", "-"): value for name, value in headers.items()}
        connection.request(method, path, body=body or None, headers={"Authorization": auth(node), **names})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def auth(node: TestNode) -> str:
    return basic_auth(read_cookie(node.net_datadir))


def stalled_post(node: TestNode) -> socket.socket:
    """A JSON-RPC POST whose body never finishes arriving: the request holds its slot while the node waits."""
    sock = socket.create_connection(("127.0.0.1", node.rpc_port), timeout=10)
    head = (
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth(node)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(CALL) + 100}\r\n\r\n"
    )
    sock.sendall(head.encode() + CALL)
    return sock


def test_the_rpc_port_refuses_csrf_rebinding_big_bodies_and_more_requests_than_its_queue(camelid_nodes):
    (node,) = camelid_nodes(1, [["--rpcworkqueue=2", "--rpcmaxbody=100000", "--rpcallowhost=node.example"]])
    assert request(node, "POST", "/", CALL, Content_Type="application/json") == 200
    assert request(node, "POST", "/", CALL, Content_Type="text/plain;") == 200  # as Bitcoin's curl examples

    # CSRF: a browser form posts x-www-form-urlencoded (or text/plain), and always with an Origin.
    assert request(node, "POST", "/", CALL, Content_Type="application/x-www-form-urlencoded") == 415
    assert request(node, "POST", "/", CALL) == 415  # no Content-Type at all
    assert request(node, "POST", "/", CALL, Content_Type="text/plain", Origin="http://evil.example") == 403
    assert request(node, "POST", "/v1/completions", CALL, Content_Type="application/json", Origin="null") == 403

    # DNS rebinding: the page and status.json answer to IP addresses, localhost and --rpcallowhost only.
    assert request(node, "GET", "/status.json", Host=f"evil.example:{node.rpc_port}") == 403
    assert request(node, "GET", "/", Host="evil.example") == 403
    for host in (f"127.0.0.1:{node.rpc_port}", "localhost", "[::1]:1", "NODE.example"):
        assert request(node, "GET", "/status.json", Host=host) == 200

    # A body past --rpcmaxbody is refused, announced or not.
    assert request(node, "POST", "/", b" " * 100_001, Content_Type="application/json") == 413
    chunked = http.client.HTTPConnection("127.0.0.1", node.rpc_port, timeout=10)
    chunked.request("POST", "/", body=iter([b" " * 60_000] * 2), encode_chunked=True,
                    headers={"Authorization": auth(node), "Content-Type": "application/json"})  # fmt: skip
    assert chunked.getresponse().status == 413
    chunked.close()

    # A flood: with --rpcworkqueue=2 requests in flight, the next one is answered 503 at once.
    stalled = [stalled_post(node), stalled_post(node)]
    assert request(node, "POST", "/", CALL, Content_Type="application/json") == 503
    assert request(node, "GET", "/status.json") == 503
    for sock in stalled:
        sock.close()
    wait_until(lambda: request(node, "POST", "/", CALL, Content_Type="application/json") == 200, what="free slots")
