"""Wallet RPCs, named, ordered and answering as Bitcoin Core's, so Core's clients and habits carry over.

RPC requests name no wallet (there is no /wallet/<name> endpoint), so every
method acts on the one loaded wallet: -18 with none, -19 with several. Amounts
are coins with 8 decimals both ways; fee rates given per byte are base units
per byte (Core's sat/vB), settxfee's rate is coins per kB as in Core.
"""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from camelid.chain.errors import TxRejected
from camelid.core.consensus import COIN, MAX_MONEY
from camelid.core.serialize import hash_to_hex
from camelid.rpc.context import RPCContext
from camelid.rpc.errors import RPCError, RPCErrorCode
from camelid.rpc.jsonenc import amount
from camelid.rpc.registry import MethodRegistry, Param
from camelid.wallet import Wallet, WalletError
from camelid.wallet.history import TransactionEntry, UnspentEntry
from camelid.wallet.wallet import FILE_FORMAT, MAX_CONFIRMATIONS

METHODS = MethodRegistry()  # this module's methods; build_registry merges them

CATEGORY = "Wallet"
FEE_RATE_BYTES = 1000  # settxfee and paytxfee quote a rate per kB
EVERY_LINE = 2**63  # a listtransactions count no wallet reaches
METHOD_DEPRECATED = -32  # Core's RPC_METHOD_DEPRECATED, for getbalance's dummy argument


def parse_amount(value: int | float | str, name: str = "amount") -> int:
    """A JSON amount in coins as base units, exactly: 8 decimals at most, within 0..MAX_MONEY.

    The server decodes JSON numbers as floats; repr() gives back the shortest
    decimal that reads as the same float, which is the text the client sent for
    any amount of up to 15 significant digits.
    """
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        coins = Decimal(text.strip())
    except InvalidOperation:
        raise RPCError(RPCErrorCode.TYPE_ERROR, f"Invalid amount for {name}: {value!r}") from None
    if not coins.is_finite():
        raise RPCError(RPCErrorCode.TYPE_ERROR, f"Invalid amount for {name}: {value!r}")
    base_units = coins * COIN
    if base_units != base_units.to_integral_value():
        raise RPCError(RPCErrorCode.TYPE_ERROR, f"Invalid amount for {name}: {value!r} has more than 8 decimals")
    if not 0 <= base_units <= MAX_MONEY:
        raise RPCError(RPCErrorCode.TYPE_ERROR, f"Amount out of range for {name}: {value!r}")
    return int(base_units)


def _send_amount(value: int | float | str, name: str) -> int:
    base_units = parse_amount(value, name)
    if base_units <= 0:
        raise RPCError(RPCErrorCode.TYPE_ERROR, f"Invalid amount for send: {name} must be positive")
    return base_units


def _wallet_call(fn, *args: Any) -> Any:
    """Run a wallet method, turning WalletError into the RPC error with the same (Core) code."""
    try:
        return fn(*args)
    except WalletError as exc:
        raise RPCError(exc.code, exc.message) from None


def _reject_unsupported(**given: Any) -> None:
    """Core arguments kept for their position whose feature this wallet lacks: refuse rather than ignore."""
    for name, value in given.items():
        if value is not None and value is not False:
            raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"{name} is not supported by this wallet")


async def _send(ctx: RPCContext, recipients: list[tuple[str, int]], subtract: set[int], fee_rate: int | None) -> str:
    wallets = ctx.wallets
    wallet = _loaded_wallet(ctx)
    try:
        created = await wallets.pay(wallet, lambda: wallet.create_transaction(recipients, fee_rate, subtract))
        return created.tx.txid()
    except TxRejected as exc:
        raise RPCError(RPCErrorCode.VERIFY_REJECTED, str(exc)) from None
    except WalletError as exc:
        raise RPCError(exc.code, exc.message) from None


def _loaded_wallet(ctx: RPCContext) -> Wallet:
    return _wallet_call(ctx.wallets.get)


# -- loading ---------------------------------------------------------------------------------------


