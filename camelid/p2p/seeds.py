"""Seed nodes per network (whitepaper 2.1.1), as listed in seeds.json at the repository top level.

Kept as Python so an installed package carries them (seeds.json lies outside the
package). A node with an empty address book adds these, and any --seednode, to
its book and dials them like any other address. mainnet and testnet have no
public seeds yet; operators add theirs with --seednode or --addnode.
"""

from __future__ import annotations

SEEDS: dict[str, tuple[tuple[str, int], ...]] = {
    "mainnet": (),
    "testnet": (),
    "regtest": (),
}
