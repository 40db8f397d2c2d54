"""Base58, Base58Check, P2PKH addresses and WIF against Bitcoin Core's vectors, plus properties."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camelid.crypto.address import (
    NETWORKS,
    address_to_hash160,
    hash160_to_address,
    network_prefixes,
    networks_of_address,
)
from camelid.crypto.base58check import (
    ALPHABET,
    b58check_decode,
    b58check_encode,
    b58decode,
    b58encode,
    max_encoded_length,
)
from camelid.crypto.keys import decode_wif, encode_wif


def _vectors_dir() -> Path:
    """<repo>/../shared/vectors (CI clones beside shared/), else the workstation copy."""
    beside_repo = Path(__file__).resolve().parents[2] / "shared" / "vectors"
    return beside_repo if beside_repo.is_dir() else Path("/work/shared/vectors")


def _load(name: str):
    return json.loads((_vectors_dir() / "bitcoin-core" / name).read_text())


BASE58_VECTORS = _load("base58_encode_decode.json")
KEY_IO = _load("key_io_main_p2pkh.json")
networks = st.sampled_from(sorted(NETWORKS))
hash160s = st.binary(min_size=20, max_size=20)


@pytest.mark.parametrize(("data_hex", "text"), BASE58_VECTORS)
def test_base58_matches_bitcoin_core(data_hex: str, text: str) -> None:
    assert b58encode(bytes.fromhex(data_hex)) == text
    assert b58decode(text) == bytes.fromhex(data_hex)


@pytest.mark.parametrize("text", ["0", "O", "I", "l", "1 ", " 1", "1\n", "é", "3SEo3LWLoPntC\x00"])
def test_base58_names_the_bad_character(text: str) -> None:
    with pytest.raises(ValueError, match="invalid base58 character"):
        b58decode(text)


def test_base58check_rejects_checksum_and_length_problems() -> None:
    text = b58check_encode(b"payload")
    assert b58check_decode(text) == b"payload"
    with pytest.raises(ValueError, match="checksum mismatch"):
        b58check_decode(b58encode(b"payload" + b"\x00\x00\x00\x00"))
    with pytest.raises(ValueError, match="shorter than its 4-byte checksum"):
        b58check_decode(b58encode(b"abc"))
    with pytest.raises(ValueError, match="longer than the"):
        b58check_decode("2" * 1000, max_payload_length=21)


@given(st.binary(max_size=64))
def test_max_encoded_length_bounds_every_encoding(data: bytes) -> None:
    assert len(b58encode(data)) <= max_encoded_length(len(data))
    assert len(b58encode(b"\xff" * len(data))) == max_encoded_length(len(data))


@pytest.mark.parametrize(("address", "script_hex"), KEY_IO["p2pkh"])
def test_p2pkh_addresses_match_bitcoin_core(address: str, script_hex: str) -> None:
    script = bytes.fromhex(script_hex)
    assert script[:3] == bytes.fromhex("76a914") and script[-2:] == bytes.fromhex("88ac")
    h160 = script[3:23]
    assert address_to_hash160(address) == (0x00, h160)
    assert address_to_hash160(address, "mainnet") == (0x00, h160)
    assert hash160_to_address(h160, "mainnet") == address
    assert networks_of_address(address) == ("mainnet",)


@pytest.mark.parametrize(("wif", "secret_hex", "compressed"), KEY_IO["wif"])
def test_wif_matches_bitcoin_core(wif: str, secret_hex: str, compressed: bool) -> None:
    decoded = decode_wif(wif)
    assert decoded == (bytes.fromhex(secret_hex), compressed, "mainnet")
    assert encode_wif(decoded.secret, compressed, "mainnet") == wif


def test_testnet_and_regtest_share_version_bytes() -> None:
    address = hash160_to_address(bytes(20), "regtest")
    assert address == hash160_to_address(bytes(20), "testnet")
    assert address.startswith(("m", "n"))
    assert networks_of_address(address) == ("testnet", "regtest")
    assert address_to_hash160(address, "regtest") == (0x6F, bytes(20))


def test_address_of_another_network_is_refused() -> None:
    mainnet_address = KEY_IO["p2pkh"][0][0]
    with pytest.raises(ValueError, match="is not testnet's 0x6f"):
        address_to_hash160(mainnet_address, "testnet")


def test_address_with_unknown_version_or_length_is_refused() -> None:
    p2sh = b58check_encode(b"\x05" + bytes(20))
    with pytest.raises(ValueError, match="0x05 belongs to no known network"):
        address_to_hash160(p2sh)
    with pytest.raises(ValueError, match="payload is 20 bytes, expected 21"):
        address_to_hash160(b58check_encode(b"\x00" + bytes(19)))
    with pytest.raises(ValueError, match="hash160 must be 20 bytes"):
        hash160_to_address(bytes(21))


def test_unknown_network_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown network 'signet'"):
        network_prefixes("signet")
    with pytest.raises(ValueError, match="unknown network"):
        hash160_to_address(bytes(20), "signet")


@given(hash160s, networks)
def test_address_round_trip(h160: bytes, network: str) -> None:
    address = hash160_to_address(h160, network)
    assert address_to_hash160(address, network) == (network_prefixes(network).p2pkh, h160)
    assert network in networks_of_address(address)


@given(hash160s, networks, st.data())
def test_single_character_mutation_is_rejected(h160: bytes, network: str, data: st.DataObject) -> None:
    # A substitution survives the 32-bit checksum with probability 2**-32 per example.
    address = hash160_to_address(h160, network)
    position = data.draw(st.integers(0, len(address) - 1))
    replacement = data.draw(st.sampled_from([c for c in ALPHABET if c != address[position]]))
    mutated = address[:position] + replacement + address[position + 1 :]
    with pytest.raises(ValueError):
        address_to_hash160(mutated)


@given(st.text(max_size=60) | st.text(alphabet=ALPHABET, max_size=60))
def test_arbitrary_text_raises_only_value_error(text: str) -> None:
    for decode in (address_to_hash160, decode_wif):
        with contextlib.suppress(ValueError):
            decode(text)


@given(st.binary(min_size=32, max_size=32), st.booleans(), networks)
def test_wif_round_trip(secret: bytes, compressed: bool, network: str) -> None:
    decoded = decode_wif(encode_wif(secret, compressed, network), network)
    assert decoded == (secret, compressed, network)


def test_wif_problems_are_named() -> None:
    secret = bytes(range(1, 33))
    with pytest.raises(ValueError, match="compression flag is 0x02"):
        decode_wif(b58check_encode(b"\x80" + secret + b"\x02"))
    with pytest.raises(ValueError, match="payload is 32 bytes"):
        decode_wif(b58check_encode(b"\x80" + secret[:-1]))
    with pytest.raises(ValueError, match="0x81 belongs to no known network"):
        decode_wif(b58check_encode(b"\x81" + secret))
    with pytest.raises(ValueError, match="is not mainnet's"):
        decode_wif(encode_wif(secret, True, "testnet"), "mainnet")
    assert decode_wif(encode_wif(secret, True, "regtest")).network == "testnet"
