"""The wallet's transactions and where each stands: in a block at some height, or unconfirmed.

The ledger learns from block connects and disconnects (a reorganisation is a run of
disconnects, then connects) and from transactions accepted into the mempool. A
transaction is kept when it pays one of our scripts or spends one of our outputs.
Which outputs are spent, trusted or mature is derived from the kept transactions
rather than stored, so undoing a block cannot leave a stale flag behind.
Trust follows Bitcoin Core's CachedTxIsTrusted: a confirmed transaction is trusted;
an unconfirmed one only if every input spends our own output of a trusted parent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from camelid.core.block import Block
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.wallet.records import field

IsMine = Callable[[bytes], bool]


@dataclass
class WalletTx:
    """A transaction of ours and its place in the chain (height None while unconfirmed)."""

    tx: Transaction
    time: int  # UNIX time first seen: mempool acceptance, or the block's time when first seen in a block
    height: int | None = None
    block_hash: bytes | None = None
    block_time: int | None = None

    @property
    def is_confirmed(self) -> bool:
        return self.height is not None


@dataclass(frozen=True)
class OwnedOutput:
    """An unspent output paying one of our scripts, with the transaction that created it."""

    outpoint: OutPoint
    txout: TxOut
    wtx: WalletTx


class Ledger:
    def __init__(self, coinbase_maturity: int, is_mine: IsMine) -> None:
        self._maturity = coinbase_maturity
        self.is_mine = is_mine  # does a scriptPubKey pay one of our keys
        self.transactions: dict[bytes, WalletTx] = {}  # by tx hash, in the order first seen
        self.tip_height = -1  # height of the last connected block; -1 before any
        self.tip_hash: bytes | None = None

    # -- learning --------------------------------------------------------------------------------

    def add_unconfirmed(self, tx: Transaction) -> bool:
        """Keep `tx` (accepted into the mempool) if it concerns us; True if the ledger changed."""
        if tx.hash in self.transactions or not self.is_relevant(tx):
            return False
        self.transactions[tx.hash] = WalletTx(tx, int(time.time()))
        return True

    def connect_block(self, block: Block, height: int) -> list[Transaction]:
        """Record the block's transactions that concern us as confirmed; returns them.

        Unconfirmed transactions that spend an outpoint this block spends differently can
        never confirm any more, so they and their descendants are dropped.
        """
        spent_here = {txin.prevout: tx.hash for tx in block.transactions for txin in tx.inputs}
        conflicted = [
            wtx.tx.hash
            for wtx in self.transactions.values()
            if not wtx.is_confirmed
            and any(spent_here.get(txin.prevout, wtx.tx.hash) != wtx.tx.hash for txin in wtx.tx.inputs)
        ]
        self._remove_with_descendants(conflicted)
        ours = []
        for tx in block.transactions:
            wtx = self.transactions.get(tx.hash)
            if wtx is None and self.is_relevant(tx):
                wtx = self.transactions[tx.hash] = WalletTx(tx, block.header.time)
            if wtx is not None:
                wtx.height, wtx.block_hash, wtx.block_time = height, block.hash_bytes, block.header.time
                ours.append(tx)
        self.tip_height, self.tip_hash = height, block.hash_bytes
        return ours

    def disconnect_block(self, block: Block, height: int) -> None:
        """Undo connect_block: the block's transactions go back to unconfirmed, its coinbase is forgotten."""
        self._unconfirm([self.transactions[tx.hash] for tx in block.transactions if tx.hash in self.transactions])
        self.tip_height, self.tip_hash = height - 1, block.header.prev_hash

    def disconnect_from(self, height: int) -> None:
        """Undo every block at `height` and above at once, before a rescan re-reads them."""
        self._unconfirm([wtx for wtx in self.transactions.values() if wtx.height is not None and wtx.height >= height])
        self.tip_height, self.tip_hash = height - 1, None

    def _unconfirm(self, wtxs: list[WalletTx]) -> None:
        # A coinbase cannot return to the mempool, so it and anything spending it are gone.
        self._remove_with_descendants([wtx.tx.hash for wtx in wtxs if wtx.tx.is_coinbase()])
        for wtx in wtxs:
            if not wtx.tx.is_coinbase():
                wtx.height = wtx.block_hash = wtx.block_time = None

    def remove_unconfirmed(self, tx_hash: bytes) -> bool:
        """Forget an unconfirmed transaction and its descendants (abandoned, or evicted from the mempool)."""
        wtx = self.transactions.get(tx_hash)
        if wtx is None or wtx.is_confirmed:
            return False
        self._remove_with_descendants([tx_hash])
        return True

    def _remove_with_descendants(self, roots: list[bytes]) -> None:
        pending = list(roots)
        while pending:
            removed = self.transactions.pop(pending.pop(), None)
            if removed is None:
                continue
            pending += [
                wtx.tx.hash
                for wtx in self.transactions.values()
                if any(txin.prev_txid == removed.tx.hash for txin in wtx.tx.inputs)
            ]

    # -- what the transactions mean --------------------------------------------------------------

    def is_relevant(self, tx: Transaction) -> bool:
        return any(self.is_mine(out.script_pubkey) for out in tx.outputs) or self.debit(tx) > 0

    def owned_prevout(self, outpoint: OutPoint) -> TxOut | None:
        """The output `outpoint` refers to, if it is in a wallet transaction and pays us."""
        parent = self.transactions.get(outpoint.txid)
        if parent is None or outpoint.index >= len(parent.tx.outputs):
            return None
        txout = parent.tx.outputs[outpoint.index]
        return txout if self.is_mine(txout.script_pubkey) else None

    def debit(self, tx: Transaction) -> int:
        """Value of our outputs that `tx` spends."""
        prevouts = (self.owned_prevout(txin.prevout) for txin in tx.inputs)
        return sum(out.value for out in prevouts if out is not None)

    def is_from_me_entirely(self, tx: Transaction) -> bool:
        """Every input spends an output of ours, so the wallet knows the fee."""
        return not tx.is_coinbase() and all(self.owned_prevout(txin.prevout) is not None for txin in tx.inputs)

    def depth(self, wtx: WalletTx) -> int:
        """Confirmations: 1 in the tip block, 0 while unconfirmed."""
        return 0 if wtx.height is None else self.tip_height - wtx.height + 1

    def blocks_to_maturity(self, wtx: WalletTx) -> int:
        """Blocks before a coinbase may be spent, counting as Core does (maturity + 1 confirmations).

        Consensus needs `maturity` blocks between the coinbase and the spending block;
        Core's wallet waits one more so that its spend survives a one-block reorganisation.
        """
        if not wtx.tx.is_coinbase():
            return 0
        return max(0, self._maturity + 1 - self.depth(wtx))

    def is_trusted(self, wtx: WalletTx) -> bool:
        return self._is_trusted(wtx, set())

    def _is_trusted(self, wtx: WalletTx, visiting: set[bytes]) -> bool:
        if wtx.is_confirmed:
            return True
        if wtx.tx.hash in visiting or not self.is_from_me_entirely(wtx.tx):
            return False
        visiting.add(wtx.tx.hash)
        return all(self._is_trusted(self.transactions[txin.prev_txid], visiting) for txin in wtx.tx.inputs)

    def spent_outpoints(self) -> set[OutPoint]:
        return {txin.prevout for wtx in self.transactions.values() for txin in wtx.tx.inputs}

    def unspent(self) -> Iterator[OwnedOutput]:
        """Every output paying us that no wallet transaction spends, mature or not."""
        spent = self.spent_outpoints()
        for wtx in self.transactions.values():
            for index, txout in enumerate(wtx.tx.outputs):
                outpoint = OutPoint(wtx.tx.hash, index)
                if outpoint not in spent and self.is_mine(txout.script_pubkey):
                    yield OwnedOutput(outpoint, txout, wtx)

    # -- file record -----------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        return {
            "tip_height": self.tip_height,
            "tip_hash": self.tip_hash,
            "transactions": [
                {
                    "raw": wtx.tx.to_bytes(),
                    "time": wtx.time,
                    "height": wtx.height,
                    "block_hash": wtx.block_hash,
                    "block_time": wtx.block_time,
                }
                for wtx in self.transactions.values()
            ],
        }

    def load_record(self, record: dict[str, Any]) -> None:
        """Replace the contents with to_record's map; ValueError naming the damaged field."""
        transactions = {}
        for item in field(record, "transactions", list):
            tx = Transaction.from_bytes(field(item, "raw", bytes))
            transactions[tx.hash] = WalletTx(
                tx,
                field(item, "time", int),
                field(item, "height", int, optional=True),
                field(item, "block_hash", bytes, optional=True),
                field(item, "block_time", int, optional=True),
            )
        self.transactions = transactions
        self.tip_height = field(record, "tip_height", int)
        self.tip_hash = field(record, "tip_hash", bytes, optional=True)
