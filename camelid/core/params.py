"""Chain parameters for each network: magic, ports, genesis, difficulty and job timing.

mainnet is the real network; testnet has its own genesis and version bytes; regtest
is for local testing: trivial proof of work, no retargeting, a short job dispute
window and a 3-block move timeout in dispute games, so that tests run in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import COIN
from camelid.core.pow import bits_to_target
from camelid.core.transaction import NULL_HASH, NULL_INDEX, Transaction, TxIn, TxOut
from camelid.crypto.merkle import merkle_root

GENESIS_MESSAGE = b"CamelidCoin 2026-11-25: pay for a completion, earn by computing it"
_OP_RETURN = b"\x6a"


def _genesis_block(time: int, bits: int, nonce: int) -> Block:
    """The first block. Its coinbase output is OP_RETURN, so the genesis coins can never move."""
    script_sig = bytes([len(GENESIS_MESSAGE)]) + GENESIS_MESSAGE
    coinbase = Transaction(
        version=1,
        inputs=(TxIn(NULL_HASH, NULL_INDEX, script_sig),),
        outputs=(TxOut(50 * COIN, _OP_RETURN),),
    )
    header = BlockHeader(1, NULL_HASH, merkle_root([coinbase.hash]), time, bits, nonce)
    return Block(header, (coinbase,))


@dataclass(frozen=True)
class ChainParams:
    name: str
    magic: bytes  # first 4 bytes of every P2P message
    default_port: int
    rpc_port: int
    genesis_time: int
    genesis_bits: int
    genesis_nonce: int
    pow_limit_bits: int
    target_spacing: int  # seconds between blocks the retarget aims for
    asert_half_life: int  # seconds of schedule drift that double or halve the target
    no_retargeting: bool  # regtest keeps the genesis difficulty forever
    coinbase_maturity: int
    dispute_window: int  # seconds after job creation before job transactions may be mined
    job_expiry_blocks: int  # jobs leave the job pool this many blocks after settlement becomes minable
    max_reorg_depth: int  # safety limit on disconnecting blocks
    n_move: int  # blocks a dispute game's mover has before the other side takes the GAME (jobgame)

    @property
    def pow_limit(self) -> int:
        return bits_to_target(self.pow_limit_bits)

    @cached_property
    def genesis(self) -> Block:
        return _genesis_block(self.genesis_time, self.genesis_bits, self.genesis_nonce)

    @property
    def genesis_hash(self) -> bytes:
        return self.genesis.hash_bytes


MAINNET = ChainParams(
    name="mainnet",
    magic=bytes.fromhex("f0ca3e1d"),
    default_port=9733,
    rpc_port=9732,
    genesis_time=1795564800,  # 2026-11-25 00:00:00 UTC
    genesis_bits=0x1F00FFFF,
    genesis_nonce=111014,
    pow_limit_bits=0x1F00FFFF,
    target_spacing=120,
    asert_half_life=6 * 60 * 60,
    no_retargeting=False,
    coinbase_maturity=100,
    dispute_window=600,
    job_expiry_blocks=720,
    max_reorg_depth=1000,
    n_move=30,
)

TESTNET = ChainParams(
    name="testnet",
    magic=bytes.fromhex("0bca3e1d"),
    default_port=19733,
    rpc_port=19732,
    genesis_time=1795564801,
    genesis_bits=0x1F00FFFF,
    genesis_nonce=49364,
    pow_limit_bits=0x1F00FFFF,
    target_spacing=120,
    asert_half_life=60 * 60,
    no_retargeting=False,
    coinbase_maturity=100,
    dispute_window=120,
    job_expiry_blocks=720,
    max_reorg_depth=1000,
    n_move=30,
)

REGTEST = ChainParams(
    name="regtest",
    magic=bytes.fromhex("faca3e1d"),
    default_port=29733,
    rpc_port=29732,
    genesis_time=1795564802,
    genesis_bits=0x207FFFFF,
    genesis_nonce=3,
    pow_limit_bits=0x207FFFFF,
    target_spacing=120,
    asert_half_life=60 * 60,
    no_retargeting=True,
    coinbase_maturity=100,
    dispute_window=5,
    job_expiry_blocks=20,
    max_reorg_depth=10_000,
    n_move=3,
)

NETWORKS = {p.name: p for p in (MAINNET, TESTNET, REGTEST)}


def get_params(network: str) -> ChainParams:
    """Parameters by network name; ValueError naming the choices for an unknown one."""
    try:
        return NETWORKS[network]
    except KeyError:
        raise ValueError(f"unknown network {network!r}; choose one of {', '.join(NETWORKS)}") from None
