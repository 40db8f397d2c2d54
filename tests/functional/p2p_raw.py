"""A raw test peer: a plain blocking socket speaking the wire format, to poke a real camelidd with any bytes.

Unlike a camelidd peer it sends whatever it is told -- a frame with a wrong magic,
a header promising 4 GiB, one byte at a time -- and reads what the node answers:

    peer = RawPeer.connect(node.p2p_port, source="127.0.0.7")
    peer.handshake(piece_size=1)            # version and signed verack, each in 1-byte writes
    peer.send(Ping(7)); peer.expect(Pong)   # a Pong
    peer.send_bytes(b"junk"); assert peer.closed_by_node()

Discouragement is per IP, so each misbehaving peer of a test should come from
its own loopback address (`source`; the whole 127.0.0.0/8 is local on Linux):
punishing one must not lock the next, or the honest camelidd peer on 127.0.0.1, out.
"""

from __future__ import annotations

import os
import socket
import struct
import time

from camelid.core.block import BlockHeader
from camelid.core.params import REGTEST
from camelid.crypto.keys import PrivateKey
from camelid.p2p.auth import INITIATOR, sign_handshake
from camelid.p2p.messages import PROTOCOL_VERSION, Message, ServiceFlags, Verack, Version
from camelid.p2p.messages.version import CHALLENGE_SIZE
from camelid.p2p.wire import CHECKSUM_SIZE, COMMAND_SIZE, FrameDecoder, checksum, encode_frame

MAGIC = REGTEST.magic
USER_AGENT = "/camelid-raw-test-peer/"
READ_TIMEOUT = 10.0


def raw_frame(
    command: bytes,
    payload: bytes,
    *,
    magic: bytes = MAGIC,
    length: int | None = None,
    frame_checksum: bytes | None = None,
) -> bytes:
    """A frame built by hand, so that any header field can lie about the payload."""
    header = struct.pack(
        f"<4s{COMMAND_SIZE}sI{CHECKSUM_SIZE}s",
        magic,
        command.ljust(COMMAND_SIZE, b"\0"),
        len(payload) if length is None else length,
        checksum(payload) if frame_checksum is None else frame_checksum,
    )
    return header + payload


def our_version(listen_port: int = 0, node_id: bytes | None = None, models: tuple[bytes, ...] = ()) -> Version:
    """A valid regtest version message, from a fresh identity unless `node_id` is given, announcing `models`."""
    return Version(
        network=REGTEST.name,
        protocol_version=PROTOCOL_VERSION,
        services=int(ServiceFlags.NONE),
        best_height=0,
        node_id=PrivateKey.generate(network="regtest").public_key.to_bytes() if node_id is None else node_id,
        models=models,
        user_agent=USER_AGENT,
        timestamp=int(time.time()),
        listen_port=listen_port,
        nonce=int.from_bytes(os.urandom(8), "little"),
        challenge=os.urandom(CHALLENGE_SIZE),
    )


class RawPeer:
    """One TCP connection to a node on 127.0.0.1; every method blocks for at most READ_TIMEOUT."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._decoder = FrameDecoder(MAGIC)
        self._pending: list[Message] = []
        self.node_id: bytes | None = None  # the identity this peer announced, once it has shaken hands

    @classmethod
    def connect(cls, port: int, source: str = "127.0.0.1", patience: float = 10.0) -> RawPeer:
        """Connect from `source`; a node answers RPC slightly before its P2P listener is up, so a
        refused connection is retried for `patience` seconds."""
        deadline = time.monotonic() + patience
        while True:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small writes leave as small segments
            sock.settimeout(READ_TIMEOUT)
            sock.bind((source, 0))
            try:
                sock.connect(("127.0.0.1", port))
                return cls(sock)
            except ConnectionRefusedError:
                sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        self.sock.close()

    def send_bytes(self, data: bytes, piece_size: int | None = None) -> None:
        """Write `data`, in pieces of `piece_size` bytes (each its own write) when given."""
        if piece_size is None:
            self.sock.sendall(data)
            return
        for start in range(0, len(data), piece_size):
            self.sock.sendall(data[start : start + piece_size])
            time.sleep(0.001)  # let each piece reach the node on its own

    def send(self, message: Message, piece_size: int | None = None) -> None:
        self.send_bytes(encode_frame(MAGIC, message), piece_size)

    def receive(self) -> Message:
        """The next message from the node; EOFError if it closes the connection first."""
        while not self._pending:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("the node closed the connection")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    def expect(self, message_type: type[Message]) -> Message:
        """Read until a message of `message_type` arrives (others, such as pings and addr, are skipped)."""
        while True:
            message = self.receive()
            if isinstance(message, message_type):
                return message

    def handshake(
        self,
        piece_size: int | None = None,
        listen_port: int = 0,
        key: PrivateKey | None = None,
        claimed_id: bytes | None = None,
        models: tuple[bytes, ...] = (),
    ) -> Version:
        """Complete the version/verack exchange, our frames cut into `piece_size`-byte writes; the node's version.

        The verack is signed with `key` (a fresh one by default) for the node id `claimed_id` (by default
        key's own): a claimed id that is not the key's is an impostor, whom the node disconnects.
        """
        key = PrivateKey.generate(network="regtest") if key is None else key
        ours = our_version(listen_port, key.public_key.to_bytes() if claimed_id is None else claimed_id, models)
        self.node_id = ours.node_id
        self.send(ours, piece_size)
        theirs = self.expect(Version)
        self.send(Verack(sign_handshake(key, MAGIC, ours, theirs, INITIATOR)), piece_size)
        self.expect(Verack)
        return theirs

    def closed_by_node(self, timeout: float = READ_TIMEOUT) -> bool:
        """Whether the node closes the connection within `timeout` seconds (whatever it sends first is skipped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        return True


def header_branch(parent: BlockHeader, count: int, tag: int) -> list[BlockHeader]:
    """`count` chained headers on `parent` with the least proof of work regtest allows; `tag` makes a branch."""
    headers, prev = [], parent
    for _ in range(count):
        header = BlockHeader(1, prev.hash_bytes, tag.to_bytes(32, "little"), prev.time + 1, prev.bits, 0)
        while not header.check_pow(REGTEST.pow_limit):
            header = header.with_nonce(header.nonce + 1)
        headers.append(header)
        prev = header
    return headers
