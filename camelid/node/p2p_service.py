"""The node's P2P service: the PeerManager built from the configuration, with block sync and relay wired in.

The node's identity (the key directed messages are addressed to) is a secp256k1
key kept in <network datadir>/nodekey, readable by the owner only, so that a
restarted node keeps its identity. Chain events reach peers through the bus:
TxAccepted becomes inv(TX), TipChanged a block announcement.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from camelid.core.fill import Fills
from camelid.crypto.keys import PrivateKey
from camelid.node.bus import EventBus
from camelid.node.chain_service import ChainService
from camelid.node.events import TipChanged, TxAccepted
from camelid.p2p.addrbook import AddressKey
from camelid.p2p.manager import P2PSettings, PeerManager
from camelid.p2p.messages import NetAddress, ServiceFlags
from camelid.p2p.relay import Relay
from camelid.p2p.seeds import load_seeds
from camelid.p2p.sync import BlockSync

if TYPE_CHECKING:
    from camelid.node.config import NodeConfig

log = logging.getLogger(__name__)

NODEKEY_FILENAME = "nodekey"
MAX_OUTBOUND = 8  # as Bitcoin's full-relay outbound connections


def load_node_key(path: Path, network: str) -> PrivateKey:
    """The node's identity key from `path`, created (mode 0600) on first start."""
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        key = PrivateKey.generate(network=network)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key.secret)
        log.info("created node identity key %s", path)
        return key
    try:
        return PrivateKey.from_bytes(secret, network=network)
    except ValueError as exc:
        raise ValueError(f"node identity key {path} is corrupt ({exc}); move it away to create a new one") from None


class P2PService:
    """Owns the PeerManager, BlockSync and Relay; `await run()` in the node's TaskGroup."""

    def __init__(self, config: NodeConfig, chain: ChainService, bus: EventBus, models: tuple[bytes, ...] = ()) -> None:
        """`models`: the ids of the models the node serves, announced with the COMPUTE service bit."""
        params = config.params
        key = load_node_key(config.net_datadir / NODEKEY_FILENAME, config.network)
        self.node_key = key  # signs handshakes (camelid.p2p.auth) and jobaccept messages (camelid.node.jobs)
        max_outbound = min(MAX_OUTBOUND, config.maxconnections)
        settings = P2PSettings(
            params=params,
            node_key=key,
            datadir=config.net_datadir,
            listen=config.listen,
            bind=config.bind,
            port=config.p2p_port,
            connect=self._with_ports(config.connect, params.default_port),
            addnode=self._with_ports(config.addnode, params.default_port),
            max_outbound=max_outbound,
            max_inbound=config.maxconnections - max_outbound,
            services=ServiceFlags.FULL_NODE | (ServiceFlags.COMPUTE if models else 0),
            models=models,
        )
        self.default_port = params.default_port
        self.manager = PeerManager(settings, best_height=lambda: chain.chainstate.tip.height)
        self.sync = BlockSync(self.manager, chain)
        self.relay = Relay(self.manager, chain, self.sync)
        seeds = load_seeds(params.name, params.default_port, config.seedfile)
        self._seed_address_book(seeds + self._with_ports(config.seednode, params.default_port))
        bus.subscribe(TxAccepted, self._on_tx_accepted)
        bus.subscribe(TipChanged, self._on_tip_changed, lossless=False)  # only the latest tip is worth announcing

    @staticmethod
    def _with_ports(addresses: tuple[tuple[str, int | None], ...], default_port: int) -> tuple[AddressKey, ...]:
        return tuple((ip, default_port if port is None else port) for ip, port in addresses)

    def _seed_address_book(self, seeds: tuple[AddressKey, ...]) -> None:
        if len(self.manager.book) or not seeds:
            return
        now = int(time.time())
        for ip, port in seeds:  # each is its own source: seeds are spread over the book's buckets by their own /16
            self.manager.book.add([NetAddress(ip, port, ServiceFlags.FULL_NODE, now)], source=ip)

    def fill(self) -> Fills:
        """The peer manager's, block sync's and relay's bounded tables."""
        return {**self.manager.fill(), **self.sync.fill(), **self.relay.fill()}

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self.manager.run(), name="p2p-manager")
            tasks.create_task(self.sync.run(), name="p2p-sync")
            tasks.create_task(self.relay.run(), name="p2p-relay-orphans")

    def add_node(self, address: AddressKey) -> bool:
        """Keep `address` connected from now on (the addnode RPC); False if it already is on the list."""
        settings = self.manager.settings
        if address in settings.addnode:
            return False
        self.manager.settings = replace(settings, addnode=(*settings.addnode, address))
        return True

    def remove_node(self, address: AddressKey) -> bool:
        """Stop redialling an address added with add_node or --addnode; False if it was not on the list."""
        settings = self.manager.settings
        if address not in settings.addnode:
            return False
        self.manager.settings = replace(settings, addnode=tuple(a for a in settings.addnode if a != address))
        return True

    async def _on_tx_accepted(self, event: TxAccepted) -> None:
        self.relay.announce_transaction(event.tx.hash)

    async def _on_tip_changed(self, event: TipChanged) -> None:
        await self.relay.announce_block(event.hash)
