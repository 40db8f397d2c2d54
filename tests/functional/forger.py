"""A forger for functional tests: a peer with a node key of its own, signing job messages on the real wire.

It holds one authenticated node id (its handshake is real) and makes up as many more as it likes, for free.
What it cannot do is sign with a key it does not hold: so it forges a testament under another node's id
with its own key (`testament_as`), publishes testaments with no stake behind them under ids it does hold
(`free_testament`), and floods jobaccepts under throwaway ids (`throwaway_accepts`). Nothing in camelidd
helps it; the node under test sees only bytes a real forger would send.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

from camelid.chain.jobpool import TestamentRecord, job_accept_digest
from camelid.core.jobscripts import commitment_signature_digest
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.common import testament_message
from camelid.p2p.messages import JobAccept, JobMessage, JobTestament

from .framework import TestNode
from .p2p_raw import RawPeer


class Forger:
    """One forging peer, connected to `node` from `source`."""

    def __init__(self, node: TestNode, source: str) -> None:
        self.key = PrivateKey.generate(network="regtest")
        self.node_id = self.key.public_key.to_bytes()
        self.peer = RawPeer.connect(node.p2p_port, source=source)
        self.peer.handshake(key=self.key)

    def close(self) -> None:
        self.peer.close()

    def next_job(self, timeout: float = 30) -> JobMessage:
        """The next job message flooded to us."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.peer.sock.settimeout(max(0.1, deadline - time.monotonic()))
            message = self.peer.receive()
            if isinstance(message, JobMessage):
                return message
        raise TimeoutError(f"no job within {timeout} s")

    def testament_as(self, job_id: bytes, node: bytes) -> JobTestament:
        """A testament naming `node`, signed by our key: a forgery unless `node` is our own id."""
        job_key = PrivateKey.generate(network="regtest")
        commitment = os.urandom(32)
        testament = TestamentRecord(
            node,
            job_key.public_key.to_bytes(),
            commitment,
            job_key.sign(commitment_signature_digest(commitment)),
            os.urandom(32),  # a stake transaction that does not exist
        )
        return testament_message(job_id, replace(testament, node_signature=self.key.sign(testament.digest(job_id))))

    def free_testament(self, job_id: bytes) -> JobTestament:
        """A validly signed testament under our own id, with no stake behind it."""
        return self.testament_as(job_id, self.node_id)

    @staticmethod
    def throwaway_accepts(job_id: bytes, count: int) -> list[JobAccept]:
        """`count` validly signed jobaccepts, each under a fresh node id that will never compute anything."""
        accepts = []
        for _ in range(count):
            key = PrivateKey.generate(network="regtest")
            node = key.public_key.to_bytes()
            accepts.append(JobAccept(job_id, node, key.sign(job_accept_digest(job_id, node))))
        return accepts
