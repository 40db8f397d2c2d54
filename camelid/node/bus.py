"""In-process publish/subscribe between the node's services.

Services never call each other for notifications; the chain service publishes
BlockConnected/TipChanged and whoever cares (miner, RPC long-polls, later the
P2P relay) subscribes. Every subscription has its own bounded queue and its own
worker task, so a slow or failing handler delays only itself:

* an exception in a handler is logged with the event and the handler, and the
  worker carries on with the next event; the publisher never sees it;
* when a queue is full, a *lossless* subscription makes the publisher wait
  (backpressure, nothing lost), while a lossy one drops its oldest queued event,
  which suits "latest state wins" consumers such as a miner watching the tip.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Handler = Callable[[Any], Awaitable[None]]
DEFAULT_QUEUE_SIZE = 1000


class Subscription:
    """One handler for one event type, fed through its own bounded queue by a worker task."""

    def __init__(self, event_type: type, handler: Handler, maxsize: int, lossless: bool) -> None:
        if maxsize < 1:
            raise ValueError(f"subscription queue size must be at least 1, got {maxsize}")
        self.event_type = event_type
        self.handler = handler
        self.lossless = lossless
        self.dropped = 0  # events discarded because the queue was full (lossy subscriptions only)
        self.failures = 0  # handler invocations that raised
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"bus:{self.name}")

    @property
    def name(self) -> str:
        return f"{self.event_type.__name__}->{getattr(self.handler, '__qualname__', repr(self.handler))}"

    async def deliver(self, event: Any) -> None:
        if self.lossless:
            await self._queue.put(event)
            return
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            log.warning("bus: %s queue full, dropped its oldest event (%d dropped so far)", self.name, self.dropped)
        self._queue.put_nowait(event)

    async def join(self) -> None:
        """Wait until every event queued so far has been handled."""
        await self._queue.join()

    async def close(self) -> None:
        self._worker.cancel()
        await asyncio.gather(self._worker, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.handler(event)
            except Exception:
                self.failures += 1
                log.exception("bus: handler %s failed on %r", self.name, event)
            finally:
                self._queue.task_done()


class EventBus:
    """Typed publish/subscribe; create it inside the running event loop."""

    def __init__(self) -> None:
        self._subscriptions: dict[type, list[Subscription]] = {}

    def subscribe(
        self, event_type: type, handler: Handler, *, maxsize: int = DEFAULT_QUEUE_SIZE, lossless: bool = True
    ) -> Subscription:
        """Call `await handler(event)` for every later event of exactly `event_type`, in publish order."""
        sub = Subscription(event_type, handler, maxsize, lossless)
        self._subscriptions.setdefault(event_type, []).append(sub)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to `sub`; events still queued for it are discarded."""
        subs = self._subscriptions.get(sub.event_type, [])
        if sub in subs:
            subs.remove(sub)
        await sub.close()

    async def publish(self, event: Any) -> None:
        """Queue `event` for every subscriber of its type; waits only while a lossless queue is full."""
        for sub in list(self._subscriptions.get(type(event), ())):
            await sub.deliver(event)

    async def drain(self) -> None:
        """Wait until every subscriber has handled everything published so far."""
        for subs in list(self._subscriptions.values()):
            for sub in list(subs):
                await sub.join()

    async def close(self) -> None:
        """Stop every worker; called once at node shutdown."""
        subs = [s for group in self._subscriptions.values() for s in group]
        self._subscriptions.clear()
        for sub in subs:
            await sub.close()
