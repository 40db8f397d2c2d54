"""The composition root: the one module that builds a node from its parts and runs it.

It sits above every package (only camelid/cli imports it), because it must
import both the node's services and the RPC server that exposes them, and the
RPC methods import the services: built anywhere lower, the wiring would make an
import run back up the package map. The node runs one asyncio loop, as
ElectrumX's Controller does.

Start-up order matters for a node that may be killed at any instant:

1. take an exclusive lock on the network data directory (a second camelidd on
   the same directory stops here, before touching the cookie or the database);
2. write camelidd.pid and the RPC cookie, start the RPC server, which answers
   -28 "warming up" while
3. the chain state opens (and, with --reindex, rebuilds) on the chain thread;
4. the wallets load and catch up with the chain (unless --disablewallet);
5. the model, P2P and job services are built, and all services run in one
   TaskGroup -- P2P, models, jobs, and the miner with --mine -- until a
   ShutdownRequested event (the stop RPC, SIGTERM, SIGINT) or a service fails.

Shutdown runs the same steps backwards: cancel the services, stop the RPC
server, close what was opened newest first (wallets, miner, chain state: LevelDB
flushed and closed on the chain thread), stop the bus, remove the cookie and
pid file, release the lock.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import os
import signal
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from camelid.chain.mempool_file import MEMPOOL_FILENAME
from camelid.compute.worker_client import WorkerSettings
from camelid.core.script import p2pkh_script
from camelid.crypto.address import address_to_hash160
from camelid.node.bus import EventBus
from camelid.node.chain_service import ChainService
from camelid.node.compute_service import ComputeService
from camelid.node.config import NodeConfig
from camelid.node.events import ShutdownRequested
from camelid.node.jobs import JobService
from camelid.node.miner import Miner
from camelid.node.model_service import ModelService
from camelid.node.p2p_service import P2PService
from camelid.node.tasks import TaskService
from camelid.node.wallet_service import WalletService
from camelid.rpc.auth import Credentials, delete_cookie, write_cookie
from camelid.rpc.context import RPCContext
from camelid.rpc.http_guard import HTTPLimits
from camelid.rpc.methods import build_registry
from camelid.rpc.server import RPCServer

log = logging.getLogger(__name__)
T = TypeVar("T")

PID_FILENAME = "camelidd.pid"
LOCK_FILENAME = ".lock"
CHAINSTATE_DIRNAME = "chainstate"
JOBS_DIRNAME = "jobs"


class _StoppedWhileStarting(Exception):
    """A shutdown request came during a long start-up step, which was cancelled."""


class DataDirLocked(RuntimeError):
    """Another camelidd already uses this data directory."""


@contextmanager
def datadir_lock(net_datadir: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on the data directory for the life of the node."""
    with open(net_datadir / LOCK_FILENAME, "a") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirLocked(
                f"cannot lock data directory {net_datadir}: camelidd is probably already running"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


@contextmanager
def pid_file(net_datadir: Path) -> Iterator[None]:
    path = net_datadir / PID_FILENAME
    path.write_text(f"{os.getpid()}\n")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


class Node:
    """A full node configured by `config`; `await node.run()` returns after a clean shutdown."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self._shutdown = asyncio.Event()

    def request_shutdown(self, reason: str) -> None:
        if not self._shutdown.is_set():
            log.info("shutdown requested: %s", reason)
            self._shutdown.set()

    async def run(self) -> None:
        net_datadir = self.config.net_datadir
        net_datadir.mkdir(parents=True, exist_ok=True)
        with datadir_lock(net_datadir), pid_file(net_datadir):
            credentials = self._credentials(net_datadir)
            try:
                await self._run_services(credentials)
            except _StoppedWhileStarting:
                log.info("stopped while starting")
            finally:
                delete_cookie(net_datadir)
        log.info("shutdown complete")

    def _credentials(self, net_datadir: Path) -> Credentials:
        if self.config.rpcuser is not None and self.config.rpcpassword is not None:
            return Credentials(self.config.rpcuser, self.config.rpcpassword)
        creds = write_cookie(net_datadir)
        log.info("RPC cookie written to %s", net_datadir / ".cookie")
        return creds

    async def _run_services(self, credentials: Credentials) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_shutdown, signal.Signals(signum).name)
        bus = EventBus()
        bus.subscribe(ShutdownRequested, self._on_shutdown_requested)
        context = RPCContext(config.params, bus, methods=build_registry(), mining=config.mine)
        limits = HTTPLimits(config.rpcworkqueue, config.rpcmaxbody, config.rpcallowhost)
        rpc = RPCServer(
            context, credentials, config.rpcbind, config.rpc_port, status_page=not config.nostatus, limits=limits
        )
        closers: list[Callable[[], Awaitable[None]]] = []  # awaited newest first, once the RPC server has stopped
        try:
            await rpc.start()
            chain = await ChainService.open(
                config.net_datadir / CHAINSTATE_DIRNAME,
                config.params,
                bus,
                mempool_bytes=config.mempool_bytes,
                reindex=config.reindex,
                script_threads=config.par,
            )
            closers.append(chain.close)
            mempool_path = config.net_datadir / MEMPOOL_FILENAME
            closers.append(functools.partial(chain.save_mempool, mempool_path))  # closers run newest first
            miner = Miner(bus, chain, self._coinbase_script(), config.mine_processes)
            closers.append(miner.close)  # joins the worker processes generate() keeps warm
            wallets: WalletService | None = None
            if not config.disablewallet:
                context.warmup_status = "Loading wallet..."
                wallets = WalletService(config.net_datadir, chain, bus)
                closers.append(wallets.close)
                await wallets.start(wallets.startup_wallets(config.wallet))
            context.model_service = models = await asyncio.to_thread(ModelService, config)  # hashes files
            context.compute_service = compute = ComputeService(
                WorkerSettings(config.compute_threads, gpu_layers=config.gpu_layers, slots=config.compute_slots),
                models.store.path_of,
            )
            closers.append(compute.close)
            context.warmup_status = "Self-checking the served models..."
            served = models.announced() if config.serve_model else ()
            if served:
                log.info("self-checking the llama.cpp workers of %d served model(s)", len(served))
            await self._unless_stopped(compute.start([(m, models.store.model_path(m)) for m in served]))
            context.p2p_service = p2p = P2PService(
                config, chain, bus, tuple(m for m in models.announced() if compute.usable(m))
            )
            models.attach(p2p.manager)
            context.job_service = jobs = JobService(
                chain,
                bus,
                p2p,
                models,
                wallets,
                compute,
                serve=bool(config.serve_model) and not config.nocompute,
                misbehave=config.misbehave,
                store_dir=config.net_datadir / JOBS_DIRNAME,
                policy=config.compute_policy,
                verifiers=config.verifiers,
            )
            context.task_service = tasks = TaskService(jobs)
            context.finish_warmup(chain, miner, wallets)
            log.info("node ready on %s (RPC port %d)", config.network, config.rpc_port)
            services: dict[str, Coroutine[Any, Any, None]] = {
                "p2p": p2p.run(),
                "models": models.run(),
                "jobs": jobs.run(),
                "tasks": tasks.run(),
                "mempool-restore": chain.restore_mempool(mempool_path),
            }
            if config.mine:
                services["miner"] = miner.run()
            await self._run_until_shutdown(services)
        finally:
            await rpc.stop()
            for close in reversed(closers):
                await close()
            await bus.close()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    async def _run_until_shutdown(self, services: dict[str, Coroutine[Any, Any, None]]) -> None:
        """Run each service as a task until shutdown is requested; a service that fails stops them all."""
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(run, name=name) for name, run in services.items()]
            await self._shutdown.wait()
            for task in running:
                task.cancel()

    async def _unless_stopped(self, step: Coroutine[Any, Any, T]) -> T:
        """Await a long start-up step (the served models' self-checks), cancelled at once by a shutdown request,
        so that Ctrl-C or SIGTERM during start-up stops the node in moments rather than after the step."""
        task = asyncio.ensure_future(step)
        stop = asyncio.ensure_future(self._shutdown.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise _StoppedWhileStarting
        return task.result()

    async def _on_shutdown_requested(self, event: ShutdownRequested) -> None:
        self.request_shutdown(event.reason)

    def _coinbase_script(self) -> bytes | None:
        if self.config.mine_address is None:
            return None
        _, h160 = address_to_hash160(self.config.mine_address, self.config.network)
        return p2pkh_script(h160)
