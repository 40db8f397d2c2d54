"""Every P2P message, one module per family (as btcd's wire package), and the command registry.

Each message is a frozen dataclass whose payload is a strict msgpack map (see
camelid.p2p.schema); `MESSAGE_TYPES` maps the 12-byte header command to its class.
"""

from __future__ import annotations

from camelid.p2p.messages.addr import MAX_ADDR, Addr, GetAddr, NetAddress
from camelid.p2p.messages.block import BlockMessage
from camelid.p2p.messages.directed import DEFAULT_HOPS, MAX_HOPS, MESSAGE_ID_SIZE, Directed
from camelid.p2p.messages.headers import MAX_HEADERS, MAX_LOCATOR, GetHeaders, Headers, SendHeaders
from camelid.p2p.messages.inv import MAX_INV, GetData, Inv, InvItem, InvType, NotFound
from camelid.p2p.messages.jobs import JobAccept, JobDelivery, JobMessage, JobPayment, JobPrompt, JobTestament
from camelid.p2p.messages.models import Chunk, GetChunk, GetManifest, ManifestMessage, NoModel
from camelid.p2p.messages.ping import Ping, Pong
from camelid.p2p.messages.prices import ModelPrice, Prices
from camelid.p2p.messages.tx import TxMessage
from camelid.p2p.messages.verify import RasticAnswer, RasticAsk
from camelid.p2p.messages.version import (
    MIN_PROTOCOL_VERSION,
    PRICES_VERSION,
    PROTOCOL_VERSION,
    ServiceFlags,
    Verack,
    Version,
)
from camelid.p2p.schema import Message

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.command: cls
    for cls in (
        Version,
        Verack,
        Ping,
        Pong,
        GetAddr,
        Addr,
        Inv,
        GetData,
        NotFound,
        GetHeaders,
        Headers,
        SendHeaders,
        BlockMessage,
        TxMessage,
        Directed,
        GetManifest,
        ManifestMessage,
        NoModel,
        GetChunk,
        Chunk,
        JobMessage,
        JobAccept,
        JobTestament,
        JobDelivery,
        Prices,
    )
}

DIRECTED_MESSAGES: dict[str, type[Message]] = {
    cls.command: cls for cls in (JobAccept, JobPayment, JobPrompt, RasticAsk, RasticAnswer)
}
"""Inner payloads of `directed` envelopes, by inner command."""

__all__ = [
    "DEFAULT_HOPS",
    "DIRECTED_MESSAGES",
    "MAX_ADDR",
    "MAX_HEADERS",
    "MAX_HOPS",
    "MAX_INV",
    "MAX_LOCATOR",
    "MESSAGE_ID_SIZE",
    "MESSAGE_TYPES",
    "MIN_PROTOCOL_VERSION",
    "PROTOCOL_VERSION",
    "PRICES_VERSION",
    "RasticAsk",
    "RasticAnswer",
    "Addr",
    "BlockMessage",
    "Chunk",
    "Directed",
    "GetAddr",
    "GetChunk",
    "GetData",
    "GetHeaders",
    "GetManifest",
    "Headers",
    "Inv",
    "InvItem",
    "InvType",
    "JobAccept",
    "JobDelivery",
    "JobMessage",
    "JobPayment",
    "JobPrompt",
    "ManifestMessage",
    "ModelPrice",
    "Message",
    "NetAddress",
    "NoModel",
    "NotFound",
    "Ping",
    "Pong",
    "Prices",
    "SendHeaders",
    "ServiceFlags",
    "JobTestament",
    "TxMessage",
    "Verack",
    "Version",
]
