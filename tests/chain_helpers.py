"""Builders for chain tests: keys, signed P2PKH spends, and mined regtest blocks.

Blocks are built by hand (not through the template code) so tests can break any
single rule: every field of `build_block` can be overridden, and `solve` grinds the
nonce at regtest difficulty, which takes a couple of hashes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from camelid.chain.chainstate import ChainState
from camelid.chain.template import make_coinbase
from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import SEQUENCE_FINAL, block_subsidy
from camelid.core.params import REGTEST
from camelid.core.script import p2pkh_script, p2pkh_script_sig
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto.hashes import sha256
from camelid.crypto.keys import PrivateKey
from camelid.crypto.merkle import merkle_root

REGTEST_NOW = 1_900_000_000  # a clock far past every block time the tests produce


def make_key(seed: int) -> PrivateKey:
    """A deterministic key, so failures reproduce."""
    return PrivateKey.from_bytes(sha256(seed.to_bytes(8, "big")), network="regtest")


def p2pkh_for(key: PrivateKey) -> bytes:
    return p2pkh_script(key.public_key.hash160())


@dataclass(frozen=True)
class Spendable:
    """An output the tests can spend: where it is, what it holds, and the key that owns it."""

    outpoint: OutPoint
    value: int
    key: PrivateKey

    @property
    def script_pubkey(self) -> bytes:
        return p2pkh_for(self.key)


def spend(
    coins: Sequence[Spendable],
    outputs: Sequence[TxOut],
    *,
    lock_time: int = 0,
    sequence: int | Sequence[int] = SEQUENCE_FINAL,
    version: int = 1,
) -> Transaction:
    """A transaction spending `coins` (P2PKH, each signed by its own key) to `outputs`; `sequence` for every
    input or one per input."""
    sequences = [sequence] * len(coins) if isinstance(sequence, int) else sequence
    inputs = [TxIn(c.outpoint.txid, c.outpoint.index, b"", s) for c, s in zip(coins, sequences, strict=True)]
    unsigned = Transaction(version, inputs, tuple(outputs), lock_time)
    signed_inputs = []
    for index, coin in enumerate(coins):
        digest = unsigned.signature_hash(index, coin.script_pubkey, coin.value, SIGHASH_ALL)
        sig = coin.key.sign(digest) + bytes([SIGHASH_ALL])
        signed_inputs.append(replace(inputs[index], script_sig=p2pkh_script_sig(sig, coin.key.public_key.to_bytes())))
    return replace(unsigned, inputs=tuple(signed_inputs))


def pay(coin: Spendable, key: PrivateKey, fee: int = 1_000, pieces: int = 1) -> Transaction:
    """Spend `coin` to `key` in `pieces` equal outputs, leaving `fee`."""
    share = (coin.value - fee) // pieces
    return spend([coin], [TxOut(share, p2pkh_for(key))] * pieces)


def outputs_of(tx: Transaction, key: PrivateKey) -> list[Spendable]:
    """The outputs of `tx` as Spendables owned by `key`."""
    return [Spendable(OutPoint(tx.hash, i), out.value, key) for i, out in enumerate(tx.outputs)]


def solve(block: Block, pow_limit: int) -> Block:
    """Grind the nonce until the header meets its target."""
    header = block.header
    while not header.check_pow(pow_limit):
        header = header.with_nonce(header.nonce + 1)
    return Block(header, block.transactions)


def build_block(
    chain: ChainState,
    txs: Sequence[Transaction] = (),
    *,
    parent: bytes | None = None,
    key: PrivateKey | None = None,
    coinbase: Transaction | None = None,
    fees: int = 0,
    time: int | None = None,
    bits: int | None = None,
    merkle: bytes | None = None,
    extra_nonce: int = 0,
    solved: bool = True,
) -> Block:
    """A valid block on `parent` (default: the tip) unless an override breaks it."""
    prev = chain.get_entry(parent) if parent is not None else chain.tip
    assert prev is not None, "parent must be in the block index"
    height = prev.height + 1
    if coinbase is None:
        script = p2pkh_for(key if key is not None else make_key(0))
        coinbase = make_coinbase(height, extra_nonce, script, block_subsidy(height) + fees)
    transactions = (coinbase, *txs)
    header = BlockHeader(
        version=1,
        prev_hash=prev.hash,
        merkle_root=merkle if merkle is not None else merkle_root([tx.hash for tx in transactions]),
        time=time if time is not None else prev.header.time + chain.params.target_spacing,
        bits=bits if bits is not None else chain.next_bits(prev),
        nonce=0,
    )
    block = Block(header, transactions)
    return solve(block, chain.params.pow_limit) if solved else block


def child_of(
    parent: Block, height: int, txs: Sequence[Transaction] = (), *, fees: int = 0, key: PrivateKey | None = None
) -> Block:
    """A regtest block on a parent the chain state may not know yet (so it can arrive as an orphan)."""
    script = p2pkh_for(key if key is not None else make_key(0))
    coinbase = make_coinbase(height, 0, script, block_subsidy(height) + fees)
    transactions = (coinbase, *txs)
    header = BlockHeader(
        1,
        parent.hash_bytes,
        merkle_root([tx.hash for tx in transactions]),
        parent.header.time + REGTEST.target_spacing,
        parent.header.bits,
        0,
    )
    return solve(Block(header, transactions), REGTEST.pow_limit)


def mine(
    chain: ChainState, count: int = 1, *, key: PrivateKey | None = None, parent: bytes | None = None
) -> list[Block]:
    """Build and process `count` empty blocks in a row (on `parent`, default the tip)."""
    blocks = []
    for _ in range(count):
        block = build_block(chain, key=key, parent=parent)
        chain.process_block(block, now=REGTEST_NOW)
        blocks.append(block)
        parent = block.hash_bytes
    return blocks


def coinbase_spendable(block: Block, key: PrivateKey) -> Spendable:
    """The first coinbase output of `block`, owned by `key`."""
    coinbase = block.transactions[0]
    return Spendable(OutPoint(coinbase.hash, 0), coinbase.outputs[0].value, key)
