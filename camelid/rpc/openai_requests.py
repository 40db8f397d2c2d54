"""OpenAI request bodies read into job parameters, and OpenAI's error shape; no I/O, so all of it is unit-tested.

A request becomes one network job, so only what a job can do is accepted: one prompt, one choice, a token
limit, a temperature and a seed. Parameters a job cannot honour (stop strings, logprobs, n > 1, tools...)
are refused with a 400 naming them rather than silently ignored, since the caller would get an answer that
does not mean what they asked for.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from camelid.core.job import MAX_JOB_TOKENS, MAX_TEMPERATURE_MILLI
from camelid.rpc.errors import RPCError
from camelid.rpc.methods.wallet import parse_amount

DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default for /v1/completions
DEFAULT_CHAT_TOKENS = 128  # OpenAI lets a chat run to the context's end; a paid, verified job needs a bound
DEFAULT_TEMPERATURE = 1.0  # OpenAI's default
CHAT_ROLES = ("system", "developer", "user", "assistant")
SEED_BITS = 32

# Parameters no job can honour, each with the value that means "not used" (OpenAI's default).
UNSUPPORTED_UNLESS = {
    "n": 1,
    "best_of": 1,
    "echo": False,
    "stop": None,
    "suffix": None,
    "logprobs": None,
    "top_logprobs": None,
    "logit_bias": None,
    "tools": None,
    "tool_choice": None,
    "functions": None,
    "function_call": None,
    "response_format": None,
    "top_p": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
}


class OpenAIError(Exception):
    """An error answered as OpenAI does: an HTTP status and `{"error": {message, type, param, code}}`."""

    def __init__(
        self,
        status: int,
        message: str,
        error_type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.error_type, "param": self.param, "code": self.code}}


def invalid(param: str | None, message: str) -> OpenAIError:
    """A 400 for a request the caller must change."""
    return OpenAIError(400, message, param=param, code="invalid_value" if param else None)


@dataclass(frozen=True)
class JobRequest:
    """What one completion or chat request asks the network for; `prompt` is None for chat until rendered."""

    model: str
    max_tokens: int
    temperature_milli: int
    seed: int
    reward: int | None  # base units; None: the market's estimate (estimatejobreward), capped at max_reward
    max_reward: int | None  # base units; the body's camelid_max_reward
    stream: bool
    prompt: str | None = None
    messages: tuple[tuple[str, str], ...] = ()

    @property
    def chat(self) -> bool:
        return self.prompt is None


def parse_completion(body: Any, random_seed: Callable[[], int] | None = None) -> JobRequest:
    """A POST /v1/completions body; OpenAIError (400) naming the first bad parameter."""
    fields = _common(body, DEFAULT_COMPLETION_TOKENS, random_seed)
    return JobRequest(prompt=_prompt(body.get("prompt")), **fields)


def parse_chat(body: Any, random_seed: Callable[[], int] | None = None) -> JobRequest:
    """A POST /v1/chat/completions body; OpenAIError (400) naming the first bad parameter."""
    fields = _common(body, DEFAULT_CHAT_TOKENS, random_seed)
    if body.get("max_tokens") is None and body.get("max_completion_tokens") is not None:
        fields["max_tokens"] = _max_tokens(body["max_completion_tokens"], "max_completion_tokens")
    return JobRequest(messages=_messages(body.get("messages")), **fields)


def _common(body: Any, default_tokens: int, random_seed: Callable[[], int] | None) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid(None, "the request body must be a JSON object")
    for name, unused in UNSUPPORTED_UNLESS.items():
        if body.get(name, unused) not in (unused, None):
            raise invalid(name, f"{name} is not supported: a job produces one completion of max_tokens tokens")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model", "model must be a non-empty string (a model id, its name, or a name such as 'default')")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise invalid("stream", "stream must be true or false")
    max_tokens = body.get("max_tokens")
    return {
        "model": model,
        "max_tokens": default_tokens if max_tokens is None else _max_tokens(max_tokens, "max_tokens"),
        "temperature_milli": _temperature(body.get("temperature", DEFAULT_TEMPERATURE)),
        "seed": _seed(body.get("seed"), random_seed or (lambda: secrets.randbits(SEED_BITS))),
        "reward": None if body.get("camelid_reward") is None else _reward(body["camelid_reward"], "camelid_reward"),
        "max_reward": (
            None if body.get("camelid_max_reward") is None
            else _reward(body["camelid_max_reward"], "camelid_max_reward")
        ),
        "stream": stream,
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _max_tokens(value: Any, param: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_JOB_TOKENS:
        raise invalid(param, f"{param} must be an integer from 1 to {MAX_JOB_TOKENS}, got {value!r}")
    return value


def _temperature(value: Any) -> int:
    if value is None:
        value = DEFAULT_TEMPERATURE
    if not _is_number(value) or not 0 <= value <= MAX_TEMPERATURE_MILLI / 1000:
        raise invalid("temperature", f"temperature must be a number from 0 to 2, got {value!r}")
    return round(value * 1000)  # a job carries thousandths; finer digits cannot be honoured


def _seed(value: Any, random_seed: Callable[[], int]) -> int:
    if value is None:
        return random_seed()  # as OpenAI: without a seed, repeated requests may differ
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**64:
        raise invalid("seed", f"seed must be an integer from 0 to 2^64-1, got {value!r}")
    return value


def _reward(value: Any, param: str) -> int:
    if not (_is_number(value) or isinstance(value, str)):
        raise invalid(param, f"{param} must be an amount in coins, got {value!r}")
    try:
        amount = parse_amount(value, param)
    except RPCError as exc:
        raise invalid(param, exc.message) from None
    if amount <= 0:
        raise invalid(param, f"{param} must be positive")
    return amount


def _prompt(value: Any) -> str:
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, str):
        raise invalid("prompt", "prompt must be a string or a list of one string (token arrays are not supported)")
    return value


def _messages(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list) or not value:
        raise invalid("messages", "messages must be a non-empty array of {role, content} objects")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
            raise invalid(f"messages[{i}].role", f"messages[{i}].role must be one of {', '.join(CHAT_ROLES)}")
        out.append((message["role"], _content(message.get("content"), i)))
    return tuple(out)


def _content(value: Any, index: int) -> str:
    """A message's text: a string, or an array of text parts (the only kind of part a text model reads)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str) for part in value
    ):
        return "".join(part["text"] for part in value)
    raise invalid(f"messages[{index}].content", f"messages[{index}].content must be a string or an array of text parts")
