"""directed: a message for one node, routed through the others (whitepaper 2.1.2).

Job offers, completion outputs and verification requests are meant for a single
node, named by its identity key (the `node_id` of its version message), which
may not be a direct peer. The envelope names sender and recipient; a node that
is not the recipient forwards it with `hops_left` reduced by one to the one peer
its route names (camelid.p2p.routing), and drops it when it knows no route,
`hops_left` is 0 or its `message_id` was seen before.

The inner `command` and `payload` are opaque here: the job layer defines and
checks them (and signs what needs to be authentic; the envelope is not signed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.p2p.schema import COMMAND_CHARS, Blob, Message, NodeId, Text, UInt, wire

MAX_HOPS = 16  # no relay path in a healthy network is longer
DEFAULT_HOPS = 8
MESSAGE_ID_SIZE = 16  # random, chosen by the sender
MAX_DIRECTED_PAYLOAD = 2_000_000  # room for a long completion with its RASTiC data


@dataclass(frozen=True)
class Directed(Message):
    command: ClassVar[str] = "directed"
    max_payload: ClassVar[int] = MAX_DIRECTED_PAYLOAD + 256

    sender: bytes = wire(NodeId())
    recipient: bytes = wire(NodeId())
    hops_left: int = wire(UInt(8, maximum=MAX_HOPS))
    message_id: bytes = wire(Blob(MESSAGE_ID_SIZE))
    inner_command: str = wire(Text(12, COMMAND_CHARS, min_len=1))
    payload: bytes = wire(Blob(0, MAX_DIRECTED_PAYLOAD))
