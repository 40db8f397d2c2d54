"""Job RPCs: submit a paid completion to the network, follow it, and list the jobs this node has seen.

Job IDs are shown like txids (byte-reversed hex). A job's history lists every state it reached with
the time (UNIX seconds, float) this node saw it reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from typing import Any

from camelid.chain.errors import TxRejected
from camelid.compute.model_store import parse_model_id
from camelid.core.job import MAX_JOB_TOKENS, MAX_TEMPERATURE_MILLI
from camelid.node.job_outcome import stopped_waiting, wake_by
from camelid.node.jobs import DEFAULT_TIMELOCK
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.methods.market import estimated_reward
from camelid.rpc.methods.wallet import parse_amount
from camelid.rpc.registry import MethodRegistry, Param
from camelid.wallet.errors import WalletError

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

CATEGORY = "Jobs"
MAX_WAIT = 60
"""waitforjob's longest wait, under the RPC client's HTTP timeout."""
JOB_ID = Param("id", ("string",), "the job id (64 hex digits, as submitjob returned it)")


def parse_id(text: str, size: int, what: str) -> bytes:
    """`size` bytes from hex digits (a job or task id argument); -8 naming `what` otherwise."""
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"{what} must be {2 * size} hex digits, got {text!r}")
    return raw


def _job_id(text: str) -> bytes:
    return parse_id(text, 32, "job id")[::-1]


@contextlib.contextmanager
def submit_errors() -> Iterator[None]:
    """What submitting a job can refuse (the wallet, the escrow, the job's limits) as the RPC error to answer."""
    try:
        yield
    except WalletError as exc:
        raise RPCError(exc.code, exc.message) from None
    except TxRejected as exc:
        raise RPCError(RPCErrorCode.VERIFY_REJECTED, str(exc)) from None
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, str(exc)) from None


def default_model(ctx: RPCContext) -> bytes:
    """A model we hold, else one a peer serves: what a job names when the caller names none."""
    held = ctx.models.announced()
    if held:
        return held[0]
    for peer in ctx.p2p.manager.peers():
        if peer.models:
            return peer.models[0]
    raise RPCError(RPCErrorCode.INVALID_PARAMETER, "no model given, and neither this node nor a peer serves one")


@METHODS.method(
    CATEGORY,
    Param("prompt", ("string",), "the prompt text"),
    Param("max_tokens", ("number",), f"most output tokens to generate (1..{MAX_JOB_TOKENS})", integer=True),
    Param("model", ("string",), "model id; default: one this node or a peer serves", False, None),
    Param("seed", ("number",), "sampling seed", False, 0, integer=True),
    Param("temperature", ("number",), "sampling temperature, 0 for greedy (0..2, in thousandths)", False, 0),
    Param(
        "reward",
        ("number", "string"),
        "coins paid to the node that computes it; default: estimatejobreward's, capped at max_reward",
        False,
        None,
    ),
    Param("timelock", ("number",), "seconds the node has to deliver", False, DEFAULT_TIMELOCK, integer=True),
    Param("verify", ("string",), "RASTiC on the delivery: full (every position), spot or off", False, "full"),
    Param("max_reward", ("number", "string"), "most coins the default reward may be", False, None),
)
async def submitjob(
    ctx: RPCContext,
    prompt: str,
    max_tokens: int,
    model: str | None,
    seed: int,
    temperature: float,
    reward: int | float | str | None,
    timelock: int,
    verify: str,
    max_reward: int | float | str | None,
) -> str:
    """Fund an escrow with the wallet and publish the job; returns its job id. Follow it with getjob."""
    try:
        model_id = default_model(ctx) if model is None else parse_model_id(model)
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, str(exc)) from None
    temperature_milli = round(temperature * 1000)
    if not 0 <= temperature_milli <= MAX_TEMPERATURE_MILLI or abs(temperature * 1000 - temperature_milli) > 1e-6:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"temperature must be 0..2 in steps of 0.001, got {temperature}")
    if reward is None:
        cap = None if max_reward is None else parse_amount(max_reward, "max_reward")
        amount = estimated_reward(ctx, model_id, max_tokens, cap)
    else:
        amount = parse_amount(reward, "reward")
    if amount <= 0:
        raise RPCError(RPCErrorCode.TYPE_ERROR, "reward must be positive")
    with submit_errors():
        job_id = await ctx.jobs.submit(prompt, max_tokens, model_id, seed, temperature_milli, amount, timelock, verify)
    return job_id[::-1].hex()


@METHODS.method(CATEGORY, JOB_ID)
async def getjob(ctx: RPCContext, id: str) -> dict[str, Any]:
    """A job: parameters, state, history with times, accepts and testaments; for our own jobs the verdict and text."""
    info = ctx.jobs.job_info(_job_id(id))
    if info is None:
        raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, f"job {id} is not in the job pool")
    return info


@METHODS.method(
    CATEGORY,
    JOB_ID,
    Param("states", ("number",), "history entries the caller has seen already", False, 0, integer=True),
    Param("timeout", ("number",), f"seconds to wait at most (0..{MAX_WAIT})", False, MAX_WAIT),
)
async def waitforjob(ctx: RPCContext, id: str, states: int, timeout: int | float) -> dict[str, Any]:
    """getjob once the job has more than `states` history entries, has a verdict or has ended, or after `timeout`.

    A long poll on the job's JobChanged events: camelid-cli complete follows a job with it.
    """
    job_id = _job_id(id)
    if not 0 <= timeout <= MAX_WAIT:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"timeout must be 0..{MAX_WAIT} seconds, got {timeout}")
    deadline = time.monotonic() + timeout
    async with ctx.jobs.watch(job_id) as changed:
        while True:
            changed.clear()
            info = await getjob(ctx, id)
            left = deadline - time.monotonic()
            if len(info["history"]) > states or stopped_waiting(info) or left <= 0:
                return info
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), wake_by(info, left, time.time()))


@METHODS.method(CATEGORY)
async def listjobs(ctx: RPCContext) -> list[dict[str, Any]]:
    """Every job in the pool, oldest first: id, state, model, and this node's role (client, compute, observer)."""
    return ctx.jobs.list_jobs()


@METHODS.method(CATEGORY, JOB_ID)
async def canceljob(ctx: RPCContext, id: str) -> None:
    """Stop one of our jobs before it is paid: no testament will be paid (the escrow refund comes later)."""
    try:
        ctx.jobs.cancel(_job_id(id))
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, str(exc)) from None