@METHODS.method(
    CATEGORY,
    Param("wallet_name", ("string",), "name of the new wallet, a directory under <datadir>/wallets"),
    Param("disable_private_keys", ("bool",), "not supported: must be false", False, False),
    Param("blank", ("bool",), "not supported: must be false", False, False),
    Param("passphrase", ("string",), "encrypt the new wallet with this passphrase", False, None),
    Param("avoid_reuse", ("bool",), "not supported: must be false", False, False),
    Param("descriptors", ("bool",), "not supported: must be false", False, False),
)
async def createwallet(
    ctx: RPCContext,
    wallet_name: str,
    disable_private_keys: bool,
    blank: bool,
    passphrase: str | None,
    avoid_reuse: bool,
    descriptors: bool,
) -> dict[str, str]:
    """Create and load a new HD wallet; encrypted (and locked) when a passphrase is given."""
    _reject_unsupported(
        disable_private_keys=disable_private_keys, blank=blank, avoid_reuse=avoid_reuse, descriptors=descriptors
    )
    if passphrase == "":
        passphrase = None  # Core: an empty passphrase creates an unencrypted wallet
    try:
        wallet = await ctx.wallets.create(wallet_name, passphrase)
    except WalletError as exc:
        raise RPCError(exc.code, exc.message) from None
    return {"name": wallet.name, "warning": ""}


@METHODS.method(CATEGORY, Param("filename", ("string",), "the wallet's name under <datadir>/wallets"))
async def loadwallet(ctx: RPCContext, filename: str) -> dict[str, str]:
    """Load a wallet and rescan whatever blocks it missed."""
    try:
        wallet = await ctx.wallets.load(filename)
    except WalletError as exc:
        raise RPCError(exc.code, exc.message) from None
    return {"name": wallet.name, "warning": ""}


@METHODS.method(
    CATEGORY,
    Param("wallet_name", ("string",), "name of the new wallet"),
    Param("backup_file", ("string",), "a file written by backupwallet"),
)
async def restorewallet(ctx: RPCContext, wallet_name: str, backup_file: str) -> dict[str, str]:
    """Create and load a wallet from a backup file, rescanning the whole chain."""
    try:
        wallet = await ctx.wallets.restore(wallet_name, Path(backup_file))
    except WalletError as exc:
        raise RPCError(exc.code, exc.message) from None
    return {"name": wallet.name, "warning": ""}


@METHODS.method(CATEGORY, Param("wallet_name", ("string",), "the wallet to unload", False, None))
async def unloadwallet(ctx: RPCContext, wallet_name: str | None) -> dict[str, str]:
    """Stop using a wallet (the only loaded one when no name is given); its file stays."""
    wallets = ctx.wallets
    name = wallet_name if wallet_name is not None else _loaded_wallet(ctx).name
    _wallet_call(wallets.unload, name)
    return {"warning": ""}


@METHODS.method(CATEGORY)
async def listwallets(ctx: RPCContext) -> list[str]:
    """Names of the loaded wallets."""
    return ctx.wallets.names


@METHODS.method(CATEGORY)
async def getwalletinfo(ctx: RPCContext) -> dict[str, Any]:
    """The loaded wallet's state: balances, fee rate, encryption and the last block it processed."""
    wallet = _loaded_wallet(ctx)
    mine = wallet.get_balances()
    info: dict[str, Any] = {
        "walletname": wallet.name,
        "walletversion": FILE_FORMAT,
        "format": "camelid",
        "balance": amount(mine.trusted),
        "unconfirmed_balance": amount(mine.untrusted_pending),
        "immature_balance": amount(mine.immature),
        "paytxfee": amount(wallet.fee_rate * FEE_RATE_BYTES),
        "private_keys_enabled": True,
        "avoid_reuse": False,
        "scanning": False,
        "descriptors": False,
        "lastprocessedblock": _last_block(wallet),
    }
    if wallet.is_encrypted:
        info["unlocked_until"] = math.floor(wallet.unlocked_until())
    return info


