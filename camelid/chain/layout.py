"""The chain state's LevelDB key layout: one prefix byte per record kind, all in one database.

    b"b" + block_hash          -> serialized block (every block that passed context checks)
    b"i" + block_hash          -> block index entry: header | height u32 | chainwork 32 BE | status u8
    b"c" + txid + index u32 BE -> unspent coin: height u32 | is_coinbase u8 | value i64 | var_bytes script
    b"u" + block_hash          -> undo data of a connected block: the coins it spent, in spend order
    b"t" + txid                -> hash of the active-chain block containing the transaction
    b"T"                       -> hash of the active tip
    b"N"                       -> network name the datadir belongs to

The output index is big-endian so that LevelDB's key order is (txid, index), which
makes the UTXO-set hash a single ordered scan.
"""

from __future__ import annotations

from camelid.core.transaction import OutPoint

BLOCK = b"b"
INDEX = b"i"
COIN = b"c"
UNDO = b"u"
TXINDEX = b"t"
TIP = b"T"
NETWORK = b"N"


def block_key(block_hash: bytes) -> bytes:
    return BLOCK + block_hash


def index_key(block_hash: bytes) -> bytes:
    return INDEX + block_hash


def coin_key(outpoint: OutPoint) -> bytes:
    return COIN + outpoint.txid + outpoint.index.to_bytes(4, "big")


def undo_key(block_hash: bytes) -> bytes:
    return UNDO + block_hash


def txindex_key(txid: bytes) -> bytes:
    return TXINDEX + txid
