"""The RPC method table: names, parameter specs, argument binding and help text.

Every method declares its parameters once; `bind` checks a request's positional
or named arguments against them, as Bitcoin Core's RPCHelpMan does, so handlers
receive values of the declared JSON types and never validate shapes themselves.
Wrong arity gives -1 with the method's usage line, a wrong type -3, an unknown or
duplicated named argument -8.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

from camelid.rpc.errors import RPCError, RPCErrorCode

# JSON type names as Bitcoin Core prints them in type errors.
JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "array": (list,),
}


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    for name, types in JSON_TYPES.items():
        if isinstance(value, types):
            return name
    return type(value).__name__


@dataclass(frozen=True)
class Param:
    """One argument: its name, the JSON types it accepts, and its default when optional."""

    name: str
    types: tuple[str, ...]
    help: str
    required: bool = True
    default: Any = None
    integer: bool = False  # a "number" that must be whole

    def check(self, value: Any) -> Any:
        actual = json_type_name(value)
        if actual not in self.types:
            expected = " or ".join(self.types)
            raise RPCError(
                RPCErrorCode.TYPE_ERROR,
                f"JSON value of type {actual} for {self.name} is not of expected type {expected}",
            )
        if self.integer and isinstance(value, float):
            if not value.is_integer():
                raise RPCError(RPCErrorCode.TYPE_ERROR, f"{self.name} must be an integer, got {value}")
            value = int(value)
        return value


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Method:
    name: str
    category: str
    params: tuple[Param, ...]
    handler: Handler
    summary: str  # first docstring line
    description: str  # the whole docstring
    during_warmup: bool  # callable while the chain state is still loading

    @property
    def usage(self) -> str:
        args = " ".join(f'"{p.name}"' if p.required else f'( "{p.name}" )' for p in self.params)
        return f"{self.name} {args}".rstrip()

    def help_text(self) -> str:
        lines = [self.usage, "", self.description, ""]
        if self.params:
            lines.append("Arguments:")
            for i, p in enumerate(self.params, start=1):
                need = "required" if p.required else f"optional, default={p.default!r}"
                lines.append(f"{i}. {p.name}  ({'|'.join(p.types)}, {need}) {p.help}")
        return "\n".join(lines).rstrip()

    def bind(self, params: list[Any] | dict[str, Any] | None) -> list[Any]:
        """Arguments in declaration order, defaults filled in; RPCError for anything wrong."""
        if params is None:
            params = []
        if isinstance(params, dict):
            params = dict(params)
            positional = list(params.pop("args", [])) if isinstance(params.get("args"), list) else []
            names = {p.name for p in self.params}
            for key in params:
                if key not in names:
                    raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"Unknown named parameter {key}")
            for p in self.params[: len(positional)]:
                if p.name in params:
                    raise RPCError(
                        RPCErrorCode.INVALID_PARAMETER,
                        f"Parameter {p.name} specified twice both as positional and named argument",
                    )
            values: list[Any] = positional + [params.get(p.name) for p in self.params[len(positional) :]]
        else:
            values = list(params)
        if len(values) > len(self.params):
            raise RPCError(RPCErrorCode.MISC_ERROR, f"too many arguments ({len(values)}); usage: {self.usage}")
        values += [None] * (len(self.params) - len(values))
        bound = []
        for p, value in zip(self.params, values, strict=True):
            if value is None:
                if p.required:
                    raise RPCError(RPCErrorCode.MISC_ERROR, f"missing argument {p.name}; usage: {self.usage}")
                bound.append(p.default)
            else:
                bound.append(p.check(value))
        return bound


class MethodRegistry:
    """Name -> Method, filled by the `method` decorator.

    Each module of camelid.rpc.methods fills its own; camelid.rpc.methods.build_registry
    merges them into the one table the server answers from.
    """

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def method(self, category: str, *params: Param, during_warmup: bool = False) -> Callable[[Handler], Handler]:
        """Register `async def name(ctx, *args)` as RPC method `name` taking `params`."""

        def register(handler: Handler) -> Handler:
            doc = (handler.__doc__ or "").strip()
            summary = doc.splitlines()[0] if doc else ""
            self.add(Method(handler.__name__, category, params, handler, summary, doc, during_warmup))
            return handler

        return register

    def add(self, method: Method) -> None:
        if method.name in self._methods:
            raise ValueError(f"RPC method {method.name} registered twice")
        self._methods[method.name] = method

    def include(self, other: MethodRegistry) -> None:
        """Add every method of `other`; ValueError if a name is already taken."""
        for method in other:
            self.add(method)

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __iter__(self) -> Iterator[Method]:
        return iter(sorted(self._methods.values(), key=lambda m: (m.category, m.name)))
