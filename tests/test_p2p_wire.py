"""P2P framing and message schemas: round trips, streaming, and every way a frame can be refused."""

from __future__ import annotations

import struct

import msgpack
import pytest

from camelid.core.consensus import MAX_BLOCK_SIZE, MAX_TX_SIZE
from camelid.core.job import MAX_JOB_TOKENS
from camelid.core.params import get_params
from camelid.core.private_prompt import MAX_SEALED_PROMPT
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PrivateKey
from camelid.p2p.errors import ProtocolViolation
from camelid.p2p.messages import (
    DIRECTED_MESSAGES,
    MAX_ADDR,
    MAX_HEADERS,
    MAX_HOPS,
    MAX_INV,
    MAX_LOCATOR,
    MESSAGE_TYPES,
    Addr,
    BlockMessage,
    Chunk,
    Directed,
    GetAddr,
    GetChunk,
    GetData,
    GetHeaders,
    GetManifest,
    Headers,
    Inv,
    InvItem,
    InvType,
    JobAccept,
    JobDelivery,
    JobMessage,
    JobPayment,
    JobPrompt,
    JobTestament,
    ManifestMessage,
    ModelPrice,
    NetAddress,
    NoModel,
    NotFound,
    Ping,
    Pong,
    Prices,
    RasticAnswer,
    RasticAsk,
    SendHeaders,
    ServiceFlags,
    TxMessage,
    Verack,
    Version,
)
from camelid.p2p.messages.directed import MAX_DIRECTED_PAYLOAD
from camelid.p2p.messages.jobs import MAX_JOB_PARAMS, MAX_SEALED_OUTPUT
from camelid.p2p.messages.models import MAX_CHUNK_SIZE, MAX_MODEL_CHUNKS
from camelid.p2p.messages.verify import MAX_VERDICT_BYTES
from camelid.p2p.messages.version import MAX_MODELS, MAX_USER_AGENT
from camelid.p2p.wire import HEADER_SIZE, FrameDecoder, decode_frame, encode_frame

MAGIC = get_params("regtest").magic
NODE_A = PrivateKey.from_bytes(b"\x01" * 32).public_key.to_bytes()
NODE_B = PrivateKey.from_bytes(b"\x02" * 32).public_key.to_bytes()
U64 = 2**64 - 1


def raw_frame(command: bytes, payload: bytes, *, magic: bytes = MAGIC, checksum: bytes | None = None) -> bytes:
    """A frame built by hand, so that tests can break any part of it."""
    checksum = sha256d(payload)[:4] if checksum is None else checksum
    return magic + command.ljust(12, b"\0") + struct.pack("<I", len(payload)) + checksum + payload


def reason_of(data: bytes) -> str:
    with pytest.raises(ProtocolViolation) as caught:
        decode_frame(MAGIC, data)
    return caught.value.reason


def small_version(**changes: object) -> Version:
    fields: dict[str, object] = dict(
        network="regtest",
        protocol_version=1,
        services=ServiceFlags.FULL_NODE | ServiceFlags.COMPUTE,
        best_height=12,
        node_id=NODE_A,
        models=(b"\x07" * 32,),
        user_agent="/camelid:0.1.0/",
        timestamp=1_795_564_800,
        listen_port=29733,
        nonce=42,
        challenge=b"\x21" * 32,
    )
    fields.update(changes)
    return Version(**fields)  # type: ignore[arg-type]