def _last_block(wallet: Wallet) -> dict[str, Any]:
    return {"hash": hash_to_hex(wallet.tip_hash) if wallet.tip_hash else None, "height": wallet.tip_height}


# -- addresses and keys ----------------------------------------------------------------------------


@METHODS.method(CATEGORY, Param("label", ("string",), "label for the address", False, ""))
async def getnewaddress(ctx: RPCContext, label: str) -> str:
    """A new receiving address (the next key of the keypool; works while the wallet is locked)."""
    if label == "*":
        raise RPCError(RPCErrorCode.INVALID_ADDRESS_OR_KEY, "Invalid label name")
    wallet = _loaded_wallet(ctx)
    return _wallet_call(wallet.get_new_address, label)


@METHODS.method(CATEGORY, Param("address", ("string",), "an address of this wallet"))
async def dumpprivkey(ctx: RPCContext, address: str) -> str:
    """The private key of one of the wallet's addresses, in WIF (the wallet must be unlocked)."""
    wallet = _loaded_wallet(ctx)
    return _wallet_call(wallet.dump_privkey, address)


@METHODS.method(
    CATEGORY,
    Param("privkey", ("string",), "the key in WIF, as dumpprivkey writes it"),
    Param("label", ("string",), "label for its address", False, ""),
    Param("rescan", ("bool",), "rescan the chain for the key's past transactions", False, True),
)
async def importprivkey(ctx: RPCContext, privkey: str, label: str, rescan: bool) -> None:
    """Add a private key to the wallet and, unless rescan=false, find its history in the chain."""
    wallets = ctx.wallets
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.import_privkey, privkey, label)
    if rescan:
        await wallets.rescan(wallet, 0)


# -- balances and history --------------------------------------------------------------------------


@METHODS.method(
    CATEGORY,
    Param("dummy", ("string",), 'must be "*" if given', False, "*"),
    Param("minconf", ("number",), "only count outputs with at least this many confirmations", False, 0, integer=True),
)
async def getbalance(ctx: RPCContext, dummy: str, minconf: int) -> Any:
    """Spendable balance: mature coins, confirmed at least minconf times (and our own unconfirmed change)."""
    if dummy != "*":
        raise RPCError(METHOD_DEPRECATED, 'dummy first argument must be excluded or set to "*".')
    wallet = _loaded_wallet(ctx)
    return amount(_wallet_call(wallet.get_balance, minconf))


@METHODS.method(CATEGORY)
async def getbalances(ctx: RPCContext) -> dict[str, Any]:
    """Balances by state: trusted (spendable), untrusted_pending (unconfirmed from others), immature coinbase."""
    wallet = _loaded_wallet(ctx)
    mine = wallet.get_balances()
    return {
        "mine": {
            "trusted": amount(mine.trusted),
            "untrusted_pending": amount(mine.untrusted_pending),
            "immature": amount(mine.immature),
        },
        "lastprocessedblock": _last_block(wallet),
    }


@METHODS.method(
    CATEGORY,
    Param("minconf", ("number",), "minimum confirmations", False, 1, integer=True),
    Param("maxconf", ("number",), "maximum confirmations", False, MAX_CONFIRMATIONS, integer=True),
    Param("addresses", ("array",), "only outputs paying these addresses", False, None),
)
async def listunspent(ctx: RPCContext, minconf: int, maxconf: int, addresses: list[Any] | None) -> list[Any]:
    """Spendable outputs with confirmations between minconf and maxconf."""
    if addresses is not None and not all(isinstance(a, str) for a in addresses):
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, "addresses must be an array of address strings")
    if addresses is not None and len(set(addresses)) != len(addresses):
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, "Invalid parameter, duplicated address")
    wallet = _loaded_wallet(ctx)
    return [_unspent_json(e) for e in _wallet_call(wallet.list_unspent, minconf, maxconf, addresses)]


def _unspent_json(entry: UnspentEntry) -> dict[str, Any]:
    return {
        "txid": entry.txid,
        "vout": entry.vout,
        "address": entry.address,
        "label": entry.label,
        "scriptPubKey": entry.script_pubkey.hex(),
        "amount": amount(entry.amount),
        "confirmations": entry.confirmations,
        "spendable": True,
        "solvable": True,
        "safe": entry.safe,
    }


