"""Frames between the node and its llama.cpp worker: a 4-byte big-endian length, then a msgpack map.

Both sides import this module; it loads no model, so the node's side never touches llama.cpp's kernels.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

import msgpack

from camelid.compute.rastic import Failure, Verdict

MAX_FRAME = 64 << 20
"""Largest frame either side accepts: a 2,048-token job is a few kilobytes, so this only stops garbage."""
_LENGTH = struct.Struct(">I")


def encode_frame(message: dict[str, Any]) -> bytes:
    body = msgpack.packb(message, use_bin_type=True)
    if len(body) > MAX_FRAME:
        raise ValueError(f"worker frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return _LENGTH.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    message = msgpack.unpackb(body, raw=False, strict_map_key=False)
    if not isinstance(message, dict):
        raise ValueError("worker frame is not a map")
    return message


def frame_length(header: bytes) -> int:
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"worker frame of {length} bytes exceeds {MAX_FRAME}")
    return length


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    """The next frame from a blocking stream (buffered or raw); None at EOF before a frame starts."""
    header = _read_exactly(stream, _LENGTH.size)
    if not header:
        return None
    if len(header) < _LENGTH.size:
        raise ValueError("worker stream ended inside a frame header")
    length = frame_length(header)
    body = _read_exactly(stream, length)
    if len(body) < length:
        raise ValueError("worker stream ended inside a frame")
    return decode_body(body)


def _read_exactly(stream: BinaryIO, count: int) -> bytes:
    """`count` bytes, fewer only at EOF: a raw stream's read returns what has arrived so far."""
    data = b""
    while len(data) < count and (piece := stream.read(count - len(data))):
        data += piece
    return data


def write_frame(stream: BinaryIO, message: dict[str, Any]) -> None:
    stream.write(encode_frame(message))
    stream.flush()


def verdict_to_wire(verdict: Verdict) -> dict[str, Any]:
    return {
        "ok": verdict.ok,
        "checked": list(verdict.checked),
        "failures": [[f.position, f.claimed, f.gap, f.reason] for f in verdict.failures],
    }


def verdict_from_wire(data: dict[str, Any]) -> Verdict:
    failures = tuple(Failure(int(p), c, float(g), str(r)) for p, c, g, r in data["failures"])
    return Verdict(ok=bool(data["ok"]), checked=tuple(data["checked"]), failures=failures)
