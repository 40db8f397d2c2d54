"""Cryptographic primitives: hashes, Merkle roots, secp256k1 keys, addresses, ECIES.

The bottom layer of CamelidCoin: pure functions and value types with no I/O,
so every layer above (core, chain, p2p, compute) can depend on it freely.
"""

from camelid.crypto.address import (
    NETWORKS,
    NetworkPrefixes,
    address_to_hash160,
    hash160_to_address,
    network_prefixes,
    networks_of_address,
)
from camelid.crypto.ecies import DecryptionError, decrypt, encrypt
from camelid.crypto.hashes import hash160, ripemd160, sha256, sha256d
from camelid.crypto.keys import PrivateKey, PublicKey, decode_wif, encode_wif
from camelid.crypto.merkle import merkle_root

__all__ = [
    "NETWORKS",
    "DecryptionError",
    "NetworkPrefixes",
    "PrivateKey",
    "PublicKey",
    "address_to_hash160",
    "decode_wif",
    "decrypt",
    "encode_wif",
    "encrypt",
    "hash160",
    "hash160_to_address",
    "merkle_root",
    "network_prefixes",
    "networks_of_address",
    "ripemd160",
    "sha256",
    "sha256d",
]