@METHODS.method(
    CATEGORY,
    Param("label", ("string",), 'only lines of this label; "*" for all', False, "*"),
    Param("count", ("number",), "how many lines", False, 10, integer=True),
    Param("skip", ("number",), "skip this many of the most recent lines", False, 0, integer=True),
)
async def listtransactions(ctx: RPCContext, label: str, count: int, skip: int) -> list[Any]:
    """The most recent sends and receives, oldest first, as Core lists them (sends and fees negative)."""
    wallet = _loaded_wallet(ctx)
    entries = _wallet_call(wallet.list_transactions, count, skip)  # also checks count and skip
    if label != "*":
        every = wallet.list_transactions(EVERY_LINE, 0)
        labelled = [e for e in every if e.label == label]
        entries = labelled[max(0, len(labelled) - skip - count) : max(0, len(labelled) - skip)]
    return [_transaction_json(e) for e in entries]


def _transaction_json(entry: TransactionEntry) -> dict[str, Any]:
    line: dict[str, Any] = {"address": entry.address, "category": entry.category, "amount": amount(entry.amount)}
    if entry.label is not None:
        line["label"] = entry.label
    line["vout"] = entry.vout
    if entry.fee is not None:
        line["fee"] = amount(entry.fee)
    line["confirmations"] = entry.confirmations
    if entry.category in ("generate", "immature"):
        line["generated"] = True
    if entry.confirmations == 0:
        line["trusted"] = entry.trusted
    if entry.blockhash is not None:
        line.update(blockhash=entry.blockhash, blockheight=entry.blockheight, blocktime=entry.blocktime)
    line.update(txid=entry.txid, time=entry.time, timereceived=entry.time)
    return line


# -- paying ----------------------------------------------------------------------------------------

_UNSUPPORTED_SEND_PARAMS = (
    Param("replaceable", ("bool",), "not supported", False, None),
    Param("conf_target", ("number",), "not supported: there is no fee estimator; use fee_rate", False, None),
    Param("estimate_mode", ("string",), "not supported: there is no fee estimator; use fee_rate", False, None),
)
_FEE_RATE_PARAM = Param(
    "fee_rate", ("number",), "base units per byte (default: settxfee's rate, else 20)", False, None, integer=True
)


@METHODS.method(
    CATEGORY,
    Param("address", ("string",), "the address to pay"),
    Param("amount", ("number", "string"), "coins to send"),
    Param("comment", ("string",), "accepted for compatibility; not stored", False, ""),
    Param("comment_to", ("string",), "accepted for compatibility; not stored", False, ""),
    Param("subtractfeefromamount", ("bool",), "the recipient pays the fee out of amount", False, False),
    *_UNSUPPORTED_SEND_PARAMS,
    Param("avoid_reuse", ("bool",), "not supported", False, None),
    _FEE_RATE_PARAM,
)
async def sendtoaddress(
    ctx: RPCContext,
    address: str,
    coins: int | float | str,
    comment: str,
    comment_to: str,
    subtractfeefromamount: bool,
    replaceable: bool | None,
    conf_target: int | None,
    estimate_mode: str | None,
    avoid_reuse: bool | None,
    fee_rate: int | None,
) -> str:
    """Pay `amount` coins to `address`; the txid once the mempool accepted it (-26 with the reason if not)."""
    _reject_unsupported(
        replaceable=replaceable, conf_target=conf_target, estimate_mode=estimate_mode, avoid_reuse=avoid_reuse
    )
    recipients = [(address, _send_amount(coins, "amount"))]
    return await _send(ctx, recipients, {0} if subtractfeefromamount else set(), fee_rate)


