"""Building a signed payment: coin selection, the fee from the signed size, change, and P2PKH signatures.

Sizes are estimated with the largest signature an input can carry, so the signed
transaction is never larger than the fee paid for; after signing the estimate is
checked against the real size. Change below the dust threshold is never created:
its value goes to the fee. Nothing here changes the wallet; the caller records the
transaction only once the node has accepted it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from camelid.core.consensus import COIN, MAX_MONEY
from camelid.core.script import p2pkh_script_sig
from camelid.core.sigchecker import SighashCache
from camelid.core.transaction import NULL_HASH, SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.wallet.coinselection import select_coins
from camelid.wallet.errors import WalletError, WalletErrorCode
from camelid.wallet.policy import (
    MAX_TX_FEE,
    dust_threshold,
    is_dust,
    output_size,
    p2pkh_input_size,
    tx_size,
)


@dataclass(frozen=True)
class SpendableCoin:
    """An unspent output of ours that may fund a payment, with the public key that unlocks it."""

    outpoint: OutPoint
    txout: TxOut
    public_key: bytes

    @property
    def input_size(self) -> int:
        return p2pkh_input_size(len(self.public_key))


@dataclass(frozen=True)
class Recipient:
    script_pubkey: bytes
    amount: int
    subtract_fee: bool = False


@dataclass(frozen=True)
class CreatedTransaction:
    """A signed payment not yet recorded by the wallet; `change_index` is None when it has no change."""

    tx: Transaction
    fee: int
    change_index: int | None


SignerLookup = Callable[[bytes], PrivateKey]  # public key -> its private key (raises while locked)


def create_payment(
    coin_tiers: Sequence[Sequence[SpendableCoin]],
    recipients: Sequence[Recipient],
    fee_rate: int,
    change_script: bytes,
    private_key_for: SignerLookup,
    job_id: bytes = NULL_HASH,
) -> CreatedTransaction:
    """A signed transaction paying `recipients` from the first tier of coins that can afford it.

    Tiers are nested, most trusted first (confirmed coins, then also our own
    unconfirmed change), as Core relaxes its eligibility filters one step at a time.
    """
    check_recipients(recipients)
    plan = None
    for coins in coin_tiers:
        plan = _plan(coins, recipients, fee_rate, len(change_script))
        if plan is not None:
            break
    if plan is None:
        raise _insufficient_funds(coin_tiers[-1] if coin_tiers else [], recipients, fee_rate)
    inputs, amounts, change, fee = plan
    if fee > MAX_TX_FEE:
        raise WalletError(
            WalletErrorCode.INSUFFICIENT_FUNDS,
            f"Fee exceeds maximum configured by user: {format_coins(fee)} > {format_coins(MAX_TX_FEE)}",
        )
    outputs = [TxOut(amount, r.script_pubkey) for r, amount in zip(recipients, amounts, strict=True)]
    change_index = None
    if change:
        change_index = secrets.randbelow(len(outputs) + 1)  # Core places change at a random position
        outputs.insert(change_index, TxOut(change, change_script))
    tx = sign(_shuffled(inputs), outputs, private_key_for, job_id)
    paid_for = tx_size([coin.input_size for coin in inputs], [output_size(len(o.script_pubkey)) for o in outputs])
    if tx.size > paid_for:
        raise WalletError(
            WalletErrorCode.WALLET_ERROR, f"signed size {tx.size} exceeds the {paid_for} bytes the fee was computed for"
        )
    return CreatedTransaction(tx, fee, change_index)


def check_recipients(recipients: Sequence[Recipient]) -> None:
    """Core's checks before funding: something to pay, positive amounts within MAX_MONEY, no dust."""
    if not recipients:
        raise WalletError(WalletErrorCode.INVALID_PARAMETER, "Transaction must have at least one recipient")
    for recipient in recipients:
        if not 0 < recipient.amount <= MAX_MONEY:
            raise WalletError(WalletErrorCode.TYPE_ERROR, f"Invalid amount for send: {recipient.amount}")
        if not recipient.subtract_fee and is_dust(recipient.amount, len(recipient.script_pubkey)):
            raise WalletError(
                WalletErrorCode.INSUFFICIENT_FUNDS,
                f"Transaction amount too small: {format_coins(recipient.amount)} is below the dust threshold "
                f"{format_coins(dust_threshold(len(recipient.script_pubkey)))}",
            )
    if sum(r.amount for r in recipients) > MAX_MONEY:
        raise WalletError(WalletErrorCode.TYPE_ERROR, "Amounts sum above MAX_MONEY")


_Plan = tuple[list[SpendableCoin], list[int], int, int]  # inputs, recipient amounts, change (0: none), fee


