"""Model RPCs: the models a node holds or is fetching from peers (whitepaper 2.6.1).

A model is named by its id, 64 hex digits committing to its sizes, chunk hashes and metadata
(camelid.compute.model_id).
"""

from __future__ import annotations

from typing import Any

from camelid.compute.model_store import parse_model_id
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.registry import MethodRegistry, Param

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

MODEL_ID = Param("id", ("string",), "the model id (64 hex digits)")


def _model_id(text: str) -> bytes:
    try:
        return parse_model_id(text)
    except ValueError as exc:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, str(exc)) from None


@METHODS.method("Models")
async def listmodels(ctx: RPCContext) -> list[dict[str, Any]]:
    """Every model held (status "complete") or being fetched (status "fetching"/"failed", with progress)."""
    return ctx.models.list_models()


@METHODS.method("Models", MODEL_ID)
async def getmodelinfo(ctx: RPCContext, id: str) -> dict[str, Any]:
    """One model: size, chunks and path when held; while fetching, chunks_done/chunks_total, bytes and peers."""
    info = ctx.models.model_info(_model_id(id))
    if info is None:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"model {id} is neither held nor being fetched")
    return info


@METHODS.method("Models", MODEL_ID)
async def fetchmodel(ctx: RPCContext, id: str) -> dict[str, Any]:
    """Start fetching a model from peers and return at once; poll getmodelinfo for progress."""
    model_id = _model_id(id)
    started = ctx.models.fetch(model_id)
    info = ctx.models.model_info(model_id)
    assert info is not None  # held, or the fetch just started
    return {"started": started, **info}


@METHODS.method("Models", MODEL_ID)
async def removemodel(ctx: RPCContext, id: str) -> None:
    """Stop serving a model and delete its file (stopping its fetch if one runs)."""
    if not await ctx.models.remove(_model_id(id)):
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"model {id} is neither held nor being fetched")
