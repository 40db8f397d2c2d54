"""The JSON-RPC wire protocol: auth, HTTP status codes, 1.0/2.0 replies, batches, bad requests, warm-up."""

from __future__ import annotations

import json

import pytest
from functional.inprocess import TEST_CREDENTIALS, basic_auth, rpc_harness

from camelid.rpc.auth import Credentials


@pytest.fixture
async def rpc(tmp_path):
    async with rpc_harness(tmp_path) as harness:
        yield harness


async def test_correct_credentials_get_a_result(rpc):
    status, reply = await rpc.post(json.dumps({"id": 7, "method": "getblockcount", "params": []}))
    assert status == 200
    assert reply == {"result": 0, "error": None, "id": 7}


@pytest.mark.parametrize(
    "authorization",
    [
        basic_auth(Credentials(TEST_CREDENTIALS.user, "wrong")),
        basic_auth(Credentials("someone", TEST_CREDENTIALS.password)),
        "Basic !!!not-base64!!!",
        "Bearer token",
    ],
)
async def test_bad_credentials_get_401(rpc, authorization):
    status, reply = await rpc.post(json.dumps({"id": 1, "method": "getblockcount"}), authorization=authorization)
    assert status == 401
    assert reply is None


async def test_only_post_is_served(rpc):
    status, text = await rpc.post("", method="GET")
    assert status == 405
    assert "only POST" in text


async def test_malformed_json_is_a_parse_error_with_http_500(rpc):
    status, reply = await rpc.post('{"id": 1, "method": "getblockcount"')
    assert status == 500
    assert reply["error"]["code"] == -32700
    assert reply["result"] is None


@pytest.mark.parametrize("body", ['"just a string"', "42", "NaN"])
async def test_non_object_top_level_is_rejected(rpc, body):
    status, reply = await rpc.post(body)
    assert status == 500
    assert reply["error"]["code"] == -32700


async def test_unknown_method_in_legacy_mode_is_404_with_the_error_body(rpc):
    status, reply = await rpc.post(json.dumps({"id": 3, "method": "nosuchmethod", "params": []}))
    assert status == 404
    assert reply == {"result": None, "error": {"code": -32601, "message": "Method not found"}, "id": 3}


async def test_jsonrpc_2_errors_are_http_200_without_a_result_member(rpc):
    status, reply = await rpc.post(json.dumps({"jsonrpc": "2.0", "id": "a", "method": "nosuchmethod"}))
    assert status == 200
    assert reply == {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "a"}


async def test_jsonrpc_2_success_has_no_error_member(rpc):
    status, reply = await rpc.post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getblockcount"}))
    assert status == 200
    assert reply == {"jsonrpc": "2.0", "result": 0, "id": 1}


async def test_jsonrpc_2_notification_gets_no_reply(rpc):
    status, reply = await rpc.post(json.dumps({"jsonrpc": "2.0", "method": "getblockcount"}))
    assert status == 204
    assert reply is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ({"id": 1}, "Missing method"),
        ({"id": 1, "method": 5}, "Method must be a string"),
        ({"id": 1, "method": "getblockcount", "params": "x"}, "Params must be an array or object"),
        ({"id": 1, "jsonrpc": "3.0", "method": "getblockcount"}, "JSON-RPC version not supported"),
    ],
)
async def test_invalid_requests_are_http_400(rpc, call, message):
    status, reply = await rpc.post(json.dumps(call))
    assert status == 400
    assert reply["error"] == {"code": -32600, "message": message}


async def test_batch_answers_each_call_in_order_and_skips_notifications(rpc):
    batch = [
        {"id": 1, "method": "getblockcount"},
        {"id": 2, "method": "nosuchmethod"},
        {"jsonrpc": "2.0", "method": "getblockcount"},
        "not an object",
        {"jsonrpc": "2.0", "id": 5, "method": "getblockhash", "params": [0]},
    ]
    status, replies = await rpc.post(json.dumps(batch))
    assert status == 200
    assert [r["id"] for r in replies] == [1, 2, None, 5]
    assert replies[0]["result"] == 0
    assert replies[1]["error"]["code"] == -32601
    assert replies[2]["error"]["code"] == -32600
    assert len(replies[3]["result"]) == 64


async def test_empty_batch_gets_an_empty_list(rpc):
    assert await rpc.post("[]") == (200, [])


@pytest.mark.parametrize(
    ("params", "code"),
    [
        (["zero"], -3),  # wrong type
        ([True], -3),  # a bool is not a number
        ([1.5], -3),  # not an integer
        ([0, 1], -1),  # too many arguments
        ([], -1),  # missing argument
        ({"heigth": 0}, -8),  # unknown named parameter
        ({"args": [0], "height": 0}, -8),  # given twice
    ],
)
async def test_argument_checking_uses_bitcoin_core_codes(rpc, params, code):
    status, reply = await rpc.post(json.dumps({"id": 1, "method": "getblockhash", "params": params}))
    assert status == 500
    assert reply["error"]["code"] == code
    assert reply["result"] is None


async def test_named_parameters_bind_by_name(rpc):
    _, reply = await rpc.post(json.dumps({"id": 1, "method": "getblockhash", "params": {"height": 0}}))
    assert reply["result"] == rpc.chain.params.genesis.hash()
    _, reply = await rpc.post(json.dumps({"id": 1, "method": "getblockheader", "params": {
        "blockhash": reply["result"], "verbose": False}}))
    assert reply["result"] == rpc.chain.params.genesis.header.to_bytes().hex()


async def test_methods_answer_minus_28_until_the_chain_has_loaded(tmp_path):
    async with rpc_harness(tmp_path, warm=False) as rpc:
        status, reply = await rpc.post(json.dumps({"id": 1, "method": "getblockcount"}))
        assert status == 500
        assert reply["error"]["code"] == -28
        assert isinstance(await rpc.call("uptime"), int)
        assert "getblockcount" in await rpc.call("help")


async def test_help_lists_every_category_and_explains_one_method(rpc):
    overview = await rpc.call("help")
    for heading in ("== Blockchain ==", "== Control ==", "== Generating ==", "== Mining ==", "== Util =="):
        assert heading in overview
    detail = await rpc.call("help", "getblockhash")
    assert detail.startswith('getblockhash "height"')
    assert "height in the active chain" in detail
