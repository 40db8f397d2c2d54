"""BIP32 derivation against the BIP32 test vector 1, and public derivation agreeing with private."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camelid.crypto.base58check import b58check_decode
from camelid.wallet.hd import HARDENED, master_key

SEED_1 = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
# (path, xprv, xpub) from BIP32's test vector 1
VECTOR_1 = [
    (
        (),
        "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi",
        "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8",
    ),
    (
        (HARDENED, 1),
        "xprv9wTYmMFdV23N2TdNG573QoEsfRrWKQgWeibmLntzniatZvR9BmLnvSxqu53Kw1UmYPxLgboyZQaXwTCg8MSY3H2EU4pWcQDnRnrVA1xe8fs",
        "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ",
    ),
]


def _chain_code_and_key(extended: str) -> tuple[bytes, bytes]:
    payload = b58check_decode(extended)
    return payload[13:45], payload[45:78]


@pytest.mark.parametrize(("path", "xprv", "xpub"), VECTOR_1)
def test_private_derivation_matches_bip32_vector_1(path, xprv, xpub):
    key = master_key(SEED_1).derive(path)
    chain_code, serialized = _chain_code_and_key(xprv)
    assert (key.chain_code, b"\x00" + key.secret) == (chain_code, serialized)
    assert (key.public().chain_code, key.public().public_key) == _chain_code_and_key(xpub)


def test_public_derivation_of_a_non_hardened_child_matches_the_vector():
    parent = master_key(SEED_1).child(HARDENED).public()
    child = parent.child(1)
    assert (child.chain_code, child.public_key) == _chain_code_and_key(VECTOR_1[1][2])


@settings(max_examples=25)
@given(st.binary(min_size=16, max_size=64), st.integers(0, HARDENED - 1))
def test_public_and_private_derivation_agree(seed, index):
    parent = master_key(seed).child(HARDENED)
    assert parent.child(index).public() == parent.public().child(index)


def test_hardened_child_of_a_public_key_is_refused():
    with pytest.raises(ValueError, match="needs the private key"):
        master_key(SEED_1).public().child(HARDENED + 5)


@pytest.mark.parametrize("length", [15, 65])
def test_seed_length_is_checked(length):
    with pytest.raises(ValueError, match="16..64 bytes"):
        master_key(bytes(length))


def test_child_index_must_fit_32_bits():
    with pytest.raises(ValueError, match="2\\*\\*32"):
        master_key(SEED_1).child(2**32)
