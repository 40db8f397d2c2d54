"""Strict msgpack schemas: every P2P payload is a map with exactly the keys its message declares.

A message is a frozen dataclass whose fields are declared with `wire(FieldType)`.
The payload is a msgpack map of those fields, keys in declaration order; a
nested record (an address, an inventory entry) is a msgpack array of its fields.
Decoding refuses anything the schema does not describe exactly: a missing,
extra or reordered key, a value of the wrong msgpack type (bool is not int, str
is not bin), a length or count out of bounds, and any encoding other than the
canonical one msgpack-python produces (shortest integers and lengths). The last
rule makes every message have exactly one byte form, so payloads can be hashed
and compared without ambiguity.

Every decoding failure is a ProtocolViolation("bad-payload: <command>.<field>: <why>").
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
from abc import ABC, abstractmethod
from functools import cache
from typing import Any, ClassVar, Self

import msgpack

from camelid.crypto.keys import PublicKey
from camelid.p2p.errors import ProtocolViolation

PRINTABLE_ASCII = frozenset(chr(c) for c in range(0x20, 0x7F))
COMMAND_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
MAX_TEXT_LEN = 256  # longest string any schema allows
MAX_ARRAY_LEN = 50_000  # longest list any schema allows (an inv)
MAX_MAP_LEN = 16  # most fields any message has
NODE_ID_SIZE = 33  # compressed secp256k1 public key


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


class Field(ABC):
    """One value of a payload: `decode` checks a msgpack value and returns the Python one, `encode` the reverse.

    Both raise ValueError naming the defect; Message turns that into a ProtocolViolation on decode.
    """

    @abstractmethod
    def encode(self, value: Any) -> Any: ...

    @abstractmethod
    def decode(self, raw: Any) -> Any: ...


class UInt(Field):
    """An unsigned integer below 2**bits (and at most `maximum`); msgpack booleans are not integers here."""

    def __init__(self, bits: int, maximum: int | None = None) -> None:
        self.maximum = (1 << bits) - 1 if maximum is None else maximum

    def decode(self, raw: Any) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= self.maximum:
            raise ValueError(f"expected an integer in 0-{self.maximum}, got {_describe(raw)}")
        return int(raw)

    encode = decode


class Choice(Field):
    """A member of an IntEnum, sent as its integer value; unknown values are refused."""

    def __init__(self, enum_type: type[enum.IntEnum]) -> None:
        self.enum_type = enum_type
        self._members = {int(member): member for member in enum_type}

    def encode(self, value: Any) -> int:
        if not isinstance(value, self.enum_type):
            raise ValueError(f"expected a {self.enum_type.__name__}, got {_describe(value)}")
        return int(value)

    def decode(self, raw: Any) -> enum.IntEnum:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(f"expected a {self.enum_type.__name__} number, got {_describe(raw)}")
        member = self._members.get(raw)
        if member is None:
            raise ValueError(f"unknown {self.enum_type.__name__} {raw}")
        return member


class Blob(Field):
    """Raw bytes (msgpack bin) of `min_len` to `max_len` bytes; one argument means an exact length."""

    def __init__(self, min_len: int, max_len: int | None = None) -> None:
        self.min_len = min_len
        self.max_len = min_len if max_len is None else max_len

    def decode(self, raw: Any) -> bytes:
        if not isinstance(raw, bytes | bytearray):
            raise ValueError(f"expected bin, got {_describe(raw)}")
        if not self.min_len <= len(raw) <= self.max_len:
            wanted = self.min_len if self.min_len == self.max_len else f"{self.min_len}-{self.max_len}"
            raise ValueError(f"expected {wanted} bytes, got {len(raw)}")
        return bytes(raw)

    encode = decode


class Text(Field):
    """A string of at most `max_len` characters drawn from `charset` (printable ASCII by default)."""

    def __init__(self, max_len: int, charset: frozenset[str] = PRINTABLE_ASCII, min_len: int = 0) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.charset = charset

    def decode(self, raw: Any) -> str:
        if not isinstance(raw, str):
            raise ValueError(f"expected str, got {_describe(raw)}")
        if not self.min_len <= len(raw) <= self.max_len:
            raise ValueError(f"expected {self.min_len}-{self.max_len} characters, got {len(raw)}")
        bad = set(raw) - self.charset
        if bad:
            raise ValueError(f"character {min(bad)!r} is not allowed")
        return raw

    encode = decode


class NodeId(Field):
    """A node identity: a 33-byte compressed secp256k1 public key that is a point on the curve."""

    def decode(self, raw: Any) -> bytes:
        data = Blob(NODE_ID_SIZE).decode(raw)
        PublicKey.from_bytes(data)  # ValueError unless 02/03 prefix and on the curve
        return data

    encode = decode


def canonical_ip(text: str) -> str:
    """The one text form of an IP address (IPv4-mapped IPv6 as plain IPv4); ValueError if it is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {text!r:.60}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class IPAddress(Field):
    """An IPv4 or IPv6 address, sent as 16 bytes (IPv4 as ::ffff:a.b.c.d, as Bitcoin does).

    In Python it is the canonical text (see canonical_ip), so that equal addresses compare equal.
    """

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, str):
            raise ValueError(f"expected an IP address string, got {_describe(value)}")
        if canonical_ip(value) != value:
            raise ValueError(f"IP address {value!r} is not in canonical form {canonical_ip(value)!r}")
        address = ipaddress.ip_address(value)
        if isinstance(address, ipaddress.IPv4Address):
            address = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
        return address.packed

    def decode(self, raw: Any) -> str:
        address = ipaddress.IPv6Address(Blob(16).decode(raw))
        return str(address.ipv4_mapped or address)


