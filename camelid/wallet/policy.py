"""Fee and size rules the wallet builds transactions by: Bitcoin Core's defaults, in base units per byte.

CamelidCoin has no segwit, so a transaction's size in bytes is its virtual size and
a fee rate of 1 base unit per byte is Core's 1 sat/vB. The relay node's mempool
policy must agree on the dust rule and the minimum relay rate.
"""

from __future__ import annotations

from camelid.core.consensus import COIN
from camelid.core.serialize import compact_size

MIN_RELAY_FEE_RATE = 1  # Core's minrelaytxfee, 1000 sat/kvB
DUST_RELAY_FEE_RATE = 3  # Core's dustrelayfee, 3000 sat/kvB
DEFAULT_FEE_RATE = 20  # Core's fallbackfee on test networks, 0.0002 BTC/kvB (this wallet has no fee estimator)
MAX_TX_FEE = COIN // 10  # Core's maxtxfee default: a fee above 0.1 coin is a mistake, not a choice

MAX_DER_SIGNATURE = 72
SIGHASH_BYTE = 1
COMPRESSED_PUBKEY = 33
_OUTPOINT = 32 + 4
_SEQUENCE = 4
_VALUE = 8
P2PKH_SCRIPT = 25
# version | lock_time | job id; the input and output counts are added by tx_size.
_TX_FIXED = 4 + 4 + 32
_CORE_P2PKH_SPEND_SIZE = 32 + 4 + 1 + 107 + 4  # Core's fixed spend estimate, so the threshold matches Bitcoin's


def p2pkh_input_size(public_key_length: int = COMPRESSED_PUBKEY) -> int:
    """Largest possible size of an input spending P2PKH: a 72-byte DER signature plus the sighash byte.

    libsecp256k1 does not grind for low R, so DER can reach 72 bytes (Core's 72 assumes
    grinding and counts the sighash byte in it); estimating the maximum means the
    signed transaction is never larger than the fee paid for.
    """
    script_sig = 1 + MAX_DER_SIGNATURE + SIGHASH_BYTE + 1 + public_key_length
    return _OUTPOINT + len(compact_size(script_sig)) + script_sig + _SEQUENCE


def output_size(script_pubkey_length: int = P2PKH_SCRIPT) -> int:
    return _VALUE + len(compact_size(script_pubkey_length)) + script_pubkey_length


def tx_size(input_sizes: list[int], output_sizes: list[int]) -> int:
    """Serialized size of a transaction with inputs and outputs of the given sizes."""
    return (
        _TX_FIXED
        + len(compact_size(len(input_sizes)))
        + sum(input_sizes)
        + len(compact_size(len(output_sizes)))
        + sum(output_sizes)
    )


def dust_threshold(script_pubkey_length: int = P2PKH_SCRIPT) -> int:
    """Smallest output worth relaying: Core's GetDustThreshold, the cost of creating and later spending it.

    For P2PKH (34 + 148 bytes at 3 per byte) it is 546, Bitcoin's familiar figure.
    """
    return (output_size(script_pubkey_length) + _CORE_P2PKH_SPEND_SIZE) * DUST_RELAY_FEE_RATE


def is_dust(value: int, script_pubkey_length: int = P2PKH_SCRIPT) -> bool:
    return value < dust_threshold(script_pubkey_length)
