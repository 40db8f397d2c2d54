"""Block templates for miners: the tip's successor with a coinbase and the best-paying pool transactions."""

from __future__ import annotations

from camelid.chain.chainstate import ChainState
from camelid.chain.mempool import Mempool
from camelid.chain.validation import coinbase_height_prefix, transaction_sigops
from camelid.core.block import HEADER_SIZE, Block, BlockHeader
from camelid.core.consensus import MAX_BLOCK_SIGOPS, MAX_BLOCK_SIZE, block_subsidy
from camelid.core.script import push_int
from camelid.core.transaction import NULL_HASH, NULL_INDEX, Transaction, TxIn, TxOut
from camelid.crypto.merkle import merkle_root

BLOCK_VERSION = 1
_TX_COUNT_SIZE = 5  # the largest CompactSize a block's transaction count can need


def make_coinbase(height: int, extra_nonce: int, script_pubkey: bytes, value: int) -> Transaction:
    """Coinbase whose scriptSig pushes the height (so coinbase txids never repeat) and the extra nonce."""
    script_sig = coinbase_height_prefix(height) + push_int(extra_nonce)
    return Transaction(inputs=(TxIn(NULL_HASH, NULL_INDEX, script_sig),), outputs=(TxOut(value, script_pubkey),))


def build_block_template(
    chainstate: ChainState, mempool: Mempool, coinbase_script: bytes, extra_nonce: int, now: int
) -> Block:
    """An unsolved block (nonce 0) on the tip paying subsidy plus fees to `coinbase_script`.

    The time is `now`, or one second past the median time past if the clock lags it.
    """
    tip = chainstate.tip
    height = tip.height + 1
    placeholder = make_coinbase(height, extra_nonce, coinbase_script, 0)  # same size as the final one
    txs = mempool.select(
        MAX_BLOCK_SIZE - HEADER_SIZE - _TX_COUNT_SIZE - placeholder.size,
        MAX_BLOCK_SIGOPS - transaction_sigops(placeholder),
    )
    fees = 0
    for tx in txs:
        entry = mempool.get(tx.hash)
        assert entry is not None
        fees += entry.fee
    coinbase = make_coinbase(height, extra_nonce, coinbase_script, block_subsidy(height) + fees)
    transactions = (coinbase, *txs)
    header = BlockHeader(
        version=BLOCK_VERSION,
        prev_hash=tip.hash,
        merkle_root=merkle_root([tx.hash for tx in transactions]),
        time=max(now, chainstate.median_time_past(tip) + 1),
        bits=chainstate.next_bits(tip),
        nonce=0,
    )
    return Block(header, transactions)
