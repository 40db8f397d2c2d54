"""What the wallet reports about its ledger: balances, unspent outputs and transactions, as Core computes them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from camelid.core.serialize import hash_to_hex
from camelid.wallet.ledger import Ledger, WalletTx

AddressOf = Callable[[bytes], str | None]  # script_pubkey -> its P2PKH address on our network, None if not P2PKH


@dataclass(frozen=True)
class Balances:
    """getbalances' "mine": spendable now, unconfirmed from others, and coinbase not yet mature (base units)."""

    trusted: int
    untrusted_pending: int
    immature: int


@dataclass(frozen=True)
class UnspentEntry:
    txid: str
    vout: int
    address: str
    label: str
    script_pubkey: bytes
    amount: int
    confirmations: int
    safe: bool  # Core's "safe": trusted, so it will not vanish unless double-spent by us


@dataclass(frozen=True)
class TransactionEntry:
    """One line of listtransactions: an output received, or one sent (amount and fee negative)."""

    txid: str
    category: str  # "send", "receive", "generate" or "immature"
    address: str
    label: str | None
    vout: int
    amount: int
    fee: int | None  # sends only, when every input was ours
    confirmations: int
    trusted: bool
    blockhash: str | None
    blockheight: int | None
    blocktime: int | None
    time: int


def balances(ledger: Ledger, min_depth: int) -> Balances:
    """Core's GetBalance: trusted counts only outputs with at least `min_depth` confirmations."""
    trusted = untrusted = immature = 0
    for coin in ledger.unspent():
        wtx = coin.wtx
        depth = ledger.depth(wtx)
        if ledger.blocks_to_maturity(wtx) > 0:
            immature += coin.txout.value
        elif ledger.is_trusted(wtx):
            if depth >= min_depth:
                trusted += coin.txout.value
        elif depth == 0:
            untrusted += coin.txout.value
    return Balances(trusted, untrusted, immature)


def unspent_entries(
    ledger: Ledger, address_of: AddressOf, labels: dict[str, str], min_depth: int, max_depth: int
) -> list[UnspentEntry]:
    """Core's listunspent: mature outputs with confirmations in [min_depth, max_depth]; unconfirmed only if trusted."""
    entries = []
    for coin in ledger.unspent():
        depth = ledger.depth(coin.wtx)
        safe = ledger.is_trusted(coin.wtx)
        if ledger.blocks_to_maturity(coin.wtx) > 0 or not min_depth <= depth <= max_depth or (depth == 0 and not safe):
            continue
        address = address_of(coin.txout.script_pubkey) or coin.txout.script_pubkey.hex()
        entries.append(
            UnspentEntry(
                hash_to_hex(coin.outpoint.txid),
                coin.outpoint.index,
                address,
                labels.get(address, ""),
                coin.txout.script_pubkey,
                coin.txout.value,
                depth,
                safe,
            )
        )
    return entries


def transaction_entries(ledger: Ledger, address_of: AddressOf, labels: dict[str, str]) -> list[TransactionEntry]:
    """Every listtransactions line, oldest first, as Core's ListTransactions.

    A transaction spending our coins gives a "send" line per output that is not
    change (change: ours, but not an address we handed out, so not in `labels`);
    every output paying us that is not such change gives a receive line too.
    """
    entries = []
    for wtx in ledger.transactions.values():
        debit = ledger.debit(wtx.tx)
        fee = debit - sum(o.value for o in wtx.tx.outputs) if ledger.is_from_me_entirely(wtx.tx) else None
        for vout, txout in enumerate(wtx.tx.outputs):
            address = address_of(txout.script_pubkey) or txout.script_pubkey.hex()
            mine = ledger.is_mine(txout.script_pubkey)
            if debit > 0 and mine and address not in labels:
                continue  # change
            line = _Line(ledger, wtx, vout, address, labels.get(address) if mine else None)
            if debit > 0:
                entries.append(line.entry("send", -txout.value, None if fee is None else -fee))
            if mine:
                entries.append(line.entry(_receive_category(ledger, wtx), txout.value, None))
    return entries


def _receive_category(ledger: Ledger, wtx: WalletTx) -> str:
    if not wtx.tx.is_coinbase():
        return "receive"
    return "immature" if ledger.blocks_to_maturity(wtx) > 0 else "generate"


@dataclass(frozen=True)
class _Line:
    """What the send and receive lines of one output share."""

    ledger: Ledger
    wtx: WalletTx
    vout: int
    address: str
    label: str | None

    def entry(self, category: str, amount: int, fee: int | None) -> TransactionEntry:
        wtx = self.wtx
        return TransactionEntry(
            txid=wtx.tx.txid(),
            category=category,
            address=self.address,
            label=self.label,
            vout=self.vout,
            amount=amount,
            fee=fee,
            confirmations=self.ledger.depth(wtx),
            trusted=self.ledger.is_trusted(wtx),
            blockhash=None if wtx.block_hash is None else hash_to_hex(wtx.block_hash),
            blockheight=wtx.height,
            blocktime=wtx.block_time,
            time=wtx.time,
        )