@METHODS.method(
    CATEGORY,
    Param("dummy", ("string",), 'must be ""'),
    Param("amounts", ("object",), "address -> coins to send"),
    Param("minconf", ("number",), "ignored, as in Core", False, None, integer=True),
    Param("comment", ("string",), "accepted for compatibility; not stored", False, ""),
    Param("subtractfeefrom", ("array",), "addresses that pay the fee out of their amounts", False, None),
    *_UNSUPPORTED_SEND_PARAMS,
    _FEE_RATE_PARAM,
)
async def sendmany(
    ctx: RPCContext,
    dummy: str,
    amounts: dict[str, Any],
    minconf: int | None,
    comment: str,
    subtractfeefrom: list[Any] | None,
    replaceable: bool | None,
    conf_target: int | None,
    estimate_mode: str | None,
    fee_rate: int | None,
) -> str:
    """Pay several addresses in one transaction; its txid once the mempool accepted it."""
    if dummy != "":
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, 'Dummy value must be set to ""')
    _reject_unsupported(replaceable=replaceable, conf_target=conf_target, estimate_mode=estimate_mode)
    if not amounts:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, "Invalid parameter, amounts is empty")
    recipients = [(address, _send_amount(value, address)) for address, value in amounts.items()]
    subtract_from = subtractfeefrom or []
    unknown = [a for a in subtract_from if a not in amounts]
    if unknown:
        raise RPCError(RPCErrorCode.INVALID_PARAMETER, f"subtractfeefrom names addresses not in amounts: {unknown}")
    subtract = {i for i, (address, _) in enumerate(recipients) if address in subtract_from}
    return await _send(ctx, recipients, subtract, fee_rate)


@METHODS.method(CATEGORY, Param("amount", ("number", "string"), "fee rate in coins per kB; 0 for the default"))
async def settxfee(ctx: RPCContext, coins_per_kb: int | float | str) -> bool:
    """Set the wallet's fee rate in coins per kB (stored per byte, so a whole number of base units per byte)."""
    per_kb = parse_amount(coins_per_kb, "amount")
    if per_kb % FEE_RATE_BYTES:
        raise RPCError(
            RPCErrorCode.INVALID_PARAMETER,
            f"fee rate {coins_per_kb} per kB is not a whole number of base units per byte (a multiple of 0.00001)",
        )
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.set_fee_rate, per_kb // FEE_RATE_BYTES)
    return True


# -- encryption and backup -------------------------------------------------------------------------


@METHODS.method(CATEGORY, Param("passphrase", ("string",), "the passphrase to encrypt the wallet with"))
async def encryptwallet(ctx: RPCContext, passphrase: str) -> str:
    """Encrypt the wallet's keys under a passphrase; the wallet is locked afterwards."""
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.encrypt, passphrase)
    return "wallet encrypted; the wallet is now locked: unlock it with walletpassphrase to send or dump keys."


@METHODS.method(
    CATEGORY,
    Param("passphrase", ("string",), "the wallet passphrase"),
    Param("timeout", ("number",), "seconds to stay unlocked (at most 100000000)"),
)
async def walletpassphrase(ctx: RPCContext, passphrase: str, timeout: int | float) -> None:
    """Unlock the wallet for `timeout` seconds."""
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.unlock, passphrase, float(timeout))


@METHODS.method(CATEGORY)
async def walletlock(ctx: RPCContext) -> None:
    """Forget the wallet's decrypted keys now."""
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.lock)


@METHODS.method(
    CATEGORY,
    Param("oldpassphrase", ("string",), "the current passphrase"),
    Param("newpassphrase", ("string",), "the new passphrase"),
)
async def walletpassphrasechange(ctx: RPCContext, oldpassphrase: str, newpassphrase: str) -> None:
    """Change the wallet passphrase."""
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.change_passphrase, oldpassphrase, newpassphrase)


@METHODS.method(CATEGORY, Param("destination", ("string",), "a file, or a directory to hold wallet.dat"))
async def backupwallet(ctx: RPCContext, destination: str) -> None:
    """Write a consistent copy of the wallet file; restorewallet or loadwallet reads it back."""
    wallet = _loaded_wallet(ctx)
    _wallet_call(wallet.backup, Path(destination))
