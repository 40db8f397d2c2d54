"""Task RPCs: one goal broken into a tree of paid, verified jobs computed in parallel (whitepaper 5.4,
camelid.node.tasks). Task ids are 32 hex digits; the jobs in a task's tree are shown as getjob shows them."""

from __future__ import annotations

from typing import Any

from camelid.compute.model_store import parse_model_id
from camelid.core.job import MAX_JOB_TOKENS
from camelid.node.tasks import TaskParams
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.jsonenc import amount
from camelid.rpc.methods.jobs import default_model, parse_id, submit_errors
from camelid.rpc.methods.wallet import parse_amount
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()

CATEGORY = "Tasks"
DEFAULTS = {"depth": 2, "fanout": 3, "max_tokens": 64, "reward_per_job": "0.01"}
TASK_ID = Param("id", ("string",), "the task id (32 hex digits, as submittask returned it)")


def _task_id(text: str) -> bytes:
    return parse_id(text, 16, "task id")


def _integer(options: dict[str, Any], name: str) -> int:
    value = options.get(name, DEFAULTS[name])
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise RPCError(RPCErrorCode.TYPE_ERROR, f"{name} must be an integer, got {value!r}")
    return int(value)


def _task_params(ctx: RPCContext, options: dict[str, Any]) -> TaskParams:
    """TaskParams from submittask's options object; an RPC error naming the first bad or unknown option."""
    unknown = sorted(set(options) - {*DEFAULTS, "max_total_reward", "model"})
    if unknown:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"unknown option(s): {', '.join(unknown)}")
    depth, fanout, max_tokens = (_integer(options, name) for name in ("depth", "fanout", "max_tokens"))
    if not 1 <= max_tokens <= MAX_JOB_TOKENS:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"max_tokens must be 1..{MAX_JOB_TOKENS}, got {max_tokens}")
    reward = parse_amount(options.get("reward_per_job", DEFAULTS["reward_per_job"]), "reward_per_job")
    cap = options.get("max_total_reward")
    cap_units = 0 if cap is None else parse_amount(cap, "max_total_reward")  # 0: TaskParams takes the worst case
    if cap is not None and cap_units == 0:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, "max_total_reward must be positive")
    try:
        model = options.get("model")
        model_id = default_model(ctx) if model is None else parse_model_id(str(model))
        return TaskParams(depth, fanout, max_tokens, reward, model_id, cap_units)
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, str(exc)) from None


@METHODS.method(
    CATEGORY,
    Param("goal", ("string",), "what the task should produce"),
    Param(
        "options",
        ("object",),
        "depth (0..3, default 2), fanout (1..8, default 3), max_tokens per job (default 64), reward_per_job "
        "(coins, default 0.01), max_total_reward (coins, default: the worst case, every node listing fanout "
        "subtasks), model (default: one this node or a peer serves)",
        False,
        None,
    ),
)
async def submittask(ctx: RPCContext, goal: str, options: dict[str, Any] | None) -> str:
    """Break GOAL into a tree of paid, verified jobs computed in parallel; returns the task id. Follow it with
    gettask. The root's outline job is funded before this returns; the rest of the tree grows as jobs verify."""
    params = _task_params(ctx, options or {})
    with submit_errors():
        task_id = await ctx.tasks.submit(goal, params)
    return task_id.hex()


@METHODS.method(CATEGORY, TASK_ID)
async def gettask(ctx: RPCContext, id: str) -> dict[str, Any]:
    """A task: its parameters, state (running, done, cancelled), jobs and reward committed (coins), its tree (each
    node's subtask, job id, state, verdict and text) and, once finished, the assembled document."""
    info = ctx.tasks.info(_task_id(id))
    if info is None:
        raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, f"task {id} is not known to this node")
    return info | {key: amount(info[key]) for key in ("reward_per_job", "max_total_reward", "reward_committed")}


@METHODS.method(CATEGORY)
async def listtasks(ctx: RPCContext) -> list[dict[str, Any]]:
    """The tasks this node runs or ran since it started: id, goal, state."""
    return ctx.tasks.list_tasks()


@METHODS.method(CATEGORY, TASK_ID)
async def canceltask(ctx: RPCContext, id: str) -> dict[str, int]:
    """Stop a task: no more subtasks are submitted and its jobs not yet paid are cancelled (a paid job runs to
    its verdict). Returns how many jobs were cancelled."""
    try:
        return {"cancelled_jobs": ctx.tasks.cancel(_task_id(id))}
    except KeyError:
        raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, f"task {id} is not known to this node") from None
