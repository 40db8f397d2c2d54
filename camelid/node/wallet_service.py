"""The wallet service: the node's loaded wallets, kept in step with the active chain.

Wallets live in <network datadir>/wallets/<name>/ and are only touched from the
event loop. The service follows the chain through lossless bus subscriptions:
BlockConnected -> apply_block, BlockDisconnected -> undo_block, TxAccepted ->
add_mempool_tx. The bus gives each subscription its own worker, so events of
different types may reach the service out of order, and a wallet loaded while
blocks arrive may already hold a block whose event is still queued. So a block
event is applied only when it fits the wallet's tip exactly (a connect must
build on it, a disconnect must remove it); any other block event re-syncs the
wallet from the chain instead, which is a no-op for a stale event and a repair
for anything missed. Syncing rescans from the fork point between the wallet's
tip and the active chain, in batches read on the chain thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from enum import IntEnum
from pathlib import Path

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import TxRejected
from camelid.core.block import Block
from camelid.core.serialize import hash_to_hex
from camelid.node.bus import EventBus, Subscription
from camelid.node.chain_service import ChainService
from camelid.node.events import BlockConnected, BlockDisconnected, TxAccepted
from camelid.wallet import Wallet, WalletError, WalletErrorCode, wallet_path
from camelid.wallet.spend import CreatedTransaction

log = logging.getLogger(__name__)

DEFAULT_WALLET = "default"
RESCAN_BATCH_BLOCKS = 500  # blocks read per chain-thread call while rescanning, to bound memory


class LoaderErrorCode(IntEnum):
    """Bitcoin Core's codes for multi-wallet mistakes, which concern the node rather than one wallet."""

    WALLET_NOT_SPECIFIED = -19
    WALLET_ALREADY_LOADED = -35


