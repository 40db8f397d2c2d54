"""A wallet: keys, the transactions that concern them, balances, and payments, kept in one file per wallet.

The node drives it with what it already publishes: apply_block / undo_block for
each BlockConnected / BlockDisconnected, add_mempool_tx for each TxAccepted, and
rescan for catching up. A payment is created and signed without touching the
wallet; only commit_transaction, called once the node's mempool has accepted the
transaction, records it, so a rejected send leaves no trace. Every change is
written to <datadir>/wallets/<name>/wallet.dat before the method returns.
Not thread-safe: the daemon calls it from its event loop.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

from camelid.core.block import Block
from camelid.core.params import get_params
from camelid.core.script import match_p2pkh, p2pkh_script
from camelid.core.transaction import NULL_HASH, Transaction
from camelid.crypto import ecies
from camelid.crypto.address import address_to_hash160, hash160_to_address
from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PrivateKey
from camelid.wallet.crypter import ScryptParams
from camelid.wallet.errors import WalletError, WalletErrorCode, unlock_needed
from camelid.wallet.history import (
    Balances,
    TransactionEntry,
    UnspentEntry,
    balances,
    transaction_entries,
    unspent_entries,
)
from camelid.wallet.keystore import DEFAULT_KEYPOOL_SIZE, Chain, KeyStore
from camelid.wallet.ledger import Ledger
from camelid.wallet.policy import DEFAULT_FEE_RATE, MAX_TX_FEE, MIN_RELAY_FEE_RATE
from camelid.wallet.records import field
from camelid.wallet.spend import CreatedTransaction, Recipient, SpendableCoin, create_payment
from camelid.wallet.storage import load_record, save_record

FILE_FORMAT = 1
WALLET_FILE = "wallet.dat"
MAX_FEE_RATE = MAX_TX_FEE // 1000  # Core's settxfee ceiling: maxtxfee read as a rate per kvB
MAX_CONFIRMATIONS = 9_999_999  # listunspent's default maxconf


def wallet_path(datadir: Path, name: str) -> Path:
    """<datadir>/wallets/<name>/wallet.dat; WalletError for a name that is not a plain directory name."""
    if not isinstance(name, str) or not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise WalletError(WalletErrorCode.WALLET_ERROR, f"Invalid wallet name {name!r}")
    return Path(datadir) / "wallets" / name / WALLET_FILE


class Wallet:
    def __init__(
        self,
        name: str,
        path: Path,
        network: str,
        keys: KeyStore,
        labels: dict[str, str] | None = None,
        fee_rate: int | None = None,
    ) -> None:
        self.name = name
        self.path = path
        self.network = network
        self._keys = keys
        self._labels = dict(labels or {})  # address book of our handed-out and imported addresses
        self._fee_rate = fee_rate  # settxfee's rate; None means DEFAULT_FEE_RATE
        self._ledger = Ledger(get_params(network).coinbase_maturity, self.is_mine)
        self._held_job_keys: dict[bytes, tuple[PrivateKey, float]] = {}  # hold_job_key: usable while locked

    # -- files -----------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        datadir: Path,
        name: str,
        network: str,
        passphrase: str | None = None,
        keypool_size: int = DEFAULT_KEYPOOL_SIZE,
        kdf: ScryptParams | None = None,
    ) -> Wallet:
        """createwallet: a new wallet from a fresh seed, encrypted (and locked) if a passphrase is given."""
        path = wallet_path(datadir, name)
        if path.exists():
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Wallet {name!r} already exists at {path}")
        get_params(network)  # ValueError for an unknown network, before anything is written
        wallet = cls(name, path, network, KeyStore.generate(keypool_size))
        if passphrase is not None:
            wallet._keys.encrypt(passphrase, kdf)
        wallet.save()
        return wallet

    @classmethod
    def open(cls, datadir: Path, name: str, network: str) -> Wallet:
        """loadwallet: read the wallet file; -18 if there is none, -4 if it belongs to another network."""
        path = wallet_path(datadir, name)
        if not path.is_file():
            raise WalletError(WalletErrorCode.WALLET_NOT_FOUND, f"Wallet file not found: {path}")
        return cls._from_file(name, path, network)

    @classmethod
    def restore(cls, datadir: Path, name: str, network: str, backup_file: Path) -> Wallet:
        """restorewallet: a new wallet `name` holding a copy of `backup_file`; rescan it afterwards."""
        path = wallet_path(datadir, name)
        if path.exists():
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Wallet {name!r} already exists at {path}")
        wallet = cls._from_file(name, Path(backup_file), network)
        wallet.path = path
        wallet.save()
        return wallet

    @classmethod
    def _from_file(cls, name: str, path: Path, network: str) -> Wallet:
        try:
            record = load_record(path)
            file_format = field(record, "format", int)
            if file_format != FILE_FORMAT:
                raise ValueError(f"wallet file format {file_format} is not the supported {FILE_FORMAT}")
            file_network = field(record, "network", str)
            keys = KeyStore.from_record(field(record, "keys", dict))
            labels = field(record, "labels", dict)
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                raise ValueError("wallet field 'labels' must map address strings to label strings")
            fee_rate = field(record, "fee_rate", int, optional=True)
        except (OSError, ValueError) as exc:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Cannot read wallet {name!r}: {exc}") from None
        if file_network != network:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Wallet {name!r} is for {file_network}, not {network}")
        wallet = cls(name, path, network, keys, labels, fee_rate)
        try:
            wallet._ledger.load_record(field(record, "ledger", dict))
        except ValueError as exc:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Cannot read wallet {name!r}: {exc}") from None
        return wallet

    def _record(self) -> dict[str, Any]:
        return {
            "format": FILE_FORMAT,
            "network": self.network,
            "keys": self._keys.to_record(),
            "labels": self._labels,
            "fee_rate": self._fee_rate,
            "ledger": self._ledger.to_record(),
        }

    def save(self) -> None:
        """Write the whole wallet atomically (temp file, fsync, rename)."""
        save_record(self.path, self._record())

    def backup(self, destination: Path) -> Path:
        """backupwallet: a consistent copy of the wallet file at `destination` (a directory gets wallet.dat)."""
        target = Path(destination)
        if target.is_dir():
            target = target / WALLET_FILE
        if target.resolve() == self.path.resolve():
            raise WalletError(
                WalletErrorCode.WALLET_ERROR, "Error: Wallet backup failed! Destination is the wallet itself"
            )
        try:
            save_record(target, self._record())
        except OSError as exc:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Error: Wallet backup failed! {exc}") from None
        return target

    # -- keys and addresses ----------------------------------------------------------------------

    def get_new_address(self, label: str = "") -> str:
        """getnewaddress: the next receive address of the keypool (works while locked)."""
        address = self._address(hash160(self._keys.new_key(Chain.RECEIVE)))
        self._labels[address] = label
        self.save()
        return address

    @property
    def addresses(self) -> dict[str, str]:
        """Our handed-out and imported addresses with their labels."""
        return dict(self._labels)

    def is_mine(self, script_pubkey: bytes) -> bool:
        key_hash = match_p2pkh(script_pubkey)
        return key_hash is not None and self._keys.public_key(key_hash) is not None

    def import_privkey(self, wif: str, label: str = "") -> str:
        """importprivkey: add a WIF key of this network; the caller rescans if the key may have history."""
        try:
            key = PrivateKey.from_wif(wif, self.network)
        except ValueError as exc:
            raise WalletError(WalletErrorCode.INVALID_ADDRESS_OR_KEY, f"Invalid private key encoding: {exc}") from None
        address = self._address(self._keys.import_key(key))
        self._labels[address] = label
        self.save()
        return address

    def dump_privkey(self, address: str) -> str:
        """dumpprivkey: the WIF of one of our addresses (needs the wallet unlocked)."""
        key_hash = self._parse_address(address)
        if self._keys.public_key(key_hash) is None:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Private key for address {address} is not known")
        key = self._keys.private_key(key_hash)
        return key.to_wif(network=self.network)

    def _address(self, key_hash: bytes) -> str:
        return hash160_to_address(key_hash, self.network)

    def _address_of(self, script_pubkey: bytes) -> str | None:
        key_hash = match_p2pkh(script_pubkey)
        return None if key_hash is None else self._address(key_hash)

    def _parse_address(self, address: str) -> bytes:
        try:
            return address_to_hash160(address, self.network)[1]
        except ValueError as exc:
            raise WalletError(
                WalletErrorCode.INVALID_ADDRESS_OR_KEY, f"Invalid CamelidCoin address {address!r}: {exc}"
            ) from None

    # -- encryption ------------------------------------------------------------------------------

    @property
    def is_encrypted(self) -> bool:
        return self._keys.is_encrypted

    @property
    def is_locked(self) -> bool:
        return self._keys.is_locked

    def unlocked_until(self) -> float:
        return self._keys.unlocked_until()

    def encrypt(self, passphrase: str, kdf: ScryptParams | None = None) -> None:
        """encryptwallet: seal every secret under `passphrase` and lock; the plaintext is gone from the file."""
        self._keys.encrypt(passphrase, kdf)
        self.save()

    def unlock(self, passphrase: str, timeout_seconds: float) -> None:
        """walletpassphrase: allow signing for `timeout_seconds`."""
        self._keys.unlock(passphrase, timeout_seconds)

    def lock(self) -> None:
        """walletlock."""
        self._keys.lock()

    def change_passphrase(self, old: str, new: str) -> None:
        """walletpassphrasechange: only the sealed master key is rewritten."""
        self._keys.change_passphrase(old, new)
        self.save()

    # -- following the chain ---------------------------------------------------------------------

    @property
    def tip_height(self) -> int:
        """Height of the last block applied; -1 before any. Confirmations count from it."""
        return self._ledger.tip_height

    @property
    def tip_hash(self) -> bytes | None:
        """Hash (internal byte order) of the last block applied: where a restarted node resumes the rescan."""
        return self._ledger.tip_hash

    def apply_block(self, block: Block, height: int) -> None:
        """BlockConnected: record our transactions in `block` as confirmed at `height`."""
        self._connect(block, height)
        self.save()

    def undo_block(self, block: Block, height: int) -> None:
        """BlockDisconnected: its transactions become unconfirmed again; its coinbase is forgotten."""
        self._ledger.disconnect_block(block, height)
        self.save()

    def add_mempool_tx(self, tx: Transaction) -> bool:
        """TxAccepted: keep `tx` as unconfirmed if it concerns us; True if it was new to the wallet."""
        if not self._ledger.add_unconfirmed(tx):
            return False
        self._mark_used([tx])
        self.save()
        return True

    def commit_transaction(self, tx: Transaction) -> None:
        """Record a payment from create_transaction once the node accepted it: its coins are now spent."""
        if self._ledger.debit(tx) == 0:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"Transaction {tx.txid()} spends no coins of this wallet")
        self.add_mempool_tx(tx)

    def unconfirmed_transactions(self) -> list[Transaction]:
        """Our transactions not yet in a block, in the order first seen (so parents come before children)."""
        return [wtx.tx for wtx in self._ledger.transactions.values() if not wtx.is_confirmed]

    def abandon_transaction(self, txid: str) -> None:
        """abandontransaction: forget an unconfirmed transaction (and its descendants) the network dropped."""
        tx_hash = _parse_txid(txid)
        wtx = self._ledger.transactions.get(tx_hash)
        if wtx is None:
            raise WalletError(WalletErrorCode.INVALID_ADDRESS_OR_KEY, "Invalid or non-wallet transaction id")
        if not self._ledger.remove_unconfirmed(tx_hash):
            raise WalletError(WalletErrorCode.INVALID_ADDRESS_OR_KEY, "Transaction not eligible for abandonment")
        self.save()

    def rescan(self, blocks: Iterable[Block], start_height: int) -> None:
        """Re-read the chain from `start_height`: `blocks` are the active chain's blocks from there, in order.

        What the wallet recorded at or above `start_height` is undone first, so a
        rescan also repairs a wallet that missed a reorganisation while offline.
        """
        if start_height < 0:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, f"start height {start_height} is negative")
        self._ledger.disconnect_from(start_height)
        for offset, block in enumerate(blocks):
            self._connect(block, start_height + offset)
        self.save()

    def _connect(self, block: Block, height: int) -> None:
        self._mark_used(self._ledger.connect_block(block, height))

    def _mark_used(self, txs: Iterable[Transaction]) -> None:
        for tx in txs:
            for txout in tx.outputs:
                key_hash = match_p2pkh(txout.script_pubkey)
                if key_hash is not None:
                    self._keys.mark_used(key_hash)

    # -- balances and history --------------------------------------------------------------------

    def get_balance(self, minconf: int = 0) -> int:
        """getbalance: trusted, mature, unspent value with at least `minconf` confirmations."""
        if minconf < 0:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, "minconf cannot be negative")
        return balances(self._ledger, minconf).trusted

    def get_balances(self) -> Balances:
        """getbalances' "mine" section."""
        return balances(self._ledger, 0)

    def list_unspent(
        self, minconf: int = 1, maxconf: int = MAX_CONFIRMATIONS, addresses: Collection[str] | None = None
    ) -> list[UnspentEntry]:
        """listunspent: spendable outputs with confirmations in [minconf, maxconf], optionally only to `addresses`."""
        if minconf < 0 or maxconf < minconf:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, f"Invalid confirmation range [{minconf}, {maxconf}]")
        wanted = None if addresses is None else {self._address(self._parse_address(a)) for a in addresses}
        entries = unspent_entries(self._ledger, self._address_of, self._labels, minconf, maxconf)
        return [e for e in entries if wanted is None or e.address in wanted]

    def list_transactions(self, count: int = 10, skip: int = 0) -> list[TransactionEntry]:
        """listtransactions: the most recent `count` lines after skipping the `skip` most recent, oldest first."""
        if count < 0:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, "Negative count")
        if skip < 0:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, "Negative from")
        entries = transaction_entries(self._ledger, self._address_of, self._labels)
        end = len(entries) - skip
        return entries[max(0, end - count) : max(0, end)]

    # -- paying ----------------------------------------------------------------------------------

    @property
    def fee_rate(self) -> int:
        """Base units per byte used when a payment names no rate."""
        return DEFAULT_FEE_RATE if self._fee_rate is None else self._fee_rate

    def set_fee_rate(self, rate: int) -> None:
        """settxfee: persist `rate` (base units per byte); 0 returns to the default."""
        if rate != 0:
            _check_fee_rate(rate, "txfee")
        self._fee_rate = None if rate == 0 else rate
        self.save()

    def create_transaction(
        self,
        recipients: list[tuple[str, int]],
        fee_rate: int | None = None,
        subtract_fee_from: Collection[int] = (),
        job_id: bytes | None = None,
        change_address: str | None = None,
    ) -> CreatedTransaction:
        """sendtoaddress / sendmany, without the sending: a signed transaction the wallet has not recorded.

        `subtract_fee_from` holds indices into `recipients` that pay the fee between
        them. Change goes to `change_address` or the next change key, which is only
        used up when commit_transaction records the payment.
        """
        if self.is_locked:
            raise unlock_needed()
        rate = self.fee_rate if fee_rate is None else _check_fee_rate(fee_rate, "fee rate")
        bad_indices = set(subtract_fee_from) - set(range(len(recipients)))
        if bad_indices:
            raise WalletError(
                WalletErrorCode.INVALID_PARAMETER, f"subtract_fee_from has no recipient at {sorted(bad_indices)}"
            )
        seen: set[str] = set()
        payees = []
        for index, (address, amount) in enumerate(recipients):
            if address in seen:
                raise WalletError(
                    WalletErrorCode.INVALID_PARAMETER, f"Invalid parameter, duplicated address: {address}"
                )
            seen.add(address)
            payees.append(Recipient(p2pkh_script(self._parse_address(address)), amount, index in subtract_fee_from))
        change_hash = (
            hash160(self._keys.peek_key(Chain.CHANGE))
            if change_address is None
            else self._parse_address(change_address)
        )
        if job_id is not None and len(job_id) != 32:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, f"job id must be 32 bytes, got {len(job_id)}")
        return create_payment(
            self._coin_tiers(),
            payees,
            rate,
            p2pkh_script(change_hash),
            lambda public_key: self._keys.private_key(hash160(public_key)),
            NULL_HASH if job_id is None else job_id,
        )

    def create_script_payment(
        self, script_pubkey: bytes, amount: int, job_id: bytes, fee_rate: int | None = None
    ) -> CreatedTransaction:
        """A signed transaction carrying `job_id` that pays `amount` to a raw script (a job ESCROW or STAKE).

        Like create_transaction, nothing is recorded until commit_transaction.
        """
        if self.is_locked:
            raise unlock_needed()
        if len(job_id) != 32:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, f"job id must be 32 bytes, got {len(job_id)}")
        rate = self.fee_rate if fee_rate is None else _check_fee_rate(fee_rate, "fee rate")
        return create_payment(
            self._coin_tiers(),
            [Recipient(script_pubkey, amount)],
            rate,
            p2pkh_script(hash160(self._keys.peek_key(Chain.CHANGE))),
            lambda public_key: self._keys.private_key(hash160(public_key)),
            job_id,
        )

    def new_job_key(self) -> bytes:
        """A fresh receive key for a job contract (Pc or Pn); its private key stays in the wallet."""
        public_key = self._keys.new_key(Chain.RECEIVE)
        self.save()
        return public_key

    def hold_job_key(self, public_key: bytes, until: float) -> None:
        """Keep the job key `public_key` usable until UNIX time `until`, even after the wallet relocks.

        A compute node that staked must still sign its delivery and take back its STAKE and PAYOUT
        after the operator's unlock timeout runs out, or the client takes the stake; it holds the key
        until then (needs unlocking now). Only that key is held, never the seed.
        """
        self._held_job_keys[public_key] = (self._job_key(public_key), until)

    def sign_job_digest(self, public_key: bytes, digest: bytes) -> bytes:
        """A DER signature of `digest` by a key from new_job_key (a held one, or needs unlocking)."""
        return self._job_key(public_key).sign(digest)

    def open_job_delivery(self, public_key: bytes, sealed: bytes, aad: bytes) -> bytes:
        """Decrypt a delivery sealed to the job key `public_key` (ecies.DecryptionError if it does not open)."""
        return ecies.decrypt(self._job_key(public_key), sealed, aad=aad)

    def reveal_job_delivery(self, public_key: bytes, sealed: bytes) -> bytes:
        """The 97-byte SharedPointReveal that lets anyone open this one delivery sealed to the job key `public_key`
        (the bad-delivery proof; ecies.DecryptionError for a blob with no ephemeral key)."""
        return ecies.reveal_shared_point(self._job_key(public_key), sealed).to_bytes()

    def _job_key(self, public_key: bytes) -> PrivateKey:
        held = self._held_job_keys.get(public_key)
        if held is not None:
            if time.time() < held[1]:
                return held[0]
            del self._held_job_keys[public_key]
        if self.is_locked:
            raise unlock_needed()
        if self._keys.public_key(hash160(public_key)) is None:
            raise WalletError(WalletErrorCode.INVALID_ADDRESS_OR_KEY, "the job key is not in this wallet")
        return self._keys.private_key(hash160(public_key))

    def _coin_tiers(self) -> list[list[SpendableCoin]]:
        """Confirmed mature coins; then also our own unconfirmed change (Core's relaxed second filter)."""
        confirmed, unconfirmed = [], []
        for coin in self._ledger.unspent():
            if self._ledger.blocks_to_maturity(coin.wtx) > 0:
                continue
            public_key = self._keys.public_key(match_p2pkh(coin.txout.script_pubkey) or b"")
            assert public_key is not None  # unspent() yields only outputs that pay our keys
            spendable = SpendableCoin(coin.outpoint, coin.txout, public_key)
            if coin.wtx.is_confirmed:
                confirmed.append(spendable)
            elif self._ledger.is_trusted(coin.wtx):
                unconfirmed.append(spendable)
        return [confirmed, confirmed + unconfirmed]


def _check_fee_rate(rate: int, what: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int):
        raise WalletError(WalletErrorCode.TYPE_ERROR, f"{what} must be an integer number of base units per byte")
    if rate < MIN_RELAY_FEE_RATE:
        raise WalletError(
            WalletErrorCode.INVALID_PARAMETER,
            f"{what} {rate} per byte is below the minimum relay fee rate {MIN_RELAY_FEE_RATE} per byte",
        )
    if rate > MAX_FEE_RATE:
        raise WalletError(
            WalletErrorCode.INVALID_PARAMETER, f"{what} {rate} per byte is above the maximum {MAX_FEE_RATE} per byte"
        )
    return rate


def _parse_txid(txid: str) -> bytes:
    try:
        raw = bytes.fromhex(txid)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise WalletError(WalletErrorCode.INVALID_PARAMETER, f"txid must be 64 hex digits, got {txid!r}")
    return raw[::-1]
