"""The /v1 routes in-process: the API key, and OpenAI error bodies for every request that cannot become a job.

The node here has no job or model service yet (as while it starts), so a well-formed request gets as far
as asking for them, and must answer 503 rather than fail.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from camelid.core.params import get_params
from camelid.node.bus import EventBus
from camelid.rpc.auth import Credentials
from camelid.rpc.context import RPCContext
from camelid.rpc.openai_api import OpenAIAPI, bearer_matches

CREDENTIALS = Credentials("__cookie__", "s3cret")
BEARER = {"Authorization": "Bearer s3cret"}


@pytest.fixture
async def http() -> AsyncIterator[TestClient]:
    app = web.Application()
    OpenAIAPI(RPCContext(get_params("regtest"), EventBus()), CREDENTIALS, auth_failure_delay=0).add_routes(app)
    async with TestClient(TestServer(app)) as client:
        yield client


def test_the_bearer_key_is_the_rpc_password():
    assert bearer_matches("Bearer s3cret", CREDENTIALS)
    for header in (None, "", "Bearer ", "Bearer s3cre", "Bearer s3crett", "bearer s3cret", "Basic s3cret"):
        assert not bearer_matches(header, CREDENTIALS)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic " + base64.b64encode(b"__cookie__:wrong").decode()])
async def test_a_missing_or_wrong_key_is_a_401_in_openai_shape(http, header):
    headers = {"Authorization": header} if header else {}
    response = await http.get("/v1/models", headers=headers)
    assert response.status == 401
    error = (await response.json())["error"]
    assert (error["code"], error["type"]) == ("invalid_api_key", "invalid_request_error")
    assert "API key" in error["message"]


async def test_basic_auth_with_the_rpc_credentials_is_accepted_too(http):
    basic = "Basic " + base64.b64encode(b"__cookie__:s3cret").decode()
    response = await http.get("/v1/models", headers={"Authorization": basic})
    assert response.status == 503  # past the key check, to the model service the starting node lacks


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "not valid JSON"),
        (b'{"model": "m", "prompt": "x", "max_tokens": NaN}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (b'{"model": "m", "prompt": "x", "max_tokens": -1}', "max_tokens must be"),
    ],
)
async def test_a_malformed_body_is_a_400(http, body, message):
    for path in ("/v1/completions", "/v1/chat/completions"):
        response = await http.post(path, data=body, headers=BEARER)
        assert response.status == 400
        assert message in (await response.json())["error"]["message"]


async def test_a_valid_request_while_the_node_starts_is_a_503(http):
    body = {"model": "default", "messages": [{"role": "user", "content": "Hi"}]}
    response = await http.post("/v1/chat/completions", json=body, headers=BEARER)
    assert response.status == 503
    assert (await response.json())["error"]["type"] == "server_error"
    assert (await http.get("/v1/models/default", headers=BEARER)).status == 503


async def test_only_the_api_methods_are_routed(http):
    assert (await http.get("/v1/completions", headers=BEARER)).status == 405
    assert (await http.get("/v1/embeddings", headers=BEARER)).status == 404