def _plan(
    coins: Sequence[SpendableCoin], recipients: Sequence[Recipient], fee_rate: int, change_script_length: int
) -> _Plan | None:
    """Inputs, final amounts, change and fee; None if these coins cannot pay."""
    total = sum(r.amount for r in recipients)
    subtracting = any(r.subtract_fee for r in recipients)
    output_sizes = [output_size(len(r.script_pubkey)) for r in recipients]
    change_size = output_size(change_script_length)
    change_fee = fee_rate * change_size
    cost_of_change = change_fee + fee_rate * p2pkh_input_size()
    min_change = dust_threshold(change_script_length)
    if subtracting:
        # The recipients pay the fee, so a coin is worth its face value and the target is the amounts.
        values = [coin.txout.value for coin in coins]
        target = total
    else:
        values = [coin.txout.value - fee_rate * coin.input_size for coin in coins]
        target = total + fee_rate * tx_size([], output_sizes)
    usable = [(coin, value) for coin, value in zip(coins, values, strict=True) if value > 0]
    selection = select_coins(
        [c for c, _ in usable], [v for _, v in usable], target, cost_of_change, change_fee + min_change
    )
    if selection is None:
        return None
    inputs = selection.coins
    selected = sum(coin.txout.value for coin in inputs)
    input_sizes = [coin.input_size for coin in inputs]
    fee_without_change = fee_rate * tx_size(input_sizes, output_sizes)
    fee_with_change = fee_rate * tx_size(input_sizes, [*output_sizes, change_size])
    if subtracting:
        change = selected - total
        if not selection.changeless and change >= min_change:
            return inputs, _subtract_fee(recipients, fee_with_change), change, fee_with_change
        # The leftover pays part of the fee so the recipients give up less.
        fee = max(fee_without_change, change)
        return inputs, _subtract_fee(recipients, fee - change), 0, fee
    change = selected - total - fee_with_change
    if not selection.changeless and change >= min_change:
        return inputs, [r.amount for r in recipients], change, fee_with_change
    if selected - total < fee_without_change:
        return None  # only when 253+ inputs lengthen the input count beyond the estimate
    return inputs, [r.amount for r in recipients], 0, selected - total


def _subtract_fee(recipients: Sequence[Recipient], fee: int) -> list[int]:
    """Amounts after splitting `fee` evenly over the subtracting recipients; the first also pays the remainder."""
    payers = [i for i, r in enumerate(recipients) if r.subtract_fee]
    share, remainder = divmod(fee, len(payers))
    amounts = [r.amount for r in recipients]
    for position, i in enumerate(payers):
        amounts[i] -= share + (remainder if position == 0 else 0)
        if amounts[i] <= 0 or is_dust(amounts[i], len(recipients[i].script_pubkey)):
            raise WalletError(WalletErrorCode.INSUFFICIENT_FUNDS, "The transaction amount is too small to pay the fee")
    return amounts


def sign(
    coins: Sequence[SpendableCoin], outputs: Sequence[TxOut], private_key_for: SignerLookup, job_id: bytes
) -> Transaction:
    """A transaction spending `coins` to `outputs`, every input signed SIGHASH_ALL."""
    unsigned = Transaction(
        inputs=tuple(TxIn(coin.outpoint.txid, coin.outpoint.index) for coin in coins),
        outputs=tuple(outputs),
        job_id=job_id,
    )
    sighashes = SighashCache(unsigned)
    inputs = []
    for index, (coin, txin) in enumerate(zip(coins, unsigned.inputs, strict=True)):
        key = private_key_for(coin.public_key)
        digest = sighashes.digest(index, coin.txout.script_pubkey, coin.txout.value)
        signature = key.sign(digest) + bytes([SIGHASH_ALL])
        inputs.append(TxIn(txin.prev_txid, txin.prev_index, p2pkh_script_sig(signature, coin.public_key)))
    return Transaction(unsigned.version, tuple(inputs), unsigned.outputs, unsigned.lock_time, unsigned.job_id)


def _insufficient_funds(coins: Sequence[SpendableCoin], recipients: Sequence[Recipient], fee_rate: int) -> WalletError:
    total = sum(r.amount for r in recipients)
    available = sum(coin.txout.value for coin in coins)
    all_inputs_fee = fee_rate * tx_size(
        [coin.input_size for coin in coins], [output_size(len(r.script_pubkey)) for r in recipients]
    )
    return WalletError(
        WalletErrorCode.INSUFFICIENT_FUNDS,
        f"Insufficient funds: sending {format_coins(total)} needs {format_coins(total + all_inputs_fee)} "
        f"with a fee of {format_coins(all_inputs_fee)} at {fee_rate} per byte, "
        f"but only {format_coins(available)} is spendable",
    )


def _shuffled(coins: list[SpendableCoin]) -> list[SpendableCoin]:
    """Inputs in random order, so their order reveals nothing about how they were chosen."""
    remaining = list(coins)
    return [remaining.pop(secrets.randbelow(len(remaining))) for _ in range(len(coins))]


def format_coins(units: int) -> str:
    """Base units as a coin amount with eight decimals, as Bitcoin Core prints amounts."""
    sign_prefix = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), COIN)
    return f"{sign_prefix}{whole}.{fraction:08d}"
