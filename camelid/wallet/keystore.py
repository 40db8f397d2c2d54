"""The wallet's keys: an HD seed, imported keys, the keypool look-ahead, and encryption with a timed unlock.

Derivation (BIP32, see camelid.wallet.hd): a random 32-byte seed gives the master
key m; the account key m/0' is hardened, and below it the receive chain m/0'/0 and
the change chain m/0'/1 are public-derivable, so address i is m/0'/0/i (change
m/0'/1/i). The two chain public keys and chain codes are stored in clear, which is
what lets a locked wallet hand out new addresses (Bitcoin Core's descriptor wallets
do the same with their xpub cache); the seed and imported keys are the only
secrets. As with any BIP32 non-hardened chain, a leaked child private key together
with its chain's public key reveals that chain's keys.

Keypool: for each chain the first `keypool_size` indices beyond the last one handed
out or seen paid on chain are derived ahead and recognised as ours. Handing out or
seeing an address moves the window, so a backup made before N more addresses were
given out still finds their payments as long as N < keypool_size, and finds later
ones too as the rescan sees the earlier ones used, like Core's keypool top-up.

Encryption (camelid.wallet.crypter): unencrypted, the seed and imported secrets are
stored as is; encrypt() seals each under a random master key, itself sealed under
an scrypt key of the passphrase, and leaves the wallet locked. The unsealed master
key is kept in memory only while unlocked, until a monotonic deadline that every
access checks, and an asyncio timer (when a loop is running) drops it on time even
if nothing asks.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from camelid.crypto.hashes import hash160
from camelid.crypto.keys import PrivateKey, PublicKey
from camelid.wallet.crypter import (
    DecryptionError,
    ScryptParams,
    new_master_key,
    new_salt,
    passphrase_key,
    seal,
    unseal,
)
from camelid.wallet.errors import WalletError, WalletErrorCode, unlock_needed
from camelid.wallet.hd import HARDENED, ExtendedPrivateKey, ExtendedPublicKey, master_key
from camelid.wallet.records import field

DEFAULT_KEYPOOL_SIZE = 100
SEED_LENGTH = 32
ACCOUNT_PATH = (0 | HARDENED,)
MAX_UNLOCK_SECONDS = 100_000_000  # Bitcoin Core's cap on walletpassphrase's timeout (about 3 years)
_SEED_PURPOSE = b"camelid wallet seed"
_MASTER_KEY_PURPOSE = b"camelid wallet master key"
_IMPORTED_PURPOSE = b"camelid wallet imported key "


class Chain(IntEnum):
    """The second path level below the account: where receive and change addresses come from."""

    RECEIVE = 0
    CHANGE = 1


@dataclass(frozen=True)
class KeyOrigin:
    """Where a derived key sits: m/0'/chain/index."""

    chain: Chain
    index: int


@dataclass
class _ChainState:
    xpub: ExtendedPublicKey
    next_index: int  # first index neither handed out nor seen used
    derived: int = 0  # keys 0..derived-1 are in memory


@dataclass(frozen=True)
class _Encryption:
    salt: bytes
    params: ScryptParams
    sealed_master_key: bytes


