"""Compute RPCs: the llama.cpp workers that run this node's models (docs/operations.md, "Compute workers")."""

from __future__ import annotations

from typing import Any

from camelid.rpc.context import RPCContext
from camelid.rpc.jsonenc import amount
from camelid.rpc.registry import MethodRegistry

METHODS = MethodRegistry()


@METHODS.method("Compute")
async def getcomputeinfo(ctx: RPCContext) -> dict[str, Any]:
    """Per model: its worker's state, pid, restarts, last error and llama.cpp build; this CPU's features; the
    compute policy (the jobs this node takes: timelock, t0 range, stake limits, confirmations, prices) with
    the stake it has locked now; and the market: its price in coins per 1,000 output tokens (and per model),
    jobs taken and declined by reason since start, tokens computed, coins earned, coins staked now."""
    policy = ctx.jobs.compute_policy()
    stats = ctx.jobs.compute_stats()
    market = {
        "price": amount(policy["min_price"]),
        "model_prices": {model: amount(price) for model, price in policy["model_prices"].items()},
        "taken": stats["taken"],
        "declined": stats["declined"],
        "tokens_computed": stats["tokens_computed"],
        "earned": amount(stats["earned"]),
        "staked": amount(stats["staked"]),
    }
    return {**ctx.compute.info(), "policy": policy, "market": market}
