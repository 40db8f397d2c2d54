"""Bitcoin wire primitives: little-endian integers, CompactSize, length-prefixed bytes.

Every decoder reads through ByteReader so that any malformed input surfaces as
ValueError with a message naming what was short or wrong, never as IndexError
or struct.error.
"""

from __future__ import annotations

import struct

MAX_SIZE = 0x02000000  # largest length or count any field may claim (32 MiB, as Bitcoin)
# CompactSize prefix byte -> (width of the integer that follows, smallest value that may use it)
_COMPACT_WIDTHS = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}


def compact_size(n: int) -> bytes:
    """Encode n as a CompactSize (Bitcoin's varint)."""
    if n < 0:
        raise ValueError(f"CompactSize cannot encode negative {n}")
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    if n <= 0xFFFFFFFFFFFFFFFF:
        return b"\xff" + n.to_bytes(8, "little")
    raise ValueError(f"CompactSize cannot encode {n}")


def var_bytes(data: bytes) -> bytes:
    """CompactSize length followed by the bytes."""
    return compact_size(len(data)) + data


class ByteReader:
    """Cursor over a bytes object that raises ValueError on every kind of misuse."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(bytes(data))
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    @property
    def position(self) -> int:
        return self._pos

    def read(self, n: int, what: str = "bytes") -> bytes:
        if n < 0 or n > self.remaining:
            raise ValueError(f"truncated {what}: need {n} bytes at offset {self._pos}, have {self.remaining}")
        out = self._data[self._pos : self._pos + n].tobytes()
        self._pos += n
        return out

    def since(self, start: int) -> bytes:
        """The bytes consumed from offset `start` to the current position."""
        return self._data[start : self._pos].tobytes()

    def u8(self, what: str = "uint8") -> int:
        return self.read(1, what)[0]

    def u32(self, what: str = "uint32") -> int:
        return int.from_bytes(self.read(4, what), "little")

    def i32(self, what: str = "int32") -> int:
        return struct.unpack("<i", self.read(4, what))[0]

    def u64(self, what: str = "uint64") -> int:
        return int.from_bytes(self.read(8, what), "little")

    def i64(self, what: str = "int64") -> int:
        return struct.unpack("<q", self.read(8, what))[0]

    def compact_size(self, what: str = "CompactSize") -> int:
        """Read a canonical CompactSize no larger than MAX_SIZE."""
        first = self.u8(what)
        if first < 0xFD:
            return first
        width, smallest = _COMPACT_WIDTHS[first]
        n = int.from_bytes(self.read(width, what), "little")
        if n < smallest:
            raise ValueError(f"non-canonical {what} encoding of {n}")
        if n > MAX_SIZE:
            raise ValueError(f"{what} {n} exceeds the maximum {MAX_SIZE}")
        return n

    def var_bytes(self, what: str = "byte string") -> bytes:
        return self.read(self.compact_size(f"{what} length"), what)

    def count(self, what: str, min_item_size: int) -> int:
        """Read an item count and reject one the remaining bytes cannot possibly hold."""
        n = self.compact_size(f"{what} count")
        if n * min_item_size > self.remaining:
            raise ValueError(f"{what} count {n} is absurd for the {self.remaining} bytes left")
        return n

    def finish(self, what: str) -> None:
        """Reject trailing bytes after a complete object."""
        if self.remaining:
            raise ValueError(f"{self.remaining} trailing bytes after {what}")


def hash_to_hex(h: bytes) -> str:
    """Display form of a 32-byte hash: reversed byte order, as Bitcoin prints txids and block hashes."""
    return h[::-1].hex()


def hex_to_hash(s: str) -> bytes:
    """Parse a displayed hash (64 hex digits, reversed) into internal byte order."""
    try:
        raw = bytes.fromhex(s)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"hash must be 64 hex digits, got {s!r}") from exc
    if len(raw) != 32:
        raise ValueError(f"hash must be 32 bytes, got {len(raw)}")
    return raw[::-1]