class KeyStore:
    """Owns every secret of a wallet; nothing outside it sees the seed or the master key."""

    def __init__(
        self,
        seed: bytes,
        chains: dict[Chain, _ChainState],
        imported: dict[bytes, bytes],
        encryption: _Encryption | None,
        keypool_size: int,
    ) -> None:
        if keypool_size < 1:
            raise ValueError(f"keypool size must be at least 1, got {keypool_size}")
        self._seed = seed  # plaintext while unencrypted, sealed once encrypted
        self._chains = chains
        self._imported = imported  # serialized public key -> secret (plaintext or sealed, as the seed)
        self._encryption = encryption
        self.keypool_size = keypool_size
        self._master_key: bytes | None = None
        self._relock_deadline = 0.0
        self._relock_timer: asyncio.TimerHandle | None = None
        self._public_keys: dict[bytes, bytes] = {hash160(pub): pub for pub in imported}
        self._origins: dict[bytes, KeyOrigin] = {}
        self._derived: dict[KeyOrigin, bytes] = {}
        for chain in Chain:
            self._top_up(chain)

    @classmethod
    def generate(cls, keypool_size: int = DEFAULT_KEYPOOL_SIZE) -> KeyStore:
        """A fresh wallet's keys from a new random seed."""
        seed = secrets.token_bytes(SEED_LENGTH)
        account = master_key(seed).derive(ACCOUNT_PATH)
        chains = {chain: _ChainState(account.child(chain).public(), 0) for chain in Chain}
        return cls(seed, chains, {}, None, keypool_size)

    # -- addresses -------------------------------------------------------------------------------

    def new_key(self, chain: Chain) -> bytes:
        """Hand out the next unused key of `chain` (its compressed public key) and top the keypool up."""
        state = self._chains[chain]
        public_key = self._derived[KeyOrigin(chain, state.next_index)]
        state.next_index += 1
        self._top_up(chain)
        return public_key

    def peek_key(self, chain: Chain) -> bytes:
        """The key new_key(chain) would hand out, without handing it out (for change that may never be sent)."""
        return self._derived[KeyOrigin(chain, self._chains[chain].next_index)]

    def mark_used(self, key_hash: bytes) -> bool:
        """Note that `key_hash` was paid: later keys of its chain stay unused. True if the keypool moved."""
        origin = self._origins.get(key_hash)
        if origin is None or origin.index < self._chains[origin.chain].next_index:
            return False
        self._chains[origin.chain].next_index = origin.index + 1
        self._top_up(origin.chain)
        return True

    def public_key(self, key_hash: bytes) -> bytes | None:
        """Serialized public key whose HASH160 is `key_hash`, if it is one of ours."""
        return self._public_keys.get(key_hash)

    def origin(self, key_hash: bytes) -> KeyOrigin | None:
        """Derivation of `key_hash`; None for imported keys and strangers."""
        return self._origins.get(key_hash)

    def _top_up(self, chain: Chain) -> None:
        """Derive every key of `chain` up to keypool_size past next_index: handed-out ones stay ours too."""
        state = self._chains[chain]
        for index in range(state.derived, state.next_index + self.keypool_size):
            public_key = state.xpub.child(index).public_key
            self._derived[KeyOrigin(chain, index)] = public_key
            self._public_keys[hash160(public_key)] = public_key
            self._origins[hash160(public_key)] = KeyOrigin(chain, index)
        state.derived = max(state.derived, state.next_index + self.keypool_size)

    # -- private keys ----------------------------------------------------------------------------

    def private_key(self, key_hash: bytes) -> PrivateKey:
        """The signing key for `key_hash`; WalletError -13 while locked, -4 if the key is not ours."""
        public_key = self._public_keys.get(key_hash)
        if public_key is None:
            raise WalletError(WalletErrorCode.WALLET_ERROR, f"no private key for key hash {key_hash.hex()}")
        origin = self._origins.get(key_hash)
        if origin is None:
            secret = self._reveal(self._imported[public_key], _IMPORTED_PURPOSE + public_key)
            return PrivateKey.from_bytes(secret, compressed=len(public_key) == 33)
        account = self._account_key()
        return account.child(origin.chain).child(origin.index).private_key()

    def import_key(self, key: PrivateKey) -> bytes:
        """Add an imported key (sealed if the wallet is encrypted, which needs it unlocked); its key hash."""
        public_key = key.public_key.to_bytes(key.compressed)
        key_hash = hash160(public_key)
        if public_key not in self._imported:
            self._imported[public_key] = self._conceal(key.secret, _IMPORTED_PURPOSE + public_key)
            self._public_keys.setdefault(key_hash, public_key)
        return key_hash

    def _account_key(self) -> ExtendedPrivateKey:
        return master_key(self._reveal(self._seed, _SEED_PURPOSE)).derive(ACCOUNT_PATH)

    def _reveal(self, stored: bytes, purpose: bytes) -> bytes:
        if self._encryption is None:
            return stored
        return unseal(self._unlocked_master_key(), stored, purpose)

    def _conceal(self, secret: bytes, purpose: bytes) -> bytes:
        if self._encryption is None:
            return secret
        return seal(self._unlocked_master_key(), secret, purpose)

    # -- encryption and locking ------------------------------------------------------------------

    @property
    def is_encrypted(self) -> bool:
        return self._encryption is not None

    @property
    def is_locked(self) -> bool:
        """True for an encrypted wallet without its master key in memory (an expired unlock counts as locked)."""
        if self._encryption is None:
            return False
        self._expire_unlock()
        return self._master_key is None

    def unlocked_until(self) -> float:
        """UNIX time at which the wallet relocks; 0 when locked (Bitcoin Core's getwalletinfo field)."""
        if self.is_locked or self._encryption is None:
            return 0.0
        return time.time() + (self._relock_deadline - time.monotonic())

    def encrypt(self, passphrase: str, params: ScryptParams | None = None) -> None:
        """Seal the seed and imported keys under `passphrase`; the wallet is then locked."""
        if self._encryption is not None:
            raise WalletError(
                WalletErrorCode.WRONG_ENC_STATE,
                "Error: running with an encrypted wallet, but encryptwallet was called.",
            )
        _require_passphrase(passphrase)
        params = params or ScryptParams()
        master = new_master_key()
        salt = new_salt()
        sealed_master = seal(passphrase_key(passphrase, salt, params), master, _MASTER_KEY_PURPOSE)
        self._seed = seal(master, self._seed, _SEED_PURPOSE)
        self._imported = {
            public_key: seal(master, secret, _IMPORTED_PURPOSE + public_key)
            for public_key, secret in self._imported.items()
        }
        self._encryption = _Encryption(salt, params, sealed_master)

    def unlock(self, passphrase: str, timeout_seconds: float) -> None:
        """Keep the master key for `timeout_seconds` (capped at MAX_UNLOCK_SECONDS); -14 for a wrong passphrase."""
        encryption = self._require_encrypted("walletpassphrase")
        if timeout_seconds < 0:
            raise WalletError(WalletErrorCode.INVALID_PARAMETER, "Timeout cannot be negative.")
        _require_passphrase(passphrase)
        master = self._open_master_key(encryption, passphrase)
        timeout = min(timeout_seconds, MAX_UNLOCK_SECONDS)
        self._master_key = master
        self._relock_deadline = time.monotonic() + timeout
        self._schedule_relock(timeout)

    def lock(self) -> None:
        """Forget the master key now."""
        self._require_encrypted("walletlock")
        self._forget_master_key()

    def change_passphrase(self, old: str, new: str, params: ScryptParams | None = None) -> None:
        """Re-seal the master key under `new`; the sealed secrets stay as they are. Lock state is unchanged."""
        encryption = self._require_encrypted("walletpassphrasechange")
        _require_passphrase(old)
        _require_passphrase(new)
        master = self._open_master_key(encryption, old)
        params = params or encryption.params
        salt = new_salt()
        self._encryption = _Encryption(
            salt, params, seal(passphrase_key(new, salt, params), master, _MASTER_KEY_PURPOSE)
        )

    def _open_master_key(self, encryption: _Encryption, passphrase: str) -> bytes:
        key = passphrase_key(passphrase, encryption.salt, encryption.params)
        try:
            return unseal(key, encryption.sealed_master_key, _MASTER_KEY_PURPOSE)
        except DecryptionError:
            raise WalletError(
                WalletErrorCode.PASSPHRASE_INCORRECT, "Error: The wallet passphrase entered was incorrect."
            ) from None

    def _require_encrypted(self, command: str) -> _Encryption:
        if self._encryption is None:
            raise WalletError(
                WalletErrorCode.WRONG_ENC_STATE, f"Error: running with an unencrypted wallet, but {command} was called."
            )
        return self._encryption

    def _unlocked_master_key(self) -> bytes:
        self._expire_unlock()
        if self._master_key is None:
            raise unlock_needed()
        return self._master_key

    def _expire_unlock(self) -> None:
        if self._master_key is not None and time.monotonic() >= self._relock_deadline:
            self._forget_master_key()

    def _schedule_relock(self, timeout: float) -> None:
        if self._relock_timer is not None:
            self._relock_timer.cancel()
            self._relock_timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no event loop: the deadline check on every access still relocks
        self._relock_timer = loop.call_later(timeout, self._expire_unlock)

    def _forget_master_key(self) -> None:
        self._master_key = None
        if self._relock_timer is not None:
            self._relock_timer.cancel()
            self._relock_timer = None

    # -- file record -----------------------------------------------------------------------------

    def to_record(self) -> dict[str, Any]:
        encryption = self._encryption
        return {
            "seed": self._seed,
            "chains": [
                {
                    "public_key": self._chains[chain].xpub.public_key,
                    "chain_code": self._chains[chain].xpub.chain_code,
                    "next_index": self._chains[chain].next_index,
                }
                for chain in Chain
            ],
            "imported": dict(self._imported),
            "keypool_size": self.keypool_size,
            "encryption": None
            if encryption is None
            else {
                "salt": encryption.salt,
                "log2_n": encryption.params.log2_n,
                "r": encryption.params.r,
                "p": encryption.params.p,
                "sealed_master_key": encryption.sealed_master_key,
            },
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> KeyStore:
        """Rebuild from to_record's map; ValueError naming the damaged field."""
        chain_records = field(record, "chains", list)
        if len(chain_records) != len(Chain):
            raise ValueError(f"wallet has {len(chain_records)} key chains, expected {len(Chain)}")
        chains = {}
        for chain, chain_record in zip(Chain, chain_records, strict=True):
            xpub = ExtendedPublicKey(field(chain_record, "public_key", bytes), field(chain_record, "chain_code", bytes))
            PublicKey.from_bytes(xpub.public_key)  # ValueError for a damaged point
            chains[chain] = _ChainState(xpub, field(chain_record, "next_index", int))
        imported = field(record, "imported", dict)
        for public_key, secret in imported.items():
            if not isinstance(public_key, bytes) or not isinstance(secret, bytes):
                raise ValueError("wallet field 'imported' must map public-key bytes to secret bytes")
            PublicKey.from_bytes(public_key)
        encryption_record = field(record, "encryption", dict, optional=True)
        encryption = None
        if encryption_record is not None:
            params = ScryptParams(
                field(encryption_record, "log2_n", int),
                field(encryption_record, "r", int),
                field(encryption_record, "p", int),
            )
            encryption = _Encryption(
                field(encryption_record, "salt", bytes), params, field(encryption_record, "sealed_master_key", bytes)
            )
        return cls(field(record, "seed", bytes), chains, imported, encryption, field(record, "keypool_size", int))


def _require_passphrase(passphrase: str) -> None:
    if not isinstance(passphrase, str) or not passphrase:
        raise WalletError(WalletErrorCode.INVALID_PARAMETER, "passphrase cannot be empty")