class WalletService:
    """Loads, creates and unloads wallets and feeds them chain events; RPC handlers reach wallets through it."""

    def __init__(self, net_datadir: Path, chain: ChainService, bus: EventBus) -> None:
        self.datadir = net_datadir
        self.chain = chain
        self.bus = bus
        self._wallets: dict[str, Wallet] = {}
        self._sync_lock = asyncio.Lock()  # one chain update of the wallets at a time
        self._pay_lock = asyncio.Lock()  # one payment at a time, from coin selection to commit
        self._subscriptions: list[Subscription] = []

    @property
    def network(self) -> str:
        return self.chain.params.name

    async def start(self, names: Iterable[str]) -> None:
        """Subscribe to chain events, then load `names`; WalletError if one cannot be loaded."""
        self._subscriptions = [
            self.bus.subscribe(BlockConnected, self._on_block_connected),
            self.bus.subscribe(BlockDisconnected, self._on_block_disconnected),
            self.bus.subscribe(TxAccepted, self._on_tx_accepted),
        ]
        for name in names:
            await self.load(name)

    async def close(self) -> None:
        for sub in self._subscriptions:
            await self.bus.unsubscribe(sub)
        self._subscriptions = []
        self._wallets.clear()

    def startup_wallets(self, requested: str | None) -> list[str]:
        """The wallet to load at start: the one asked for, else "default" when it exists."""
        if requested is not None:
            return [requested]
        return [DEFAULT_WALLET] if wallet_path(self.datadir, DEFAULT_WALLET).is_file() else []

    # -- loaded wallets --------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return sorted(self._wallets)

    def get(self) -> Wallet:
        """The wallet an RPC call acts on: the only loaded one (RPC requests do not name a wallet)."""
        if not self._wallets:
            raise WalletError(
                WalletErrorCode.WALLET_NOT_FOUND,
                "No wallet is loaded. Load a wallet using loadwallet or create a new one with createwallet. "
                "(Note: A default wallet is no longer automatically created)",
            )
        if len(self._wallets) > 1:
            raise WalletError(
                LoaderErrorCode.WALLET_NOT_SPECIFIED,
                "Wallet file not specified: more than one wallet is loaded; unload all but one with unloadwallet",
            )
        return next(iter(self._wallets.values()))

    async def create(self, name: str, passphrase: str | None) -> Wallet:
        """createwallet: a fresh wallet has no history, so it starts synced at the current tip."""
        self._require_not_loaded(name)
        wallet = Wallet.create(self.datadir, name, self.network, passphrase)
        await self._sync(wallet, from_height=await self.chain.call(_tip_height, self.chain.chainstate))
        self._wallets[name] = wallet
        log.info("wallet %r created", name)
        return wallet

    async def load(self, name: str) -> Wallet:
        """loadwallet: open the file and catch up with the chain from where the wallet left off."""
        self._require_not_loaded(name)
        wallet = Wallet.open(self.datadir, name, self.network)
        await self._sync(wallet)
        self._wallets[name] = wallet
        log.info("wallet %r loaded at height %d", name, wallet.tip_height)
        await self._resubmit(wallet)
        return wallet

    async def _resubmit(self, wallet: Wallet) -> None:
        """Put the wallet's unconfirmed transactions back in the mempool, which a restart emptied.

        As Bitcoin Core's wallet does at start: an escrow or stake still unconfirmed when the node stopped
        must reach the network again, or the job that depends on it stalls. A transaction the mempool
        refuses (a conflict mined meanwhile, say) stays in the wallet for abandontransaction.
        """
        for tx in wallet.unconfirmed_transactions():
            try:
                await self.chain.submit_transaction(tx)
            except TxRejected as exc:
                log.info("wallet transaction %s not resubmitted: %s", tx.txid(), exc)
            else:
                log.info("wallet transaction %s resubmitted to the mempool", tx.txid())

    async def restore(self, name: str, backup_file: Path) -> Wallet:
        """restorewallet: a copy of a backup, rescanned from genesis since the backup may predate its history."""
        self._require_not_loaded(name)
        wallet = Wallet.restore(self.datadir, name, self.network, backup_file)
        await self._sync(wallet, from_height=0)
        self._wallets[name] = wallet
        log.info("wallet %r restored from %s", name, backup_file)
        return wallet

    def unload(self, name: str) -> None:
        if self._wallets.pop(name, None) is None:
            raise WalletError(WalletErrorCode.WALLET_NOT_FOUND, f"Requested wallet {name!r} is not loaded")
        log.info("wallet %r unloaded", name)

    def _require_not_loaded(self, name: str) -> None:
        if name in self._wallets:
            raise WalletError(LoaderErrorCode.WALLET_ALREADY_LOADED, f"Wallet {name!r} is already loaded.")

    # -- paying ----------------------------------------------------------------------------------

    async def pay(self, wallet: Wallet, create: Callable[[], CreatedTransaction]) -> CreatedTransaction:
        """Create a payment with `create`, hand it to the mempool, then record it; TxRejected changes nothing.

        One payment at a time from coin selection to commit (as Bitcoin Core holds cs_wallet from
        CreateTransaction to CommitTransaction): two at once would pick the same unspent coin, since a
        coin counts as spent only once the first is committed.
        """
        async with self._pay_lock:
            created = create()
            await self.chain.submit_transaction(created.tx)
            wallet.commit_transaction(created.tx)
            return created

    async def rescan(self, wallet: Wallet, from_height: int = 0) -> None:
        """Re-read the active chain from `from_height` into `wallet` (importprivkey's rescan)."""
        await self._sync(wallet, from_height=from_height)

    # -- following the chain ---------------------------------------------------------------------

    async def _on_block_connected(self, event: BlockConnected) -> None:
        async with self._sync_lock:
            for wallet in list(self._wallets.values()):
                if event.block.header.prev_hash == wallet.tip_hash:
                    wallet.apply_block(event.block, event.height)
                else:
                    await self._sync_locked(wallet, None)

    async def _on_block_disconnected(self, event: BlockDisconnected) -> None:
        async with self._sync_lock:
            for wallet in list(self._wallets.values()):
                if wallet.tip_hash == event.block.hash_bytes:
                    wallet.undo_block(event.block, event.height)
                else:
                    await self._sync_locked(wallet, None)

    async def _on_tx_accepted(self, event: TxAccepted) -> None:
        for wallet in list(self._wallets.values()):
            wallet.add_mempool_tx(event.tx)

    async def _sync(self, wallet: Wallet, from_height: int | None = None) -> None:
        async with self._sync_lock:
            await self._sync_locked(wallet, from_height)

    async def _sync_locked(self, wallet: Wallet, from_height: int | None) -> None:
        """Rescan `wallet` until its tip is the chain's: from `from_height`, or else from the fork point."""
        while True:
            start, blocks = await self.chain.call(
                _blocks_to_sync, self.chain.chainstate, wallet.tip_hash, from_height, RESCAN_BATCH_BLOCKS
            )
            if not blocks:
                return
            log.info("wallet %r: rescanning %d blocks from height %d", wallet.name, len(blocks), start)
            wallet.rescan(blocks, start)
            from_height = None


def _tip_height(chainstate: ChainState) -> int:
    return chainstate.tip.height


def _fork_height(chainstate: ChainState, tip_hash: bytes | None) -> int:
    """Height of the last block the wallet's tip shares with the active chain; -1 when none is known."""
    entry = None if tip_hash is None else chainstate.get_entry(tip_hash)
    while entry is not None and not chainstate.is_in_active_chain(entry.hash):
        entry = entry.prev
    return -1 if entry is None else entry.height


def _blocks_to_sync(
    chainstate: ChainState, wallet_tip: bytes | None, from_height: int | None, limit: int
) -> tuple[int, list[Block]]:
    """Chain thread: (start height, up to `limit` active-chain blocks from there); no blocks when in sync."""
    tip = chainstate.tip
    if from_height is None:
        if wallet_tip == tip.hash:
            return tip.height, []
        from_height = _fork_height(chainstate, wallet_tip) + 1
    end = min(tip.height, from_height + limit - 1)
    blocks = []
    for height in range(from_height, end + 1):
        block_hash = chainstate.get_hash_at_height(height)
        block = None if block_hash is None else chainstate.get_block(block_hash)
        if block is None:
            raise RuntimeError(f"active chain block at height {height} ({hash_to_hex(block_hash or b'')}) is missing")
        blocks.append(block)
    return from_height, blocks