SMALL_MESSAGES = [
    small_version(),
    Verack(b"\x30\x06sig"),
    Ping(7),
    Pong(U64),
    GetAddr(),
    Addr((NetAddress("10.1.2.3", 9733, 1, 1_795_564_800), NetAddress("2001:db8::1", 1, 0, 0))),
    Inv((InvItem(InvType.TX, b"\x01" * 32), InvItem(InvType.JOB, b"\x03" * 32))),
    GetData((InvItem(InvType.BLOCK, b"\x02" * 32),)),
    NotFound(()),
    GetHeaders((b"\x05" * 32, b"\x06" * 32), bytes(32)),
    Headers((bytes(range(80)),)),
    SendHeaders(),
    BlockMessage(b"\x00" * 81),
    TxMessage(b"\x01" * 60),
    Directed(NODE_A, NODE_B, 3, b"\x09" * 16, "joboffer", b"secret offer"),
    GetManifest(b"\x0a" * 32),
    ManifestMessage(b"\x0b" * 32, 5, 4, (b"\x0c" * 32, b"\x0d" * 32), "tiny.gguf", b"\x0e" * 32),
    NoModel(b"\x0e" * 32),
    GetChunk(b"\x0f" * 32, 1),
    Chunk(b"\x10" * 32, 1, b"\x11"),
    JobMessage(b"\x01job params", b"\x12" * 32, NODE_A, b"\x30\x06sig"),
    JobAccept(b"\x13" * 32, NODE_B, b"\x30\x06sig"),
    JobTestament(b"\x14" * 32, NODE_B, NODE_A, b"\x15" * 32, b"\x30\x06sig", b"\x16" * 32, b"\x30\x06sig"),
    JobDelivery(b"\x18" * 32, NODE_B, b"sealed output", b"\x30\x06sig", b"\x16" * 32, b"\x30\x06sig"),
    Prices((ModelPrice(b"\x19" * 32, 250_000),)),
]

DIRECTED_PAYLOADS = [
    JobPayment(b"\x17" * 32, b"\x01" * 60),
    JobPrompt(b"\x17" * 32, b"\x01" * 100, b"\x30\x06sig"),
    JobAccept(b"\x13" * 32, NODE_B, b"\x30\x06sig"),  # directed to the client too
    RasticAsk(b"\x17" * 32, b"\x18" * 32, b"\x01\x00\x00\x00", b"\x01" * 100),
    RasticAnswer(b"\x17" * 32, b"\x18" * 32, b"\x80", ""),
    RasticAnswer(b"\x17" * 32, b"\x18" * 32, b"", "this node does not hold the model"),
]

LARGEST_MESSAGES = [
    small_version(
        services=U64,
        best_height=2**32 - 1,
        models=tuple(bytes([i]) * 32 for i in range(MAX_MODELS)),
        user_agent="~" * MAX_USER_AGENT,
        timestamp=U64,
        listen_port=65535,
        nonce=U64,
    ),
    Verack(b"\xff" * 72),
    Ping(U64),
    Pong(U64),
    Addr(tuple(NetAddress("ffff::ffff", 65535, U64, U64) for _ in range(MAX_ADDR))),
    Inv(tuple(InvItem(InvType.JOB, b"\xff" * 32) for _ in range(MAX_INV))),
    GetData(tuple(InvItem(InvType.JOB, b"\xff" * 32) for _ in range(MAX_INV))),
    NotFound(tuple(InvItem(InvType.JOB, b"\xff" * 32) for _ in range(MAX_INV))),
    GetHeaders(tuple(b"\xff" * 32 for _ in range(MAX_LOCATOR)), b"\xff" * 32),
    Headers(tuple(b"\xff" * 80 for _ in range(MAX_HEADERS))),
    BlockMessage(b"\xff" * MAX_BLOCK_SIZE),
    TxMessage(b"\xff" * MAX_TX_SIZE),
    Directed(NODE_A, NODE_B, MAX_HOPS, b"\xff" * 16, "z" * 12, b"\xff" * MAX_DIRECTED_PAYLOAD),
    ManifestMessage(
        b"\xff" * 32, U64, MAX_CHUNK_SIZE, tuple(b"\xff" * 32 for _ in range(MAX_MODEL_CHUNKS)), "~" * 256, b"\xff" * 32
    ),
    Chunk(b"\xff" * 32, MAX_MODEL_CHUNKS - 1, b"\xff" * MAX_CHUNK_SIZE),
    JobMessage(b"\xff" * MAX_JOB_PARAMS, b"\xff" * 32, NODE_A, b"\xff" * 72),
    JobAccept(b"\xff" * 32, NODE_B, b"\xff" * 72),
    JobTestament(b"\xff" * 32, NODE_B, NODE_A, b"\xff" * 32, b"\xff" * 72, b"\xff" * 32, b"\xff" * 72),
    JobPayment(b"\xff" * 32, b"\xff" * MAX_TX_SIZE),
    JobPrompt(b"\xff" * 32, b"\xff" * MAX_SEALED_PROMPT, b"\xff" * 72),
    JobDelivery(b"\xff" * 32, NODE_B, b"\xff" * MAX_SEALED_OUTPUT, b"\xff" * 72, b"\xff" * 32, b"\xff" * 72),
    RasticAsk(b"\xff" * 32, b"\xff" * 32, b"\xff" * 4 * MAX_JOB_TOKENS, b"\xff" * MAX_SEALED_PROMPT),
    RasticAnswer(b"\xff" * 32, b"\xff" * 32, b"\xff" * MAX_VERDICT_BYTES, "~" * 256),
    Prices(tuple(ModelPrice(bytes([i]) * 32, U64) for i in range(MAX_MODELS))),
]


