"""Helpers the functional tests share: a payout address and moving blocks between nodes."""

from __future__ import annotations

from camelid.crypto.hashes import sha256
from camelid.crypto.keys import PrivateKey

from .framework import TestNode

MINER_KEY = PrivateKey.from_bytes(sha256(b"camelid functional tests"), network="regtest")
MINER_ADDRESS = MINER_KEY.public_key.address("regtest")
# A second payee, so two nodes mining on the same parent in the same second still build different blocks.
OTHER_ADDRESS = PrivateKey.from_bytes(sha256(b"camelid functional tests 2"), network="regtest").public_key.address(
    "regtest"
)


def active_chain_hashes(node: TestNode, start: int = 1) -> list[str]:
    """Hashes of `node`'s active chain from height `start` up to its tip."""
    return [node.getblockhash(h) for h in range(start, node.getblockcount() + 1)]


def copy_blocks(source: TestNode, target: TestNode, hashes: list[str]) -> list[str | None]:
    """Send blocks from `source` to `target` with getblock(hash, 0) + submitblock; the submitblock answers."""
    return [target.submitblock(source.getblock(block_hash, 0)) for block_hash in hashes]
