"""Addresses we refuse to talk to: operator bans (persisted) and misbehaviour discouragement (memory only).

As Bitcoin Core's BanMan: a ban is the operator's decision, lasts until its
expiry and survives restarts (banlist.json); discouragement is automatic after
a protocol violation and lasts DISCOURAGE_SECONDS in memory. We neither dial a
refused address nor accept its inbound connections (Bitcoin Core still lets a
discouraged address in when inbound slots are free; we keep the rule simple).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from camelid.atomicfile import write_atomically
from camelid.core.fill import Fill
from camelid.p2p.schema import canonical_ip

log = logging.getLogger(__name__)

DISCOURAGE_SECONDS = 24 * 60 * 60
MAX_DISCOURAGED = 50_000  # oldest entries go first beyond this
MAX_FILE_SIZE = 4 << 20


class BanList:
    """Bans by IP with expiry times (seconds since the epoch), saved to `path` when one is given."""

    def __init__(self, path: Path | None = None, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._bans: dict[str, float] = {}
        self._discouraged: dict[str, float] = {}
        if path is not None:
            self._bans = self._load(path)

    def ban(self, ip: str, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"ban time must be positive, got {seconds}")
        self._bans[canonical_ip(ip)] = self._clock() + seconds
        self._save()

    def unban(self, ip: str) -> bool:
        """Lift a ban; False if the address was not banned."""
        removed = self._bans.pop(canonical_ip(ip), None) is not None
        if removed:
            self._save()
        return removed

    def banned(self) -> dict[str, float]:
        """Every current ban: IP -> expiry time."""
        now = self._clock()
        self._bans = {ip: until for ip, until in self._bans.items() if until > now}
        return dict(self._bans)

    def discourage(self, ip: str) -> None:
        """Refuse `ip` for DISCOURAGE_SECONDS; an IP discouraged again moves to the newest end and evicts nobody."""
        ip = canonical_ip(ip)
        if self._discouraged.pop(ip, None) is None and len(self._discouraged) >= MAX_DISCOURAGED:
            del self._discouraged[next(iter(self._discouraged))]
        self._discouraged[ip] = self._clock() + DISCOURAGE_SECONDS

    def discouraged_fill(self) -> Fill:
        """IPs discouraged (expired ones included: they leave only when the table is full)."""
        return Fill(len(self._discouraged), MAX_DISCOURAGED)

    def is_discouraged(self, ip: str) -> bool:
        return self._discouraged.get(canonical_ip(ip), 0) > self._clock()

    def refuses(self, ip: str) -> bool:
        """True if we must neither dial nor accept this address."""
        ip = canonical_ip(ip)
        return self._bans.get(ip, 0) > self._clock() or self.is_discouraged(ip)

    def _save(self) -> None:
        if self.path is not None:
            write_atomically(self.path, json.dumps(self.banned(), sort_keys=True).encode())

    def _load(self, path: Path) -> dict[str, float]:
        try:
            with open(path, "rb") as file:
                data = file.read(MAX_FILE_SIZE + 1)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            log.warning("cannot read ban list %s (%s); starting with no bans", path, exc)
            return {}
        try:
            document = json.loads(data)
            if len(data) > MAX_FILE_SIZE or not isinstance(document, dict):
                raise ValueError("not a JSON object of bans")
            bans = {}
            for ip, until in document.items():
                if isinstance(until, bool) or not isinstance(until, int | float):
                    raise ValueError(f"ban of {ip} has a non-numeric expiry")
                bans[canonical_ip(ip)] = float(until)
            return bans
        except ValueError as exc:
            log.warning("ban list %s is corrupt (%s); starting with no bans", path, exc)
            return {}
