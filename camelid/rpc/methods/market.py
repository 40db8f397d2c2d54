"""Market RPCs: what a job is likely to cost, read from the prices providers announce and settled jobs'
rewards (camelid.node.jobs.market). submitjob and the /v1 API offer this estimate unless told a reward."""

from __future__ import annotations

from typing import Any

from camelid.compute.model_store import parse_model_id
from camelid.core.job import MAX_JOB_TOKENS
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.jsonenc import amount
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()


def estimated_reward(ctx: RPCContext, model_id: bytes, max_tokens: int, max_reward: int | None) -> int:
    """The market's estimate for the job, capped at the caller's `max_reward` (base units)."""
    reward = ctx.jobs.market.estimate(model_id, max_tokens)["reward"]
    return reward if max_reward is None else min(reward, max_reward)


@METHODS.method(
    "Jobs",
    Param("model", ("string",), "model id (64 hex digits)"),
    Param("max_tokens", ("number",), f"most output tokens of the job (1..{MAX_JOB_TOKENS})", integer=True),
)
async def estimatejobreward(ctx: RPCContext, model: str, max_tokens: int) -> dict[str, Any]:
    """A reward (coins) a job of max_tokens on the model is likely to be taken for, and the data behind it.

    `basis` says which rate set it: "announced" (the median price, per 1,000 output tokens, that connected
    providers announce), "settled" (the median PAYOUT per 1,000 max_tokens of the model's jobs paid in the
    last day) or "fallback" (neither known: 1 coin). Rates are coins per 1,000 output tokens.
    """
    try:
        model_id = parse_model_id(model)
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, str(exc)) from None
    if not 1 <= max_tokens <= MAX_JOB_TOKENS:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"max_tokens must be 1..{MAX_JOB_TOKENS}, got {max_tokens}")
    estimate = ctx.jobs.market.estimate(model_id, max_tokens)
    return market_json(estimate)


def market_json(estimate: dict[str, Any]) -> dict[str, Any]:
    """An estimate (camelid.node.jobs.market.Market.estimate) with its amounts and rates in coins."""

    def rate(value: float | None) -> Any:
        return None if value is None else amount(round(value))

    return {
        "reward": amount(estimate["reward"]),
        "basis": estimate["basis"],
        "announced_rate": rate(estimate["announced_rate"]),
        "settled_rate": rate(estimate["settled_rate"]),
        "providers": {node: amount(price) for node, price in estimate["providers"].items()},
        "settled_jobs": estimate["settled_jobs"],
    }
