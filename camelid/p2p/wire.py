"""Framing: how a message travels over a TCP stream (whitepaper 2.1.2).

    frame   = header | payload
    header  = magic[4] | command[12] | length u32 LE | checksum[4]        (24 bytes)
    payload = strict msgpack map of the command's fields (camelid.p2p.schema)

`magic` is the network's (ChainParams.magic), so nodes of different networks
cannot talk by accident. `command` is lowercase ASCII, zero-padded; bytes after
the first zero must be zero too. `checksum` is the first 4 bytes of sha256d(payload).

FrameDecoder reads a stream that arrives in arbitrary pieces and refuses a frame
as early as its bytes allow: a wrong magic byte at once, a bad or unknown
command and a length above the command's maximum as soon as the 24-byte header
is in, so an attacker cannot make us buffer a payload we would refuse anyway.
After a violation the stream cannot be resynchronised; the decoder keeps
raising and the connection must be closed.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from camelid.crypto.hashes import sha256d
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import MESSAGE_TYPES
from camelid.p2p.schema import COMMAND_CHARS, Message

MAGIC_SIZE = 4
COMMAND_SIZE = 12
CHECKSUM_SIZE = 4
HEADER_SIZE = MAGIC_SIZE + COMMAND_SIZE + 4 + CHECKSUM_SIZE
MAX_PAYLOAD = max(cls.max_payload for cls in MESSAGE_TYPES.values())
_HEADER = struct.Struct(f"<{MAGIC_SIZE}s{COMMAND_SIZE}sI{CHECKSUM_SIZE}s")


def checksum(payload: bytes) -> bytes:
    return sha256d(payload)[:CHECKSUM_SIZE]


def encode_frame(magic: bytes, message: Message) -> bytes:
    """The bytes that put `message` on the wire of the network whose magic is `magic`."""
    payload = message.to_payload()
    command = message.command.encode("ascii").ljust(COMMAND_SIZE, b"\0")
    return _HEADER.pack(magic, command, len(payload), checksum(payload)) + payload


def decode_frame(magic: bytes, frame: bytes) -> Message:
    """Decode exactly one whole frame (no more, no less)."""
    decoder = FrameDecoder(magic)
    messages = list(decoder.feed(frame))
    if not messages:
        raise ProtocolViolation("truncated")
    if len(messages) > 1 or decoder.buffered:
        raise ProtocolViolation("trailing-data")
    return messages[0]


def parse_command(raw: bytes) -> str:
    """The command name of a header's 12-byte field: lowercase ASCII, then zero padding only."""
    name = raw.rstrip(b"\0")
    text = name.decode("ascii", errors="replace")
    if not name or b"\0" in name or not set(text) <= COMMAND_CHARS:
        raise ProtocolViolation("bad-command")
    return text


class FrameDecoder:
    """Turns a byte stream into messages, whatever the sizes of the pieces it arrives in."""

    def __init__(self, magic: bytes) -> None:
        if len(magic) != MAGIC_SIZE:
            raise ValueError(f"network magic must be {MAGIC_SIZE} bytes, got {len(magic)}")
        self.magic = magic
        self._buffer = bytearray()
        self._header: tuple[type[Message], int, bytes] | None = None  # message type, length, checksum
        self._violation: ProtocolViolation | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet make a whole frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> Iterator[Message]:
        """Take the next piece of the stream; iterate the result for the messages it completes.

        Messages completed before a defect are yielded first; then ProtocolViolation is raised.
        """
        self._buffer += data
        return self._drain()

    def _drain(self) -> Iterator[Message]:
        while True:
            if self._violation is not None:
                raise self._violation
            try:
                message = self._next_message()
            except ProtocolViolation as violation:
                self._violation = violation
                raise
            if message is None:
                return
            yield message

    def _next_message(self) -> Message | None:
        if self._header is None:
            prefix = bytes(self._buffer[:MAGIC_SIZE])
            if not self.magic.startswith(prefix):
                raise ProtocolViolation("bad-magic")
            if len(self._buffer) < HEADER_SIZE:
                return None
            self._header = self._parse_header(bytes(self._buffer[:HEADER_SIZE]))
            del self._buffer[:HEADER_SIZE]
        message_type, length, expected_checksum = self._header
        if len(self._buffer) < length:
            return None
        payload = bytes(self._buffer[:length])
        del self._buffer[:length]
        self._header = None
        if checksum(payload) != expected_checksum:
            raise ProtocolViolation("bad-checksum")
        return message_type.from_payload(payload)

    @staticmethod
    def _parse_header(header: bytes) -> tuple[type[Message], int, bytes]:
        _, raw_command, length, expected_checksum = _HEADER.unpack(header)
        command = parse_command(raw_command)
        message_type = MESSAGE_TYPES.get(command)
        if message_type is None:
            raise ProtocolViolation("unknown-command")
        if length > message_type.max_payload:
            raise ProtocolViolation("oversized")
        return message_type, length, expected_checksum