class ListOf(Field):
    """A msgpack array of at most `max_items` values of one field type, decoded to a tuple."""

    def __init__(self, item: Field, max_items: int) -> None:
        self.item = item
        self.max_items = max_items

    def _check_count(self, values: Any) -> None:
        if len(values) > self.max_items:
            raise ValueError(f"at most {self.max_items} items allowed, got {len(values)}")

    def encode(self, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a sequence, got {_describe(value)}")
        self._check_count(value)
        return [_at(f"[{i}]", self.item.encode, v) for i, v in enumerate(value)]

    def decode(self, raw: Any) -> tuple[Any, ...]:
        if not isinstance(raw, list):
            raise ValueError(f"expected array, got {_describe(raw)}")
        self._check_count(raw)
        decode = self.item.decode
        try:
            return tuple([decode(v) for v in raw])  # the fast path: an inv holds 50,000 items
        except ValueError:
            return tuple(_at(f"[{i}]", decode, v) for i, v in enumerate(raw))  # again, to say where


class Record(Field):
    """A small dataclass declared with wire() fields, sent as a msgpack array of exactly those fields."""

    def __init__(self, record_type: type) -> None:
        self.record_type = record_type
        self.fields = wire_fields(record_type)

    def encode(self, value: Any) -> list[Any]:
        if not isinstance(value, self.record_type):
            raise ValueError(f"expected a {self.record_type.__name__}, got {_describe(value)}")
        return [_at(f".{name}", f.encode, getattr(value, name)) for name, f in self.fields]

    def decode(self, raw: Any) -> Any:
        if not isinstance(raw, list) or len(raw) != len(self.fields):
            raise ValueError(f"expected an array of {len(self.fields)} values, got {_describe(raw)}")
        try:
            values = [f.decode(v) for (_, f), v in zip(self.fields, raw, strict=True)]
        except ValueError:
            values = [_at(f".{name}", f.decode, v) for (name, f), v in zip(self.fields, raw, strict=True)]
        return self.record_type(*values)


class _FieldError(ValueError):
    """A schema failure with the path to the offending value, e.g. `.addresses[3].ip`."""

    def __init__(self, path: str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = path
        self.detail = detail


def _at(path: str, convert: Any, value: Any) -> Any:
    """Run convert(value), prefixing any error with where in the payload it happened."""
    try:
        return convert(value)
    except _FieldError as exc:
        raise _FieldError(path + exc.path, exc.detail) from None
    except ValueError as exc:
        raise _FieldError(path, str(exc)) from None


def wire(field_type: Field) -> Any:
    """Declare a dataclass field as part of the wire schema."""
    return dataclasses.field(metadata={"wire": field_type})


@cache
def wire_fields(cls: type) -> tuple[tuple[str, Field], ...]:
    """The (name, field type) pairs of a wire dataclass, in declaration (= wire) order."""
    return tuple((f.name, f.metadata["wire"]) for f in dataclasses.fields(cls))


class Message:
    """Base of every P2P message: a frozen dataclass of wire() fields plus its command and size bound."""

    command: ClassVar[str]
    max_payload: ClassVar[int]  # a longer payload is refused from its header alone

    def to_payload(self) -> bytes:
        """The canonical msgpack payload; ValueError if a field is out of its schema (a local bug)."""
        fields = wire_fields(type(self))
        wire_map = {name: _at(f"{self.command}.{name}", f.encode, getattr(self, name)) for name, f in fields}
        payload = msgpack.packb(wire_map, use_bin_type=True)
        if len(payload) > self.max_payload:
            raise ValueError(f"{self.command} payload of {len(payload)} bytes exceeds {self.max_payload}")
        return payload

    @classmethod
    def from_payload(cls, payload: bytes) -> Self:
        """Decode and check a payload; ProtocolViolation and nothing else on any defect."""
        if len(payload) > cls.max_payload:
            raise ProtocolViolation("oversized")
        try:
            raw = msgpack.unpackb(
                payload,
                raw=False,
                use_list=True,
                strict_map_key=True,
                max_bin_len=cls.max_payload,
                max_str_len=MAX_TEXT_LEN,
                max_array_len=MAX_ARRAY_LEN,
                max_map_len=MAX_MAP_LEN,
                max_ext_len=0,
            )
        except (ValueError, msgpack.UnpackException) as exc:
            raise ProtocolViolation(f"bad-payload: {cls.command}: not a msgpack value ({exc})") from None
        try:
            values = cls._decode_map(raw)
        except _FieldError as exc:
            raise ProtocolViolation(f"bad-payload: {cls.command}{exc.path}: {exc.detail}") from None
        if msgpack.packb(raw, use_bin_type=True) != payload:
            raise ProtocolViolation(f"bad-payload: {cls.command}: not the canonical msgpack encoding")
        return cls(**values)

    @classmethod
    def _decode_map(cls, raw: Any) -> dict[str, Any]:
        fields = wire_fields(cls)
        if not isinstance(raw, dict):
            raise _FieldError("", f"expected a map, got {_describe(raw)}")
        names = [name for name, _ in fields]
        if list(raw) != names:
            missing = [n for n in names if n not in raw]
            unknown = [k for k in raw if k not in names]
            detail = f"missing {missing}" if missing else f"unknown {unknown!r:.80}" if unknown else "out of order"
            raise _FieldError("", f"keys must be exactly {names}: {detail}")
        return {name: _at(f".{name}", f.decode, raw[name]) for name, f in fields}
