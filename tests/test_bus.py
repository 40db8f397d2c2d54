"""The internal event bus: typed delivery, ordering, failure isolation and bounded queues."""

from __future__ import annotations

import asyncio
import logging

import pytest

from camelid.node.bus import EventBus
from camelid.node.events import ShutdownRequested, TipChanged


async def test_events_reach_subscribers_of_their_exact_type_in_order():
    bus = EventBus()
    tips: list[int] = []
    stops: list[str] = []

    async def on_tip(event: TipChanged) -> None:
        tips.append(event.height)

    async def on_stop(event: ShutdownRequested) -> None:
        stops.append(event.reason)

    bus.subscribe(TipChanged, on_tip)
    bus.subscribe(ShutdownRequested, on_stop)
    for height in range(5):
        await bus.publish(TipChanged(bytes(32), height))
    await bus.publish(ShutdownRequested("rpc"))
    await bus.drain()
    assert tips == [0, 1, 2, 3, 4]
    assert stops == ["rpc"]
    await bus.close()


async def test_every_subscriber_of_a_type_gets_every_event():
    bus = EventBus()
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def recorder(key: str):
        async def handler(event: TipChanged) -> None:
            seen[key].append(event.height)

        return handler

    bus.subscribe(TipChanged, recorder("a"))
    bus.subscribe(TipChanged, recorder("b"))
    await bus.publish(TipChanged(bytes(32), 7))
    await bus.drain()
    assert seen == {"a": [7], "b": [7]}
    await bus.close()


async def test_failing_handler_is_logged_and_isolated(caplog):
    bus = EventBus()
    good: list[int] = []

    async def explode(event: TipChanged) -> None:
        if event.height == 1:
            raise RuntimeError("boom")

    async def record(event: TipChanged) -> None:
        good.append(event.height)

    bad_sub = bus.subscribe(TipChanged, explode)
    bus.subscribe(TipChanged, record)
    with caplog.at_level(logging.ERROR, logger="camelid.node.bus"):
        for height in range(3):
            await bus.publish(TipChanged(bytes(32), height))  # the publisher must not see the error
        await bus.drain()
    assert good == [0, 1, 2]
    assert bad_sub.failures == 1
    assert "explode" in caplog.text and "boom" in caplog.text
    # The failing subscriber keeps working for later events.
    await bus.publish(TipChanged(bytes(32), 3))
    await bus.drain()
    assert bad_sub.failures == 1
    await bus.close()


async def test_lossy_subscription_keeps_the_newest_events_when_full():
    bus = EventBus()
    gate = asyncio.Event()
    handled: list[int] = []

    async def slow(event: TipChanged) -> None:
        await gate.wait()
        handled.append(event.height)

    sub = bus.subscribe(TipChanged, slow, maxsize=2, lossless=False)
    await bus.publish(TipChanged(bytes(32), 0))
    await asyncio.sleep(0)  # the worker takes event 0 and blocks on the gate
    for height in range(1, 6):
        await asyncio.wait_for(bus.publish(TipChanged(bytes(32), height)), timeout=1)
    gate.set()
    await bus.drain()
    assert handled == [0, 4, 5]
    assert sub.dropped == 3
    await bus.close()


async def test_lossless_subscription_applies_backpressure_instead_of_dropping():
    bus = EventBus()
    gate = asyncio.Event()
    handled: list[int] = []

    async def slow(event: TipChanged) -> None:
        await gate.wait()
        handled.append(event.height)

    bus.subscribe(TipChanged, slow, maxsize=1)
    await bus.publish(TipChanged(bytes(32), 0))
    await asyncio.sleep(0)
    await bus.publish(TipChanged(bytes(32), 1))  # fills the queue
    blocked = asyncio.create_task(bus.publish(TipChanged(bytes(32), 2)))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    gate.set()
    await asyncio.wait_for(blocked, timeout=1)
    await bus.drain()
    assert handled == [0, 1, 2]
    await bus.close()


async def test_unsubscribe_stops_delivery():
    bus = EventBus()
    seen: list[int] = []

    async def record(event: TipChanged) -> None:
        seen.append(event.height)

    sub = bus.subscribe(TipChanged, record)
    await bus.publish(TipChanged(bytes(32), 1))
    await bus.drain()
    await bus.unsubscribe(sub)
    await bus.publish(TipChanged(bytes(32), 2))
    await bus.drain()
    assert seen == [1]
    await bus.close()


async def test_queue_size_must_be_positive():
    bus = EventBus()

    async def noop(event: TipChanged) -> None:
        return None

    with pytest.raises(ValueError, match="at least 1"):
        bus.subscribe(TipChanged, noop, maxsize=0)
    await bus.close()
