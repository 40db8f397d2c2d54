"""getheaders / headers / sendheaders: headers-first chain sync, as Bitcoin.

`getheaders` carries a block locator (hashes from our tip back to genesis,
spaced exponentially) and the peer answers with up to 2000 headers that follow
the first locator hash it knows, stopping early at `stop` (zeros: no stop).
`sendheaders` asks the peer to announce new blocks with `headers` instead of `inv`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from camelid.core.block import HEADER_SIZE
from camelid.p2p.schema import Blob, ListOf, Message, wire

MAX_LOCATOR = 101  # as Bitcoin's MAX_LOCATOR_SZ
MAX_HEADERS = 2000  # as Bitcoin's MAX_HEADERS_RESULTS


@dataclass(frozen=True)
class GetHeaders(Message):
    command: ClassVar[str] = "getheaders"
    max_payload: ClassVar[int] = 4096  # 101 locator hashes and the stop hash take about 3,500 bytes

    locator: tuple[bytes, ...] = wire(ListOf(Blob(32), MAX_LOCATOR))
    stop: bytes = wire(Blob(32))


@dataclass(frozen=True)
class Headers(Message):
    command: ClassVar[str] = "headers"
    max_payload: ClassVar[int] = MAX_HEADERS * (HEADER_SIZE + 2) + 64  # each header is a bin8 of 80 bytes

    headers: tuple[bytes, ...] = wire(ListOf(Blob(HEADER_SIZE), MAX_HEADERS))  # raw 80-byte headers


@dataclass(frozen=True)
class SendHeaders(Message):
    command: ClassVar[str] = "sendheaders"
    max_payload: ClassVar[int] = 1
