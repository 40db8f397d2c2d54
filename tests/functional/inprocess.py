"""An RPC server and chain service in the test's own event loop, for fast protocol and method tests.

Everything is real -- LevelDB chain state in a temporary directory, the bus, the
miner, the aiohttp server on a free local port -- only the process boundary of
the functional framework is skipped.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from camelid.core.params import get_params
from camelid.node.bus import EventBus
from camelid.node.chain_service import ChainService
from camelid.node.miner import Miner
from camelid.regtest_network import free_port
from camelid.rpc.auth import Credentials
from camelid.rpc.client import JSONRPCError
from camelid.rpc.context import RPCContext
from camelid.rpc.methods import build_registry
from camelid.rpc.server import RPCServer

TEST_CREDENTIALS = Credentials("tester", "correct horse")


def basic_auth(creds: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{creds.user}:{creds.password}".encode()).decode()


@dataclass
class RPCHarness:
    server: RPCServer
    chain: ChainService
    context: RPCContext
    session: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/"

    async def post(self, body: str | bytes, authorization: str | None = None, method: str = "POST") -> tuple[int, Any]:
        """Send a raw body; (HTTP status, the JSON reply, or the text of a non-JSON one, or None when empty)."""
        headers = {"Authorization": authorization or basic_auth(TEST_CREDENTIALS)}
        async with self.session.request(method, self.url, data=body, headers=headers) as response:
            text = await response.text()
            if response.content_type == "application/json":
                return response.status, json.loads(text, parse_float=Decimal)
            return response.status, text or None

    async def call(self, method: str, *params: Any) -> Any:
        """The result of a JSON-RPC 1.0 call; JSONRPCError for an error reply."""
        _, reply = await self.post(json.dumps({"id": 1, "method": method, "params": list(params)}))
        if reply["error"] is not None:
            raise JSONRPCError(reply["error"]["code"], reply["error"]["message"])
        return reply["result"]


@asynccontextmanager
async def rpc_harness(datadir: Path, *, warm: bool = True) -> AsyncIterator[RPCHarness]:
    """A regtest chain in `datadir` behind an RPC server; with warm=False the server stays in warm-up."""
    params = get_params("regtest")
    bus = EventBus()
    context = RPCContext(params, bus, methods=build_registry())
    server = RPCServer(context, TEST_CREDENTIALS, "127.0.0.1", free_port())
    await server.start()
    chain = await ChainService.open(datadir / "chainstate", params, bus, mempool_bytes=10_000_000)
    miner = Miner(bus, chain, None, processes=1)
    if warm:
        context.finish_warmup(chain, miner)
    try:
        async with aiohttp.ClientSession() as session:
            yield RPCHarness(server, chain, context, session)
    finally:
        await server.stop()
        await miner.close()
        await chain.close()
        await bus.close()
