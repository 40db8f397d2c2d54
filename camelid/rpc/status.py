"""The node's status page: GET / on the RPC port, a small HTML page that polls GET /status.json.

Authentication: the page and status.json are served WITHOUT credentials. The
JSON-RPC interface needs them because it can spend from wallets and stop the
node; these two paths only read, and nothing on them changes state. What they
show is the chain tip, mempool size and peer list (which any peer can largely
learn over P2P) plus whether this node mines and its hash rate. They listen
where the RPC server does, on rpcbind (127.0.0.1 unless the operator widens it),
and requiring Basic auth would make the page unusable with the default cookie
credentials (a 64-hex-digit password typed into a browser prompt). A web page
cannot read them through DNS rebinding: camelid.rpc.http_guard answers them only
to a Host header naming an IP, localhost or an --rpcallowhost name. An operator
who binds RPC to a public address and does not want this visible turns them off
with --nostatus.

Every response carries a Content-Security-Policy allowing only the page's own
script, style and status.json: no inline script runs, and the script inserts
peer-controlled strings (user agents) with textContent, never as HTML.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from camelid.chain.chainstate import ChainState
from camelid.core.serialize import hash_to_hex, hex_to_hash
from camelid.p2p.peer import Direction, PeerInfo
from camelid.rpc import jsonenc
from camelid.rpc.context import RPCContext
from camelid.rpc.status_charts import block_intervals, charts
from camelid.rpc.status_page import PAGE_CSS, PAGE_HTML, PAGE_JS

if TYPE_CHECKING:
    from camelid.node.jobs import JobService

PEERS_LISTED = 8  # the page is a glance, not getpeerinfo
JOBS_LISTED = 10  # the most recent jobs shown with their states and verdicts
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


async def status_snapshot(ctx: RPCContext) -> dict[str, Any]:
    """What status.json serves: tip, peers, mempool, mining, models served, the job pool's state, and the
    charts' series (camelid.rpc.status_charts).

    `peers` and `models` are null when the node runs no P2P or model service, rather than an empty list
    that would claim there are none.
    """
    if ctx.warming_up:
        return {"ready": False, "network": ctx.params.name, "warmup": ctx.warmup_status}
    chain = ctx.chain

    def read(chainstate: ChainState) -> dict[str, Any]:
        tip, mempool = chainstate.tip, chain.mempool.info()
        return {
            "tip": {"height": tip.height, "hash": hash_to_hex(tip.hash), "time": tip.header.time},
            "mempool": {"count": mempool["size"], "bytes": mempool["bytes"]},
            "intervals": block_intervals(tip),
        }

    snapshot: dict[str, Any] = {"ready": True, "network": ctx.params.name}
    snapshot.update(await chain.call(read, chain.chainstate))
    records = None if ctx.job_service is None else ctx.job_service.pool.jobs()
    snapshot["charts"] = charts(snapshot.pop("intervals"), records, time.time())
    snapshot["peers"] = None if ctx.p2p_service is None else peers_json(ctx.p2p_service.manager.peers())
    snapshot["mining"] = {"mining": ctx.mining, "hashps": ctx.miner.hashrate}
    snapshot["models"] = None if ctx.model_service is None else _served_models(ctx.model_service.list_models())
    snapshot["compute"] = None if ctx.compute_service is None else ctx.compute_service.info()
    snapshot["jobs"] = None if ctx.job_service is None else jobs_json(ctx.job_service)
    return snapshot


def _served_models(models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The models this node holds, all of which it serves; no file paths, since this page needs no credentials."""
    return [
        {"id": model["id"], "name": model["name"], "size": model["size"]}
        for model in models
        if model["status"] == "complete"
    ]


def jobs_json(jobs: JobService) -> dict[str, Any]:
    """Counts by state and the most recent jobs with their verdicts; never a completion's text, which
    belongs to the client that paid for it and this page needs no credentials."""
    listed = jobs.list_jobs()
    by_state: dict[str, int] = {}
    for job in listed:
        by_state[job["state"]] = by_state.get(job["state"], 0) + 1
    recent = []
    for job in listed[-JOBS_LISTED:][::-1]:
        info = jobs.job_info(hex_to_hash(job["jobid"])) or {}
        recent.append({**job, "verdict": info.get("verdict")})
    return {"count": len(listed), "by_state": by_state, "recent": recent}


def peers_json(peers: list[PeerInfo]) -> dict[str, Any]:
    """The peer count and the first PEERS_LISTED peers, in getpeerinfo's field names."""
    listed = [
        {
            "addr": f"[{peer.host}]:{peer.port}" if ":" in peer.host else f"{peer.host}:{peer.port}",
            "inbound": peer.direction is Direction.INBOUND,
            "subver": peer.user_agent,
            "bestheight": peer.best_height,
            "pingtime": None if peer.latency is None else round(peer.latency, 6),
        }
        for peer in peers[:PEERS_LISTED]
    ]
    return {"count": len(peers), "list": listed}


def add_status_routes(router: web.UrlDispatcher, ctx: RPCContext) -> None:
    """Serve the page and status.json on `router`; register before any catch-all route for "/"."""

    def static(body: str, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS)

        return handler

    async def status_json(request: web.Request) -> web.Response:
        body = jsonenc.dumps(await status_snapshot(ctx)) + "\n"
        return web.Response(text=body, content_type="application/json", headers=SECURITY_HEADERS)

    router.add_get("/", static(PAGE_HTML, "text/html"))
    router.add_get("/status.js", static(PAGE_JS, "text/javascript"))
    router.add_get("/status.css", static(PAGE_CSS, "text/css"))
    router.add_get("/status.json", status_json)
