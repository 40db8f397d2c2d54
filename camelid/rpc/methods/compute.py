"""Compute RPCs: the llama.cpp workers that run this node's models (docs/operations.md, "Compute workers")."""

from __future__ import annotations

from typing import Any

from camelid.rpc.context import RPCContext
from camelid.rpc.registry import MethodRegistry

METHODS = MethodRegistry()


@METHODS.method("Compute")
async def getcomputeinfo(ctx: RPCContext) -> dict[str, Any]:
    """Per model: its worker's state, pid, restarts, last error and llama.cpp build; this CPU's features; and
    the compute policy (the jobs this node takes: timelock, t0 range, stake limits, confirmations) with the
    stake it has locked now."""
    return {**ctx.compute.info(), "policy": ctx.jobs.compute_policy()}
