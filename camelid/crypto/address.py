"""Networks' version bytes and P2PKH addresses (whitepaper 2.2.2).

An address is Base58Check(version || HASH160(pubkey)). Mainnet uses version
0x00, so a mainnet CamelidCoin address is the Bitcoin P2PKH address of the
same key. Testnet and regtest share Bitcoin's testnet bytes, so their
addresses and WIF keys cannot be told apart; a node only ever accepts those
of its own network.
"""

from __future__ import annotations

from dataclasses import dataclass

from camelid.crypto.base58check import b58check_decode, b58check_encode

HASH160_LENGTH = 20


@dataclass(frozen=True)
class NetworkPrefixes:
    """Version bytes that tag a Base58Check payload with its network."""

    p2pkh: int
    wif: int


NETWORKS: dict[str, NetworkPrefixes] = {
    "mainnet": NetworkPrefixes(p2pkh=0x00, wif=0x80),
    "testnet": NetworkPrefixes(p2pkh=0x6F, wif=0xEF),
    "regtest": NetworkPrefixes(p2pkh=0x6F, wif=0xEF),
}


def network_prefixes(network: str) -> NetworkPrefixes:
    """Version bytes of `network`; ValueError for a name not in NETWORKS."""
    try:
        return NETWORKS[network]
    except (KeyError, TypeError):
        raise ValueError(f"unknown network {network!r}; expected one of {sorted(NETWORKS)}") from None


def hash160_to_address(h160: bytes, network: str = "mainnet") -> str:
    """P2PKH address of a 20-byte public-key hash on `network`."""
    if len(h160) != HASH160_LENGTH:
        raise ValueError(f"hash160 must be {HASH160_LENGTH} bytes, got {len(h160)}")
    return b58check_encode(bytes([network_prefixes(network).p2pkh]) + h160)


def address_to_hash160(address: str, network: str | None = None) -> tuple[int, bytes]:
    """(version byte, hash160) of a P2PKH address.

    ValueError names the problem: a bad character, a checksum mismatch, a
    payload that is not 21 bytes, a version byte no network uses, or (when
    `network` is given) a version byte of another network.
    """
    payload = b58check_decode(address, max_payload_length=1 + HASH160_LENGTH)
    if len(payload) != 1 + HASH160_LENGTH:
        raise ValueError(f"address payload is {len(payload)} bytes, expected {1 + HASH160_LENGTH}")
    version, h160 = payload[0], payload[1:]
    if network is not None:
        expected = network_prefixes(network).p2pkh
        if version != expected:
            raise ValueError(f"address version 0x{version:02x} is not {network}'s 0x{expected:02x}")
    elif not networks_of_version(version):
        raise ValueError(f"address version 0x{version:02x} belongs to no known network")
    return version, h160


def networks_of_address(address: str) -> tuple[str, ...]:
    """Networks whose addresses look like `address`: ("mainnet",) or ("testnet", "regtest")."""
    version, _ = address_to_hash160(address)
    return networks_of_version(version)


def networks_of_version(p2pkh_version: int) -> tuple[str, ...]:
    """Names of the networks using `p2pkh_version`, in NETWORKS order."""
    return tuple(name for name, prefixes in NETWORKS.items() if prefixes.p2pkh == p2pkh_version)
