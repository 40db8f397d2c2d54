"""Fuzzing the P2P decoders: whatever bytes arrive, the only failure is ProtocolViolation.

The budget is small by default so that the suite stays fast; set
CAMELID_FUZZ_EXAMPLES (e.g. `CAMELID_FUZZ_EXAMPLES=20000 make fuzz`) for a long run.
Valid messages are generated from the wire schemas themselves, so a new message
type or field is fuzzed without touching this file.
"""

from __future__ import annotations

import contextlib
import os
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from camelid.core.params import get_params
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PrivateKey
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import MESSAGE_TYPES
from camelid.p2p.schema import (
    Blob,
    Choice,
    Field,
    IPAddress,
    ListOf,
    Message,
    NodeId,
    Record,
    Text,
    UInt,
    canonical_ip,
    wire_fields,
)
from camelid.p2p.wire import FrameDecoder, decode_frame, encode_frame

MAGIC = get_params("regtest").magic
FUZZ = settings(
    max_examples=int(os.environ.get("CAMELID_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
NODE_IDS = [PrivateKey.from_bytes(bytes([i]) * 32).public_key.to_bytes() for i in range(1, 4)]
_MAX_GENERATED_BYTES = 200  # blobs of megabytes would only slow the search down
_MAX_GENERATED_ITEMS = 4


def strategy_for(field: Field) -> st.SearchStrategy[Any]:
    """Values that satisfy the field's schema."""
    if isinstance(field, UInt):
        return st.integers(0, field.maximum)
    if isinstance(field, Choice):
        return st.sampled_from(list(field.enum_type))
    if isinstance(field, NodeId):
        return st.sampled_from(NODE_IDS)
    if isinstance(field, Blob):
        return st.binary(min_size=field.min_len, max_size=min(field.max_len, max(field.min_len, _MAX_GENERATED_BYTES)))
    if isinstance(field, Text):
        return st.text(alphabet=sorted(field.charset), min_size=field.min_len, max_size=min(field.max_len, 40))
    if isinstance(field, IPAddress):
        return st.ip_addresses().map(lambda address: canonical_ip(str(address)))
    if isinstance(field, ListOf):
        return st.lists(strategy_for(field.item), max_size=min(field.max_items, _MAX_GENERATED_ITEMS)).map(tuple)
    if isinstance(field, Record):
        return record_strategy(field.record_type)
    raise AssertionError(f"no strategy for {type(field).__name__}")


def record_strategy(cls: type) -> st.SearchStrategy[Any]:
    return st.builds(cls, **{name: strategy_for(f) for name, f in wire_fields(cls)})


MESSAGE_CLASSES = sorted(MESSAGE_TYPES.values(), key=lambda cls: cls.command)
any_message = st.one_of([record_strategy(cls) for cls in MESSAGE_CLASSES])

msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)


def payload_decodes_canonically_or_violates(cls: type[Message], payload: bytes) -> None:
    """Either a ProtocolViolation, or a message whose encoding is exactly the bytes it came from."""
    try:
        message = cls.from_payload(payload)
    except ProtocolViolation:
        return
    assert message.to_payload() == payload


def frames_decode_or_violate(stream: bytes) -> None:
    with contextlib.suppress(ProtocolViolation):
        list(FrameDecoder(MAGIC).feed(stream))


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.command)
@FUZZ
@given(data=st.data())
def test_generated_messages_round_trip(cls: type[Message], data: st.DataObject):
    message = data.draw(record_strategy(cls))
    assert decode_frame(MAGIC, encode_frame(MAGIC, message)) == message


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.command)
@FUZZ
@given(payload=st.binary(max_size=300))
def test_payload_decoders_survive_random_bytes(cls: type[Message], payload: bytes):
    payload_decodes_canonically_or_violates(cls, payload)


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.command)
@FUZZ
@given(value=msgpack_values)
def test_payload_decoders_survive_arbitrary_msgpack(cls: type[Message], value: Any):
    payload_decodes_canonically_or_violates(cls, msgpack.packb(value, use_bin_type=True))


@pytest.mark.parametrize("cls", MESSAGE_CLASSES, ids=lambda cls: cls.command)
@FUZZ
@given(data=st.data())
def test_payload_decoders_survive_mutated_valid_payloads(cls: type[Message], data: st.DataObject):
    payload = bytearray(data.draw(record_strategy(cls)).to_payload())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(payload)))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert" or position == len(payload):
            payload[position:position] = data.draw(st.binary(min_size=1, max_size=3))
        elif action == "flip":
            payload[position] ^= data.draw(st.integers(1, 255))
        else:
            del payload[position]
    payload_decodes_canonically_or_violates(cls, bytes(payload))


@FUZZ
@given(stream=st.binary(max_size=400))
def test_frame_decoder_survives_random_bytes(stream: bytes):
    frames_decode_or_violate(stream)


@FUZZ
@given(header_tail=st.binary(min_size=20, max_size=20), payload=st.binary(max_size=100))
def test_frame_decoder_survives_random_headers_after_the_right_magic(header_tail: bytes, payload: bytes):
    frames_decode_or_violate(MAGIC + header_tail + payload)


@FUZZ
@given(command=st.sampled_from(sorted(MESSAGE_TYPES)), value=msgpack_values)
def test_frame_decoder_survives_well_framed_arbitrary_payloads(command: str, value: Any):
    payload = msgpack.packb(value, use_bin_type=True)
    header = MAGIC + command.encode().ljust(12, b"\0") + struct.pack("<I", len(payload))

    frames_decode_or_violate(header + sha256d(payload)[:4] + payload)


@FUZZ
@given(messages=st.lists(any_message, min_size=1, max_size=4), data=st.data())
def test_frame_decoder_reassembles_messages_from_arbitrary_pieces(messages: list[Message], data: st.DataObject):
    stream = b"".join(encode_frame(MAGIC, m) for m in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    decoder = FrameDecoder(MAGIC)
    assert [m for piece in pieces for m in decoder.feed(piece)] == messages
    assert decoder.buffered == 0