def test_every_command_has_a_small_sample():
    assert {m.command for m in SMALL_MESSAGES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", SMALL_MESSAGES, ids=lambda m: m.command)
def test_every_message_round_trips_through_a_frame(message):
    frame = encode_frame(MAGIC, message)
    assert frame[:4] == MAGIC
    assert frame[4:16].rstrip(b"\0") == message.command.encode()
    decoded = decode_frame(MAGIC, frame)
    assert decoded == message
    assert type(decoded) is type(message)
    assert encode_frame(MAGIC, decoded) == frame


@pytest.mark.parametrize("message", DIRECTED_PAYLOADS, ids=lambda m: m.command)
def test_every_directed_payload_round_trips_and_its_command_fits_the_envelope(message):
    assert DIRECTED_MESSAGES[message.command] is type(message)
    Directed(NODE_A, NODE_B, 1, b"\x00" * 16, message.command, message.to_payload()).to_payload()
    assert type(message).from_payload(message.to_payload()) == message


def test_a_job_message_with_a_key_off_the_curve_is_refused():
    payload = JobAccept(b"\x13" * 32, NODE_B, b"sig").to_payload().replace(NODE_B, b"\x02" + b"\xff" * 32)
    with pytest.raises(ProtocolViolation, match="jobaccept.node"):
        JobAccept.from_payload(payload)


@pytest.mark.parametrize("message", LARGEST_MESSAGES, ids=lambda m: m.command)
def test_the_largest_valid_message_fits_its_size_limit_and_round_trips(message):
    payload = message.to_payload()
    assert len(payload) <= message.max_payload
    assert type(message).from_payload(payload) == message


def test_ipv4_addresses_travel_as_mapped_ipv6_and_come_back_as_ipv4():
    payload = Addr((NetAddress("192.0.2.1", 1, 0, 0),)).to_payload()
    assert b"\x00" * 10 + b"\xff\xff" + bytes([192, 0, 2, 1]) in payload
    assert Addr.from_payload(payload).addresses[0].ip == "192.0.2.1"


def test_encoding_refuses_a_message_outside_its_schema():
    with pytest.raises(ValueError, match="ping.nonce"):
        Ping(-1).to_payload()
    with pytest.raises(ValueError, match=r"addr.addresses\[0\].ip"):
        Addr((NetAddress("not-an-ip", 1, 0, 0),)).to_payload()
    with pytest.raises(ValueError, match="not in canonical form '10.0.0.1'"):
        Addr((NetAddress("::ffff:10.0.0.1", 1, 0, 0),)).to_payload()
    with pytest.raises(ValueError, match="at most 1000"):
        Addr(tuple(NetAddress("10.0.0.1", 1, 0, 0) for _ in range(MAX_ADDR + 1))).to_payload()


def stream_of_messages() -> tuple[bytes, list]:
    messages = [small_version(), Verack(b"\x30\x06sig"), Ping(1), Headers((b"\x01" * 80, b"\x02" * 80)), Pong(1)]
    return b"".join(encode_frame(MAGIC, m) for m in messages), messages


def test_decoder_yields_the_same_messages_wherever_the_stream_is_split():
    stream, messages = stream_of_messages()
    for offset in range(len(stream) + 1):
        decoder = FrameDecoder(MAGIC)
        got = list(decoder.feed(stream[:offset])) + list(decoder.feed(stream[offset:]))
        assert got == messages, offset
        assert decoder.buffered == 0


def test_decoder_accepts_a_stream_one_byte_at_a_time():
    stream, messages = stream_of_messages()
    decoder = FrameDecoder(MAGIC)
    got = [m for i in range(len(stream)) for m in decoder.feed(stream[i : i + 1])]
    assert got == messages


def test_decoder_holds_an_incomplete_frame_until_the_rest_arrives():
    frame = encode_frame(MAGIC, Ping(5))
    decoder = FrameDecoder(MAGIC)
    assert list(decoder.feed(frame[:-1])) == []
    assert decoder.buffered == len(frame) - HEADER_SIZE - 1  # header already parsed and consumed
    assert list(decoder.feed(frame[-1:])) == [Ping(5)]


def test_a_wrong_magic_is_refused_at_its_first_byte():
    decoder = FrameDecoder(MAGIC)
    with pytest.raises(ProtocolViolation, match="bad-magic"):
        list(decoder.feed(get_params("mainnet").magic[:1]))


def test_an_oversized_length_is_refused_from_the_header_alone():
    header = raw_frame(b"ping", b"")[: HEADER_SIZE - 8] + struct.pack("<I", Ping.max_payload + 1) + b"\0" * 4
    decoder = FrameDecoder(MAGIC)
    with pytest.raises(ProtocolViolation, match="oversized"):
        list(decoder.feed(header))
    block_header = raw_frame(b"block", b"")[:16] + struct.pack("<I", 2**32 - 1) + b"\0" * 4
    assert reason_of(block_header) == "oversized"


def test_messages_before_a_defect_are_delivered_and_the_decoder_stays_failed():
    decoder = FrameDecoder(MAGIC)
    corrupt = raw_frame(b"ping", Ping(2).to_payload(), checksum=b"bad!")
    got = []
    with pytest.raises(ProtocolViolation, match="bad-checksum"):
        for message in decoder.feed(encode_frame(MAGIC, Ping(1)) + corrupt):
            got.append(message)
    assert got == [Ping(1)]
    with pytest.raises(ProtocolViolation, match="bad-checksum"):
        list(decoder.feed(encode_frame(MAGIC, Ping(3))))


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (raw_frame(b"ping", Ping(1).to_payload(), magic=get_params("mainnet").magic), "bad-magic"),
        (raw_frame(b"ping", Ping(1).to_payload(), checksum=b"\0\0\0\0"), "bad-checksum"),
        (encode_frame(MAGIC, Ping(1))[:-1], "truncated"),
        (encode_frame(MAGIC, Ping(1))[:10], "truncated"),
        (encode_frame(MAGIC, Ping(1)) + b"\0", "bad-magic"),
        (encode_frame(MAGIC, Ping(1)) + MAGIC[:2], "trailing-data"),
        (raw_frame(b"reject", b"\x80"), "unknown-command"),
        (raw_frame(b"Ping", Ping(1).to_payload()), "bad-command"),
        (raw_frame(b"ping\0x", Ping(1).to_payload()), "bad-command"),
        (raw_frame(b"", b"\x80"), "bad-command"),
        (raw_frame(b"p\xefng", b"\x80"), "bad-command"),
    ],
    ids=[
        "magic",
        "checksum",
        "truncated-payload",
        "truncated-header",
        "junk-after",
        "partial-next",
        "reject-is-gone",
        "uppercase",
        "padding",
        "empty-command",
        "non-ascii",
    ],
)
def test_broken_frames_are_refused_with_the_right_reason(frame, reason):
    assert reason_of(frame) == reason


