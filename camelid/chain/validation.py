"""Consensus rules for transactions and blocks, each failure named with Bitcoin Core's reason string.

The checks are split the way Core splits them, because each stage needs different
context: `check_transaction`/`check_block` need nothing but the data,
`check_block_header_context`/`check_block_context` need the parent chain, and
`connect_block` needs the UTXO set. The chain state and the mempool both call
these; they raise ValidationError, which callers turn into BlockRejected or TxRejected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from camelid.chain.checkqueue import CheckQueue, CheckSession
from camelid.chain.coins import Coin, CoinsView
from camelid.chain.errors import ValidationError
from camelid.chain.jobrules import (
    JOB_SCRIPT_REJECTIONS,
    check_delivery_deadline,
    check_dispute_window,
    check_game_moves,
    check_game_openings,
    check_job_claims,
)
from camelid.chain.scripts import p2pkh_spend, verify_input_script
from camelid.chain.sequencelocks import check_sequence_locks
from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import (
    COINBASE_SCRIPT_MAX,
    COINBASE_SCRIPT_MIN,
    LOCKTIME_THRESHOLD,
    MAX_BLOCK_SIGOPS,
    MAX_BLOCK_SIZE,
    MAX_FUTURE_BLOCK_TIME,
    MAX_MONEY,
    MAX_TX_SIZE,
    SEQUENCE_FINAL,
    block_subsidy,
    money_range,
)
from camelid.core.interpreter import verify_script
from camelid.core.jobgame import GameRules
from camelid.core.opcodes import MAX_DIRECT_PUSH, Opcode
from camelid.core.params import ChainParams
from camelid.core.script import ScriptError, is_unspendable, match_p2pkh, parse_script, push_int
from camelid.core.sigchecker import SighashCache, TransactionSignatureChecker
from camelid.core.transaction import NULL_HASH, NULL_INDEX, OutPoint, Transaction

_SIGOP_CODES = frozenset((Opcode.OP_CHECKSIG, Opcode.OP_CHECKSIGVERIFY))
_CHECKSIG = bytes([Opcode.OP_CHECKSIG])
_CHECKSIGVERIFY = bytes([Opcode.OP_CHECKSIGVERIFY])
_MIN_TX_SIZE = 4 + 1 + 1 + 4 + 32


def check_transaction(tx: Transaction) -> None:
    """Rules that need only the transaction itself (Core's CheckTransaction)."""
    if not tx.inputs:
        raise ValidationError("bad-txns-vin-empty", "transaction has no inputs")
    if not tx.outputs:
        raise ValidationError("bad-txns-vout-empty", "transaction has no outputs")
    if tx.size > MAX_TX_SIZE:
        raise ValidationError("bad-txns-oversize", f"{tx.size} bytes exceeds {MAX_TX_SIZE}")
    total = 0
    for out in tx.outputs:
        if out.value < 0:
            raise ValidationError("bad-txns-vout-negative", f"output value {out.value}")
        if out.value > MAX_MONEY:
            raise ValidationError("bad-txns-vout-toolarge", f"output value {out.value} exceeds MAX_MONEY")
        total += out.value
        if total > MAX_MONEY:
            raise ValidationError("bad-txns-txouttotal-toolarge", f"outputs total {total} exceeds MAX_MONEY")
    prevouts = {(txin.prev_txid, txin.prev_index) for txin in tx.inputs}
    if len(prevouts) != len(tx.inputs):
        raise ValidationError("bad-txns-inputs-duplicate", "transaction spends the same output twice")
    if tx.is_coinbase():
        length = len(tx.inputs[0].script_sig)
        if not COINBASE_SCRIPT_MIN <= length <= COINBASE_SCRIPT_MAX:
            allowed = f"{COINBASE_SCRIPT_MIN}..{COINBASE_SCRIPT_MAX}"
            raise ValidationError("bad-cb-length", f"coinbase scriptSig is {length} bytes, allowed {allowed}")
    elif (NULL_HASH, NULL_INDEX) in prevouts:
        raise ValidationError("bad-txns-prevout-null", "non-coinbase transaction spends the null outpoint")


def script_sigops(script: bytes) -> int:
    """Signature operations in a script, counted statically; a script that does not parse can never run: 0."""
    if _CHECKSIG not in script and _CHECKSIGVERIFY not in script:  # no such byte anywhere: no parse needed
        return 0
    if match_p2pkh(script) is not None:
        return 1
    if _direct_pushes_only(script):  # the usual scriptSig, whose signature or key holds such a byte
        return 0
    try:
        return sum(1 for op in parse_script(script) if op.opcode in _SIGOP_CODES)
    except ScriptError:
        return 0


def _direct_pushes_only(script: bytes) -> bool:
    """True if `script` is nothing but complete pushes of 1 to 75 bytes (opcode = length)."""
    position = 0
    while position < len(script):
        size = script[position]
        if not 1 <= size <= MAX_DIRECT_PUSH:
            return False
        position += 1 + size
    return position == len(script)


def transaction_sigops(tx: Transaction) -> int:
    """Legacy sigop count: every CHECKSIG in scriptSigs and scriptPubKeys, executed or not."""
    return sum(script_sigops(txin.script_sig) for txin in tx.inputs) + sum(
        script_sigops(out.script_pubkey) for out in tx.outputs
    )


def check_block(block: Block, params: ChainParams) -> None:
    """Rules that need only the block itself (Core's CheckBlock), cheapest first."""
    if not block.header.check_pow(params.pow_limit):
        raise ValidationError("high-hash", "proof of work does not meet the target in bits")
    txs = block.transactions
    if block.compute_merkle_root() != block.header.merkle_root:
        raise ValidationError("bad-txnmrklroot", "merkle root does not match the transactions")
    # Also catches CVE-2012-2459: repeating the last transactions keeps the merkle root.
    if len({tx.hash for tx in txs}) != len(txs):
        raise ValidationError("bad-txns-duplicate", "the same transaction appears twice")
    if not txs or len(txs) * _MIN_TX_SIZE > MAX_BLOCK_SIZE or block.size > MAX_BLOCK_SIZE:
        raise ValidationError("bad-blk-length", f"{len(txs)} transactions in {block.size} bytes")
    if not txs[0].is_coinbase():
        raise ValidationError("bad-cb-missing", "first transaction is not a coinbase")
    if any(tx.is_coinbase() for tx in txs[1:]):
        raise ValidationError("bad-cb-multiple", "more than one coinbase")
    for tx in txs:
        try:
            check_transaction(tx)
        except ValidationError as exc:
            raise ValidationError(exc.reason, f"transaction {tx.txid()}: {exc.message}") from None
    sigops = sum(transaction_sigops(tx) for tx in txs)
    if sigops > MAX_BLOCK_SIGOPS:
        raise ValidationError("bad-blk-sigops", f"{sigops} signature operations exceed {MAX_BLOCK_SIGOPS}")


def check_block_header_context(header: BlockHeader, expected_bits: int, median_time_past: int, now: int) -> None:
    """Rules tying a header to its parent (Core's ContextualCheckBlockHeader)."""
    if header.bits != expected_bits:
        raise ValidationError("bad-diffbits", f"bits {header.bits:#010x}, expected {expected_bits:#010x}")
    if header.time <= median_time_past:
        raise ValidationError("time-too-old", f"time {header.time} is not after median time past {median_time_past}")
    if header.time > now + MAX_FUTURE_BLOCK_TIME:
        raise ValidationError("time-too-new", f"time {header.time} is more than 2 hours after {now}")


def is_final(tx: Transaction, height: int, time: int) -> bool:
    """IsFinalTx: the lock time has passed (as a height or a time), or every input opted out of it."""
    if tx.lock_time == 0:
        return True
    if tx.lock_time < (height if tx.lock_time < LOCKTIME_THRESHOLD else time):
        return True
    return all(txin.sequence == SEQUENCE_FINAL for txin in tx.inputs)


def coinbase_height_prefix(height: int) -> bytes:
    """What a coinbase scriptSig must start with (BIP34): the height pushed as a script number."""
    return push_int(height)


def check_block_context(block: Block, height: int, median_time_past: int) -> None:
    """Rules tying a block's transactions to its height (Core's ContextualCheckBlock).

    Lock times are judged against the parent's median time past (BIP113), which
    miners cannot push forward the way they can a single block's timestamp.
    """
    for tx in block.transactions:
        if not is_final(tx, height, median_time_past):
            raise ValidationError("bad-txns-nonfinal", f"transaction {tx.txid()} is not final")
    if not block.transactions[0].inputs[0].script_sig.startswith(coinbase_height_prefix(height)):
        raise ValidationError("bad-cb-height", f"coinbase does not start with height {height}")


def check_tx_inputs(
    tx: Transaction, lookup: Callable[[OutPoint], Coin | None], spend_height: int, params: ChainParams
) -> tuple[int, list[Coin]]:
    """Inputs exist, are mature and cover the outputs; returns (fee, spent coins in input order)."""
    coins = []
    value_in = 0
    for txin in tx.inputs:
        coin = lookup(txin.prevout)
        if coin is None:
            raise ValidationError("bad-txns-inputs-missingorspent", f"input {txin.prevout} is missing or spent")
        if coin.is_coinbase and spend_height - coin.height < params.coinbase_maturity:
            raise ValidationError(
                "bad-txns-premature-spend-of-coinbase",
                f"coinbase from height {coin.height} spent at {spend_height}, needs {params.coinbase_maturity} blocks",
            )
        value_in += coin.tx_out.value
        coins.append(coin)
    if not money_range(value_in):
        raise ValidationError("bad-txns-inputvalues-outofrange", f"inputs total {value_in}")
    value_out = sum(out.value for out in tx.outputs)
    if value_in < value_out:
        raise ValidationError("bad-txns-in-belowout", f"inputs {value_in} are below outputs {value_out}")
    return value_in - value_out, coins


class _Deferred(NamedTuple):
    """A queued P2PKH input: what the interpreter needs to re-judge it if its signature check fails."""

    tx: Transaction
    index: int
    coin: Coin
    sighashes: SighashCache


def verify_tx_scripts(
    tx: Transaction,
    coins: list[Coin],
    game: GameRules | None = None,
    deferred: CheckSession[_Deferred] | None = None,
) -> None:
    """Every input's scriptSig satisfies the output it spends, signed over this transaction.

    `game` (the chain's move timeout and referee) judges game openings and moves; without it none passes. With
    `deferred` (a block's check queue), the signature check of each standard P2PKH input
    is queued there instead of run now; `raise_deferred_failure` judges the queue.
    """
    sighashes = SighashCache(tx)
    for index, (txin, coin) in enumerate(zip(tx.inputs, coins, strict=True)):
        if deferred is not None:
            script_pubkey = coin.tx_out.script_pubkey
            spend = p2pkh_spend(txin.script_sig, script_pubkey)
            if spend is not None:
                check = sighashes.signature_check(index, *spend, script_pubkey, coin.tx_out.value)
                if check is not None:
                    deferred.add(check, _Deferred(tx, index, coin, sighashes))
                    continue
        _judge_input(tx, index, coin, sighashes, game, verify_input_script)


def _judge_input(
    tx: Transaction,
    index: int,
    coin: Coin,
    sighashes: SighashCache,
    game: GameRules | None,
    verify: Callable[[bytes, bytes, TransactionSignatureChecker], None],
) -> None:
    checker = TransactionSignatureChecker(tx, index, coin.tx_out.value, sighashes, game)
    try:
        verify(tx.inputs[index].script_sig, coin.tx_out.script_pubkey, checker)
    except ScriptError as exc:
        reason = JOB_SCRIPT_REJECTIONS.get(exc.reason, f"mandatory-script-verify-flag-failed ({exc.reason})")
        raise ValidationError(reason, f"input {index} of {tx.txid()}: {exc}") from None


def raise_deferred_failure(deferred: CheckSession[_Deferred]) -> None:
    """Wait for the queued checks; the first input (in block order) whose check failed is judged by the
    full interpreter, which raises with the reason the one-by-one path would give."""
    for item in deferred.failures():
        try:
            _judge_input(*item, None, verify_script)
        except ValidationError as exc:
            raise ValidationError(exc.reason, f"transaction {item.tx.txid()}: {exc.message}") from None


def add_outputs(view: CoinsView, tx: Transaction, height: int) -> None:
    """Add a transaction's outputs to the UTXO set, except provably unspendable ones (OP_RETURN)."""
    coinbase = tx.is_coinbase()
    for index, out in enumerate(tx.outputs):
        if not is_unspendable(out.script_pubkey):
            view.add(OutPoint(tx.hash, index), Coin(out, height, coinbase))


def connect_block(
    block: Block,
    height: int,
    view: CoinsView,
    params: ChainParams,
    median_time_past: int,
    median_time_at: Callable[[int], int],
    game: GameRules | None = None,
    checks: CheckQueue | None = None,
) -> list[Coin]:
    """Apply a block to `view` after checking every input; returns its undo data (the coins spent).

    Inputs may spend outputs of earlier transactions in the same block, never later
    ones, and never an output already spent (in the block or before). `median_time_past`
    is the parent's (BIP113), which relative lock times (BIP68) and the dispute window are
    judged against; game openings and moves are judged under `game` (without it, none is valid).
    `median_time_at(h)` is the median time past the block at height h < `height` of this chain was
    judged by (a job claim needs its PAYOUT's, a time-locked input its coin's).

    Standard signature checks are queued during the walk and run on `checks`' threads
    after it. Every check queued before a failure precedes it in block order, so on any
    failure the queued checks are judged first: the first failing rule in block order
    names the rejection, as if the inputs had been checked one by one, on any number of
    threads.
    """
    coinbase, *others = block.transactions
    add_outputs(view, coinbase, height)
    deferred: CheckSession[_Deferred] = (checks or CheckQueue()).session()
    spent: list[Coin] = []
    fees = 0

    def mined_at(coin: Coin) -> int:
        return median_time_past if coin.height >= height else median_time_at(coin.height)

    for tx in others:
        try:
            fee, coins = check_tx_inputs(tx, view.get, height, params)
            check_sequence_locks(tx, coins, height, median_time_past, mined_at, "bad-txns-nonfinal")
            check_dispute_window(tx, coins, median_time_past, params, "bad-job-dispute-window")
            check_delivery_deadline(tx, coins, median_time_past, "bad-job-delivery-late")
            check_job_claims(tx, coins, mined_at, params, "bad-job-claim")
            verify_tx_scripts(tx, coins, game, deferred)
            check_game_openings(tx, coins, "bad-job-game-open")
            check_game_moves(tx, coins, "bad-job-game-moves")
        except ValidationError as exc:
            raise_deferred_failure(deferred)
            raise ValidationError(exc.reason, f"transaction {tx.txid()}: {exc.message}") from None
        fees += fee
        for txin in tx.inputs:
            view.spend(txin.prevout)
        spent += coins
        add_outputs(view, tx, height)
    raise_deferred_failure(deferred)
    reward = sum(out.value for out in coinbase.outputs)
    allowed = block_subsidy(height) + fees
    if reward > allowed:
        raise ValidationError("bad-cb-amount", f"coinbase pays {reward}, limit is {allowed}")
    return spent


def disconnect_block(block: Block, spent: list[Coin], view: CoinsView) -> None:
    """Undo `connect_block`: remove the block's outputs and restore the coins it spent."""
    expected = sum(len(tx.inputs) for tx in block.transactions[1:])
    if len(spent) != expected:
        raise ValueError(f"undo data holds {len(spent)} coins, the block spent {expected}")
    restore = iter(reversed(spent))
    for tx in reversed(block.transactions):
        for index, out in enumerate(tx.outputs):
            if is_unspendable(out.script_pubkey):
                continue
            outpoint = OutPoint(tx.hash, index)
            if view.get(outpoint) is None:
                raise ValueError(f"output {outpoint} to disconnect is not in the UTXO set")
            view.spend(outpoint)
        if not tx.is_coinbase():
            for txin in reversed(tx.inputs):
                view.add(txin.prevout, next(restore))
