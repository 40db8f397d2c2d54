"""The status page and status.json on the RPC port, against a real in-process regtest chain."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from chain_helpers import coinbase_spendable, make_key, pay
from functional.inprocess import RPCHarness, free_port, rpc_harness
from multidict import CIMultiDictProxy

from camelid.core.block import Block
from camelid.node.config import load_config
from camelid.p2p.peer import Direction, PeerInfo
from camelid.rpc.server import RPCServer
from camelid.rpc.status import PEERS_LISTED, peers_json
from camelid.rpc.status_page import PAGE_HTML, PAGE_JS

KEY = make_key(7)
ADDRESS = KEY.public_key.address("regtest")


@asynccontextmanager
async def status_server(harness: RPCHarness, *, status_page: bool = True) -> AsyncIterator[str]:
    """A second RPC server on the harness's node, with the status page on or off; its base URL."""
    server = RPCServer(harness.context, harness.server.credentials, "127.0.0.1", free_port(), status_page=status_page)
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.stop()


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, CIMultiDictProxy[str]]:
    async with session.get(url) as response:  # deliberately no Authorization header
        return response.status, await response.text(), response.headers


async def status_json(session: aiohttp.ClientSession, base: str) -> dict:
    async with session.get(base + "/status.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        return await response.json()


async def test_status_json_reports_tip_mining_and_honest_job_state(tmp_path):
    async with rpc_harness(tmp_path) as rpc, status_server(rpc) as base:
        hashes = await rpc.call("generatetoaddress", 3, ADDRESS)
        status = await status_json(rpc.session, base)
    assert status["ready"] is True
    assert status["network"] == "regtest"
    assert status["tip"]["height"] == 3
    assert status["tip"]["hash"] == hashes[-1]
    assert status["mining"]["mining"] is False  # no --mine loop, though generatetoaddress hashed:
    assert status["mining"]["hashps"] > 0
    assert status["jobs"] is None  # no job service in this harness either
    assert status["peers"] is None  # no P2P service in this harness: shown as such, not as zero peers
    assert status["models"] is None  # nor a model service


def test_peer_list_is_short_but_the_count_is_all_of_them():
    peers = [
        PeerInfo(
            id=i,
            host="2001:db8::1" if i == 1 else f"10.0.0.{i}",
            port=8333,
            direction=Direction.OUTBOUND,
            node_id=bytes(33),
            services=1,
            models=(),
            user_agent=f"/agent:{i}/",
            protocol_version=1,
            best_height=100 + i,
            latency=0.0123456789 if i == 1 else None,
            bytes_sent=0,
            bytes_received=0,
            connected_since=0.0,
        )
        for i in range(1, PEERS_LISTED + 3)
    ]
    listed = peers_json(peers)
    assert listed["count"] == PEERS_LISTED + 2
    assert [peer["subver"] for peer in listed["list"]] == [f"/agent:{i}/" for i in range(1, PEERS_LISTED + 1)]
    assert listed["list"][0] == {
        "addr": "[2001:db8::1]:8333",
        "inbound": False,
        "subver": "/agent:1/",
        "bestheight": 101,
        "pingtime": 0.012346,
    }
    assert listed["list"][1]["addr"] == "10.0.0.2:8333" and listed["list"][1]["pingtime"] is None


async def test_status_json_counts_the_mempool(tmp_path):
    async with rpc_harness(tmp_path) as rpc, status_server(rpc) as base:
        hashes = await rpc.call("generatetoaddress", 101, ADDRESS)  # the first coinbase matures at height 101
        first = Block.from_bytes(bytes.fromhex(await rpc.call("getblock", hashes[0], 0)))
        tx = pay(coinbase_spendable(first, KEY), make_key(8))
        await rpc.call("sendrawtransaction", tx.to_bytes().hex())
        status = await status_json(rpc.session, base)
    assert status["mempool"] == {"count": 1, "bytes": len(tx.to_bytes())}


async def test_status_json_during_warmup_says_so(tmp_path):
    async with rpc_harness(tmp_path, warm=False) as rpc, status_server(rpc) as base:
        status = await status_json(rpc.session, base)
    assert status == {"ready": False, "network": "regtest", "warmup": rpc.context.warmup_status}


async def test_page_needs_no_credentials_but_json_rpc_still_does(tmp_path):
    async with rpc_harness(tmp_path) as rpc, status_server(rpc) as base:
        status, page, headers = await get(rpc.session, base + "/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        for asset in ("/status.js", "/status.css"):
            assert (await get(rpc.session, base + asset))[0] == 200
        async with rpc.session.post(base + "/", data='{"id": 1, "method": "stop"}') as response:
            assert response.status == 401
        async with rpc.session.put(base + "/") as response:
            assert response.status == 405
    assert page == PAGE_HTML


def test_page_runs_no_inline_script_and_never_parses_data_as_html():
    assert re.findall(r"<script[^>]*>", PAGE_HTML) == ['<script src="status.js" defer>']
    assert "innerHTML" not in PAGE_JS and "insertAdjacentHTML" not in PAGE_JS and "document.write" not in PAGE_JS


async def test_without_the_status_page_get_is_refused(tmp_path):
    async with rpc_harness(tmp_path) as rpc, status_server(rpc, status_page=False) as base:
        assert (await get(rpc.session, base + "/status.json"))[0] == 404
        assert (await get(rpc.session, base + "/status.js"))[0] == 404
        status, text, _ = await get(rpc.session, base + "/")
    assert (status, text) == (405, "JSONRPC server handles only POST requests\n")


@pytest.mark.parametrize(
    ("flags", "conf_text", "expected"),
    [
        ({}, "", False),
        ({"nostatus": True}, "", True),
        ({}, "nostatus=1\n", True),
        ({}, "nostatus=1\n[regtest]\nnostatus=0\n", False),
    ],
)
def test_nostatus_comes_from_flag_or_conf(tmp_path: Path, flags, conf_text, expected):
    (tmp_path / "camelid.conf").write_text("regtest=1\n" + conf_text, encoding="utf-8")
    assert load_config(flags, tmp_path).nostatus is expected