def test_random_bytes_are_refused():
    assert reason_of(bytes(range(256))) == "bad-magic"


def pack(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


VALID_VERSION = msgpack.unpackb(small_version().to_payload())


def version_with(**changes: object) -> bytes:
    return pack({**VALID_VERSION, **changes})


@pytest.mark.parametrize(
    ("command", "payload", "detail"),
    [
        (b"ping", b"", "not a msgpack value"),
        (b"ping", pack({"nonce": 1}) + b"\xc0", "not a msgpack value"),
        (b"ping", pack([1]), "expected a map"),
        (b"ping", pack({}), "missing ['nonce']"),
        (b"ping", pack({"nonce": 1, "extra": 2}), "unknown ['extra']"),
        (b"ping", pack({"nonce": True}), "ping.nonce: expected an integer"),
        (b"ping", pack({"nonce": 1.0}), "ping.nonce: expected an integer"),
        (b"ping", pack({"nonce": None}), "ping.nonce: expected an integer"),
        (b"ping", pack({"nonce": -1}), "ping.nonce: expected an integer"),
        (b"ping", pack({"nonce": "1"}), "ping.nonce: expected an integer"),
        (b"ping", b"\x81\xa5nonce\xcf" + (1).to_bytes(8, "big"), "not the canonical msgpack encoding"),
        (b"ping", b"\x81\xd9\x05nonce\x01", "not the canonical msgpack encoding"),
        (b"ping", b"\x81\xa5nonce\xd4\x01\x00", "not a msgpack value"),  # ext type
        (b"ping", b"\x81\x01\x01", "not a msgpack value"),  # integer map key
        (b"verack", pack([]), "verack: expected a map"),
        (b"verack", pack({}), "verack: keys must be exactly ['signature']"),
        (b"verack", pack({"signature": b""}), "verack.signature: expected 1-72 bytes"),
        (b"verack", pack({"signature": b"\x30" * 73}), "verack.signature: expected 1-72 bytes"),
        (b"version", version_with(challenge=b"\x21" * 31), "version.challenge: expected 32 bytes"),
        (b"version", version_with(node_id=b"\x05" + NODE_A[1:]), "version.node_id: public key"),
        (b"version", version_with(node_id=NODE_A[:32]), "version.node_id: expected 33 bytes"),
        (b"version", version_with(models=[b"\x00" * 31]), "version.models[0]: expected 32 bytes"),
        (b"version", version_with(models=[b"\x00" * 32] * 65), "version.models: at most 64 items"),
        (b"version", version_with(user_agent="caf\u00e9"), "version.user_agent: character"),
        (b"version", version_with(listen_port=65536), "version.listen_port: expected an integer in 0-65535"),
        (b"version", version_with(network="Reg Test"), "version.network: character"),
        (b"version", pack(dict(reversed(list(VALID_VERSION.items())))), "out of order"),
        (b"addr", pack({"addresses": [[b"\0" * 16, 1, 0]]}), "addr.addresses[0]: expected an array of 4"),
        (b"addr", pack({"addresses": [[b"\0" * 4, 1, 0, 0]]}), "addr.addresses[0].ip: expected 16 bytes"),
        (b"addr", pack({"addresses": [[b"\0" * 16, 1, 0, 0]] * 1001}), "addr.addresses: at most 1000"),
        (b"inv", pack({"items": [[9, b"\0" * 32]]}), "inv.items[0].type: unknown InvType 9"),
        (b"inv", pack({"items": [[1, "\0" * 32]]}), "inv.items[0].hash: expected bin"),
        (b"getheaders", pack({"locator": [b"\0" * 32] * 102, "stop": b"\0" * 32}), "at most 101"),
        (b"headers", pack({"headers": [b"\0" * 79]}), "headers.headers[0]: expected 80 bytes"),
        (b"block", pack({"block": b""}), "block.block: expected 1-4000000 bytes"),
        (b"tx", pack({"tx": "raw"}), "tx.tx: expected bin"),
        (b"prices", pack({"prices": [[b"\0" * 32, -1]]}), "prices.prices[0].per_1000_tokens: expected an integer"),
        (b"prices", pack({"prices": [[b"\0" * 31, 1]]}), "prices.prices[0].model_id: expected 32 bytes"),
        (
            b"directed",
            pack(
                {
                    "sender": NODE_A,
                    "recipient": NODE_B,
                    "hops_left": MAX_HOPS + 1,
                    "message_id": b"\0" * 16,
                    "inner_command": "joboffer",
                    "payload": b"",
                }
            ),
            "directed.hops_left: expected an integer in 0-16",
        ),
        (
            b"directed",
            pack(
                {
                    "sender": NODE_A,
                    "recipient": NODE_B,
                    "hops_left": 1,
                    "message_id": b"\0" * 16,
                    "inner_command": "",
                    "payload": b"",
                }
            ),
            "directed.inner_command: expected 1-12 characters",
        ),
    ],
)
def test_valid_frames_with_invalid_payloads_are_refused_naming_the_field(command, payload, detail):
    reason = reason_of(raw_frame(command, payload))
    assert reason.startswith("bad-payload: ")
    assert detail in reason


def test_a_payload_over_its_command_limit_is_refused_even_when_decoded_directly():
    with pytest.raises(ProtocolViolation, match="oversized"):
        Ping.from_payload(b"\x80" * 33)
