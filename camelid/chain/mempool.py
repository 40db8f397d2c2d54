"""Unconfirmed transactions waiting to be mined: admission, ordering, eviction and chain updates.

Admission applies every consensus rule a block would (scripts, double spends,
maturity at the next height, finality, relative lock times) plus relay policy: a
minimum fee rate and no replacement of a transaction that spends the same output. Inputs may come from
the UTXO set or from other pool transactions, so chains of unconfirmed payments work.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field

from camelid.chain.chainstate import ChainState
from camelid.chain.coins import Coin
from camelid.chain.errors import TxRejected, ValidationError
from camelid.chain.jobrules import (
    check_delivery_deadline,
    check_dispute_window,
    check_game_moves,
    check_game_openings,
    check_job_claims,
    delivery_deadline,
)
from camelid.chain.sequencelocks import check_sequence_locks
from camelid.chain.validation import (
    check_transaction,
    check_tx_inputs,
    is_final,
    transaction_sigops,
    verify_tx_scripts,
)
from camelid.core.block import Block
from camelid.core.consensus import MAX_BLOCK_SIGOPS
from camelid.core.script import is_unspendable
from camelid.core.transaction import OutPoint, Transaction

DEFAULT_MIN_RELAY_FEE_RATE = 1  # base units per byte
INCREMENTAL_FEE_RATE = 1  # after an eviction, newcomers must beat the evicted fee rate by this much per byte
ENTRY_OVERHEAD = 400  # estimated bytes of Python bookkeeping per entry, counted towards max_bytes


@dataclass(eq=False)
class MempoolEntry:
    tx: Transaction
    fee: int
    size: int
    sigops: int
    time: int  # when it entered the pool
    height: int  # tip height when it entered
    deliver_before: int | None = None  # a STAKE delivery's deadline D: dropped once the median time past reaches it
    parents: set[bytes] = field(default_factory=set)  # txids of pool transactions it spends
    children: set[bytes] = field(default_factory=set)  # txids of pool transactions spending it

    @property
    def txid(self) -> bytes:
        return self.tx.hash

    @property
    def fee_rate(self) -> float:
        """Base units per byte."""
        return self.fee / self.size


class Mempool:
    """The pool, bounded to `max_bytes` (serialized size plus ENTRY_OVERHEAD per entry)."""

    def __init__(
        self, chainstate: ChainState, max_bytes: int = 50_000_000, min_relay_fee_rate: int = DEFAULT_MIN_RELAY_FEE_RATE
    ) -> None:
        self.chainstate = chainstate
        self.max_bytes = max_bytes
        self.min_relay_fee_rate = min_relay_fee_rate
        self._entries: dict[bytes, MempoolEntry] = {}  # insertion order keeps parents before children
        self._spenders: dict[OutPoint, bytes] = {}  # outpoint -> txid of the pool transaction spending it
        self._bytes = 0
        self._total_fee = 0
        self._evicted_fee_rate = 0.0  # raised by evictions, forgotten once the pool is half empty

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, txid: object) -> bool:
        return txid in self._entries

    def get(self, txid: bytes) -> MempoolEntry | None:
        return self._entries.get(txid)

    def entries(self) -> list[MempoolEntry]:
        """All entries, every parent before its children."""
        return list(self._entries.values())

    @property
    def usage(self) -> int:
        return self._bytes + ENTRY_OVERHEAD * len(self._entries)

    def min_fee_rate(self) -> float:
        """Fee rate (base units per byte) a new transaction must pay right now."""
        if self.usage < self.max_bytes // 2:
            self._evicted_fee_rate = 0.0
        return max(float(self.min_relay_fee_rate), self._evicted_fee_rate)

    def info(self) -> dict[str, int | float]:
        return {
            "size": len(self._entries),
            "bytes": self._bytes,
            "usage": self.usage,
            "total_fee": self._total_fee,
            "min_fee_rate": self.min_fee_rate(),
        }

    # Admission.

    def accept(self, tx: Transaction, now: int | None = None) -> MempoolEntry:
        """Validate `tx` against the tip and the pool and add it; raises TxRejected naming the rule."""
        now = int(time.time()) if now is None else now
        fee, coins = self._validate(tx, dispute_window=True)
        tip = self.chainstate.tip
        entry = MempoolEntry(
            tx, fee, tx.size, transaction_sigops(tx), now, tip.height, delivery_deadline(tx, coins),
        )
        self._add(entry)
        self._trim()
        if tx.hash not in self._entries:
            raise TxRejected("mempool full", f"fee rate {entry.fee_rate:.2f} is among the lowest")
        return entry

    def check(self, tx: Transaction) -> None:
        """Raise TxRejected unless `tx` would enter the pool now by every rule but the job dispute window.

        A compute node checks a payment with it before it delivers: a payment the mempool would refuse
        (non-final, spending more than its input, conflicting with a pool transaction or spending an
        escrow the chain already spent) would never be mined. The dispute window alone keeps an honest
        payment out until t0 + W, so it is the one rule left out. A payment already in the pool passes.
        """
        if tx.hash not in self._entries:
            self._validate(tx, dispute_window=False)

    def spender(self, outpoint: OutPoint) -> bytes | None:
        """The txid of the pool transaction spending `outpoint`, if any."""
        return self._spenders.get(outpoint)

    def _validate(self, tx: Transaction, dispute_window: bool) -> tuple[int, list[Coin]]:
        """(fee, spent coins) of `tx` if it may enter the pool; TxRejected naming the rule it breaks."""
        txid = tx.hash
        if txid in self._entries:
            raise TxRejected("txn-already-in-mempool", tx.txid())
        try:
            check_transaction(tx)
        except ValidationError as exc:
            raise TxRejected(exc.reason, exc.message) from None
        if tx.is_coinbase():
            raise TxRejected("coinbase", "a coinbase is only valid in a block")
        tip = self.chainstate.tip
        height = tip.height + 1
        median_time_past = self.chainstate.median_time_past(tip)
        if not is_final(tx, height, median_time_past):
            raise TxRejected("non-final", f"lock time {tx.lock_time} not reached at height {height}")
        if any(self.chainstate.get_coin(OutPoint(txid, i)) is not None for i in range(len(tx.outputs))):
            raise TxRejected("txn-already-known", f"{tx.txid()} is already confirmed")
        for txin in tx.inputs:
            spender = self._spenders.get(txin.prevout)
            if spender is not None:
                raise TxRejected("txn-mempool-conflict", f"{txin.prevout} is already spent by a pool transaction")

        def mined_at(coin: Coin) -> int:
            """The median time past the coin's block was judged by; a pool parent's is the tip's (the next block's)."""
            return self.chainstate.judged_at(coin.height)

        def lookup(outpoint: OutPoint) -> Coin | None:
            parent = self._entries.get(outpoint.txid)
            if parent is None:
                return self.chainstate.get_coin(outpoint)
            if outpoint.index >= len(parent.tx.outputs):
                return None
            out = parent.tx.outputs[outpoint.index]
            return None if is_unspendable(out.script_pubkey) else Coin(out, height, False)

        try:
            fee, coins = check_tx_inputs(tx, lookup, height, self.chainstate.params)
            check_sequence_locks(tx, coins, height, median_time_past, mined_at, "non-BIP68-final")
            required = self.min_fee_rate() * tx.size
            if fee < required:
                reason = "min relay fee not met" if self._evicted_fee_rate == 0 else "mempool min fee not met"
                raise ValidationError(reason, f"fee {fee} is below {required:.0f} for {tx.size} bytes")
            if dispute_window:
                check_dispute_window(tx, coins, median_time_past, self.chainstate.params, "job-dispute-window")
            check_delivery_deadline(tx, coins, median_time_past, "job-delivery-late")
            verify_tx_scripts(tx, coins, self.chainstate.game_rules)
            check_game_openings(tx, coins, "job-game-open")
            check_game_moves(tx, coins, "job-game-moves")
            check_job_claims(tx, coins, mined_at, self.chainstate.params, "job-claim")
        except ValidationError as exc:
            raise TxRejected(exc.reason, exc.message) from None
        return fee, coins

    def _add(self, entry: MempoolEntry) -> None:
        for txin in entry.tx.inputs:
            self._spenders[txin.prevout] = entry.txid
            parent = self._entries.get(txin.prev_txid)
            if parent is not None:
                entry.parents.add(parent.txid)
                parent.children.add(entry.txid)
        self._entries[entry.txid] = entry
        self._bytes += entry.size
        self._total_fee += entry.fee

    def _remove(self, txid: bytes) -> None:
        """Remove one entry; its children stay (for a mined parent they now spend confirmed coins)."""
        entry = self._entries.pop(txid)
        for txin in entry.tx.inputs:
            self._spenders.pop(txin.prevout, None)
        for parent in entry.parents:
            self._entries[parent].children.discard(txid)
        for child in entry.children:
            self._entries[child].parents.discard(txid)
        self._bytes -= entry.size
        self._total_fee -= entry.fee

    def _remove_with_descendants(self, txid: bytes) -> None:
        pending = [txid]
        while pending:
            current = pending.pop()
            if current in self._entries:
                pending.extend(self._entries[current].children)
                self._remove(current)

    def _trim(self) -> None:
        """Evict the lowest fee-rate entries, with their descendants, until within max_bytes."""
        while self.usage > self.max_bytes and self._entries:
            victim = min(self._entries.values(), key=lambda e: e.fee_rate)
            self._evicted_fee_rate = max(self._evicted_fee_rate, victim.fee_rate + INCREMENTAL_FEE_RATE)
            self._remove_with_descendants(victim.txid)

    # Chain updates.

    def remove_for_block(self, block: Block) -> None:
        """Drop the block's transactions and any pool transaction spending the same outputs (with descendants),
        and the STAKE deliveries the new tip's median time past made late (check_delivery_deadline)."""
        for tx in block.transactions[1:]:
            if tx.hash in self._entries:
                self._remove(tx.hash)
            for txin in tx.inputs:
                conflict = self._spenders.get(txin.prevout)
                if conflict is not None:
                    self._remove_with_descendants(conflict)
        now = self.chainstate.median_time_past(self.chainstate.tip)
        late = [e.txid for e in self._entries.values() if e.deliver_before is not None and e.deliver_before <= now]
        for txid in late:
            self._remove_with_descendants(txid)

    def add_disconnected(self, blocks: list[Block], now: int | None = None) -> None:
        """After a reorganisation: give back the transactions of `blocks` (old tip first).

        Every transaction is revalidated against the new tip, the disconnected ones
        (oldest block first) before those already in the pool; whatever no longer
        validates -- now confirmed, conflicting or spending vanished coins -- is dropped.
        """
        now = int(time.time()) if now is None else now
        returning = [(tx, now) for block in reversed(blocks) for tx in block.transactions[1:]]
        returning += [(entry.tx, entry.time) for entry in self._entries.values()]
        self._entries.clear()
        self._spenders.clear()
        self._bytes = self._total_fee = 0
        for tx, received in returning:
            try:
                self.accept(tx, received)
            except TxRejected:
                continue

    # Mining.

    def select(self, max_bytes: int, max_sigops: int = MAX_BLOCK_SIGOPS) -> list[Transaction]:
        """Transactions for a block, highest fee rate first, every parent before its children."""
        order = {txid: position for position, txid in enumerate(self._entries)}
        missing_parents = {txid: len(e.parents) for txid, e in self._entries.items()}
        ready = [(-e.fee_rate, order[e.txid], e.txid) for e in self._entries.values() if not e.parents]
        heapq.heapify(ready)
        chosen: list[Transaction] = []
        size = sigops = 0
        while ready:
            _, _, txid = heapq.heappop(ready)
            entry = self._entries[txid]
            if size + entry.size > max_bytes or sigops + entry.sigops > max_sigops:
                continue  # its descendants stay out too, since they would need it
            chosen.append(entry.tx)
            size += entry.size
            sigops += entry.sigops
            for child in entry.children:
                missing_parents[child] -= 1
                if missing_parents[child] == 0:
                    child_entry = self._entries[child]
                    heapq.heappush(ready, (-child_entry.fee_rate, order[child], child))
        return chosen
