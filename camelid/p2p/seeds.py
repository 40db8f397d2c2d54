"""Seed nodes per network (whitepaper 2.1.1), read from a seeds file.

The packaged file is camelid/p2p/seeds.json (the repository's top-level
seeds.json links to it, and the wheel carries it as package data): the one list
of seed addresses. `--seedfile PATH` replaces it, for private networks and
tests. The format is a JSON object: network name -> list of "IP", "IP:port" or
"[IPv6]:port" strings; keys starting with "_" are comments; a network the file
leaves out has no seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

from camelid.p2p.addrbook import AddressKey
from camelid.p2p.peer_address import parse_peer_address

DEFAULT_SEEDFILE = Path(__file__).with_name("seeds.json")


def load_seeds(network: str, default_port: int, path: Path | None = None) -> tuple[AddressKey, ...]:
    """The seed addresses for `network` in `path` (default: the packaged file); ValueError naming the problem."""
    path = DEFAULT_SEEDFILE if path is None else path
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read seed file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"seed file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"seed file {path}: expected an object of network -> addresses")
    entries = data.get(network, [])
    if not isinstance(entries, list) or not all(isinstance(entry, str) for entry in entries):
        raise ValueError(f"seed file {path}: {network!r} must be a list of \"IP[:port]\" strings")
    seeds = []
    for entry in entries:
        try:
            ip, port = parse_peer_address(entry)
        except ValueError as exc:
            raise ValueError(f"seed file {path}: {network}: {exc}") from None
        seeds.append((ip, default_port if port is None else port))
    return tuple(seeds)
