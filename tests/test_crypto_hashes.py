"""Known-answer vectors for the consensus hashes and the Merkle root."""

from __future__ import annotations

from bitcoin.core import CBlock
from Crypto.Hash import RIPEMD160
from hypothesis import given
from hypothesis import strategies as st

from camelid.crypto.hashes import hash160, ripemd160, sha256, sha256d
from camelid.crypto.merkle import merkle_root

GENERATOR_COMPRESSED = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")


def test_sha256_fips_vector() -> None:
    assert sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_sha256d_of_empty_string() -> None:
    assert sha256d(b"").hex() == "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"


def test_ripemd160_reference_vectors() -> None:
    assert ripemd160(b"").hex() == "9c1185a5c5e9fc54612808977ee8f548b2258d31"
    assert ripemd160(b"abc").hex() == "8eb208f7e05d987a9b044a8e98c6b087f15a0bfc"


def test_hash160_of_generator_point() -> None:
    # The witness program of BIP 173's example address bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4.
    assert hash160(GENERATOR_COMPRESSED).hex() == "751e76e8199196d454941c45d1b3a323f1433bd6"


def _internal(display_hex: str) -> bytes:
    return bytes.fromhex(display_hex)[::-1]


def test_merkle_root_of_bitcoin_block_100000() -> None:
    txids = [
        "8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87",
        "fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4",
        "6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4",
        "e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d",
    ]
    root = merkle_root([_internal(txid) for txid in txids])
    assert root[::-1].hex() == "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"


def test_merkle_root_of_empty_one_two_and_three_leaves() -> None:
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    assert merkle_root([]) == bytes(32)
    assert merkle_root([a]) == a
    assert merkle_root([a, b]) == sha256d(a + b)
    assert merkle_root([a, b, c]) == sha256d(sha256d(a + b) + sha256d(c + c))


@given(st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40))
def test_merkle_root_matches_python_bitcoinlib(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == CBlock.build_merkle_tree_from_txids(leaves)[-1]


@given(st.binary(max_size=200))
def test_ripemd160_backend_agrees_with_pycryptodome(data: bytes) -> None:
    assert ripemd160(data) == RIPEMD160.new(data).digest()
