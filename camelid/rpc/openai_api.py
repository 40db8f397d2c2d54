"""An OpenAI-compatible API under /v1 on the RPC port, so OpenAI's clients buy verified completions unchanged.

    GET  /v1/models, /v1/models/{id}   the models this node holds (camelid.rpc.openai_models)
    POST /v1/completions               a prompt
    POST /v1/chat/completions          messages, rendered into one prompt by the model's chat template
                                       (camelid.compute.chat; the answer's camelid.chat_format says how)

The API key is the RPC password (or the cookie's), sent as `Authorization: Bearer <password>`; Basic auth
with the RPC credentials works too. Each request becomes one paid network job (the default wallet pays
`camelid_reward` coins; by default the market's estimate, as estimatejobreward, capped at
`camelid_max_reward`) and the answer comes only once the job's output is verified, with an extra
`camelid` member: job_id, verdict, state, history, paid_node, and for chat chat_format and the prompt
the messages became. With `"stream": true` the answer is Server-Sent Events in OpenAI's chunk format, but
the tokens still arrive only once verified: a job's output is delivered, and checked, whole. Usage counts
the prompt's tokens exactly and the completion's by re-tokenizing its text, so `completion_tokens` (and
`finish_reason`, "length" when it reaches max_tokens) can be off by a token or two for outputs whose text
does not round-trip.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from camelid.compute.chat import RenderedChat
from camelid.rpc import jsonenc
from camelid.rpc.auth import Credentials
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.methods.market import estimated_reward
from camelid.rpc.openai_answer import CHAT_KIND, COMPLETION_KIND, Answer
from camelid.rpc.openai_jobs import camelid_extra, job_id_hex, submit, verified_text, wait_for_verdict
from camelid.rpc.openai_models import ModelCatalog, OfferedModel
from camelid.rpc.openai_requests import (
    JobRequest,
    OpenAIError,
    invalid,
    parse_chat,
    parse_completion,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def bearer_matches(authorization: str | None, credentials: Credentials) -> bool:
    """True when `Authorization: Bearer <key>` carries the RPC password; compared in constant time."""
    if not authorization or not authorization.startswith("Bearer "):
        return False
    return hmac.compare_digest(authorization[7:].strip().encode(), credentials.password.encode())


def error_response(error: OpenAIError) -> web.Response:
    return web.json_response(error.body(), status=error.status, dumps=jsonenc.dumps)


class OpenAIAPI:
    """The /v1 routes over the node's job service; `add_routes` before the server starts."""

    def __init__(self, ctx: RPCContext, credentials: Credentials, auth_failure_delay: float) -> None:
        self._ctx = ctx
        self._credentials = credentials
        self._auth_failure_delay = auth_failure_delay
        self._catalog: ModelCatalog | None = None

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self._guarded(self._list_models))
        app.router.add_get("/v1/models/{model}", self._guarded(self._get_model))
        app.router.add_post("/v1/completions", self._guarded(self._completions))
        app.router.add_post("/v1/chat/completions", self._guarded(self._chat_completions))
        app.on_cleanup.append(self._close)

    async def _close(self, _app: web.Application) -> None:
        if self._catalog is not None:
            self._catalog.close()

    @property
    def catalog(self) -> ModelCatalog:
        if self._catalog is None:
            self._catalog = ModelCatalog(self._ctx.models)  # -28 until the model service runs
        return self._catalog

    def _guarded(self, handler: Handler) -> Handler:
        """Check the API key, and turn every failure into an OpenAI error body: no request crashes anything."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            authorization = request.headers.get("Authorization")
            if not (bearer_matches(authorization, self._credentials) or self._credentials.check_header(authorization)):
                log.warning("OpenAI API: incorrect API key from %s", request.remote)
                await asyncio.sleep(self._auth_failure_delay)
                message = "Incorrect API key provided: use the node's RPC password (or its cookie's) as the key"
                return error_response(OpenAIError(401, message, "invalid_request_error", None, "invalid_api_key"))
            try:
                return await handler(request)
            except OpenAIError as exc:
                return error_response(exc)
            except web.HTTPException:  # aiohttp's own answers, such as 413 for a body past the bound
                raise
            except RPCError as exc:
                status = 503 if exc.code == RPCErrorCode.IN_WARMUP else 500
                return error_response(OpenAIError(status, exc.message, "server_error"))
            except Exception as exc:  # a bug must not take the server down
                log.exception("OpenAI API: %s failed unexpectedly", request.path)
                return error_response(OpenAIError(500, f"internal error: {exc}", "server_error"))

        return guarded

    async def _list_models(self, request: web.Request) -> web.Response:
        models = [model.to_json() for model in await self.catalog.offered()]
        return web.json_response({"object": "list", "data": models}, dumps=jsonenc.dumps)

    async def _get_model(self, request: web.Request) -> web.Response:
        model = await self.catalog.resolve(request.match_info["model"])
        return web.json_response(model.to_json(), dumps=jsonenc.dumps)

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        job = parse_completion(await _json_body(request))
        return await self._answer(request, job, COMPLETION_KIND, "cmpl")

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        job = parse_chat(await _json_body(request))
        return await self._answer(request, job, CHAT_KIND, "chatcmpl")

    async def _answer(self, request: web.Request, job: JobRequest, kind: str, id_prefix: str) -> web.StreamResponse:
        jobs = self._ctx.jobs
        model = await self.catalog.resolve(job.model)
        chat = model.render_chat(job.messages) if job.chat else None
        prompt = chat.prompt if chat is not None else job.prompt
        reward = job.reward
        if reward is None:
            reward = estimated_reward(self._ctx, model.model_id, job.max_tokens, job.max_reward)
        job_id = await submit(jobs, prompt, job.max_tokens, model.model_id, job.seed, job.temperature_milli, reward)
        log.info("OpenAI API: %s request is job %s", kind, job_id_hex(job_id))
        info = await wait_for_verdict(jobs, job_id)
        text = verified_text(info)
        prompt_tokens, completion_tokens = await asyncio.to_thread(_token_counts, model, prompt, text, job.max_tokens)
        answer = Answer(
            id=f"{id_prefix}-{info['jobid']}",
            kind=kind,
            created=info["timestamp"],
            model=model.id_hex,
            text=text,
            finish_reason="length" if completion_tokens >= job.max_tokens else "stop",
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
            camelid=camelid_extra(info) | _chat_extra(chat),
        )
        if job.stream:
            return await _stream(request, answer)
        return web.json_response(answer.body(), dumps=jsonenc.dumps)


def _chat_extra(chat: RenderedChat | None) -> dict[str, Any]:
    """What a chat answer adds to `camelid`: how its messages became the job's prompt, and that prompt."""
    return {} if chat is None else {"chat_format": chat.chat_format, "prompt": chat.prompt}


def _token_counts(model: OfferedModel, prompt: str, text: str, max_tokens: int) -> tuple[int, int]:
    """(prompt tokens as the job counted them, completion tokens re-counted from the text, at most max_tokens)."""
    return model.vocab.count_tokens(prompt, True), min(model.vocab.count_tokens(text, False), max_tokens)


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read(), parse_constant=_reject_constant)
    except ValueError as exc:  # also UnicodeDecodeError
        raise invalid(None, f"the request body is not valid JSON: {exc}") from None


async def _stream(request: web.Request, answer: Answer) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    for chunk in answer.chunks():
        await response.write(f"data: {jsonenc.dumps(chunk)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response
