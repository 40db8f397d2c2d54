"""Shared helpers for the wallet tests: a toy chain of real Block objects and script verification.

The wallet does not validate blocks, so blocks here skip proof of work, and
outside funding spends made-up outpoints.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from camelid.core.block import Block, BlockHeader
from camelid.core.interpreter import verify_script
from camelid.core.params import REGTEST
from camelid.core.script import p2pkh_script, push_int
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import NULL_HASH, NULL_INDEX, Transaction, TxIn, TxOut
from camelid.crypto.address import address_to_hash160
from camelid.crypto.merkle import merkle_root
from camelid.wallet.crypter import ScryptParams
from camelid.wallet.wallet import Wallet

NETWORK = "regtest"
MATURITY = REGTEST.coinbase_maturity
FAST_KDF = ScryptParams(log2_n=10)  # real scrypt, cheap enough for many tests; one test uses the default cost


def new_wallet(datadir: Path, name: str = "w", **kwargs: object) -> Wallet:
    return Wallet.create(datadir, name, NETWORK, **kwargs)  # type: ignore[arg-type]


def script_of(address: str) -> bytes:
    return p2pkh_script(address_to_hash160(address, NETWORK)[1])


def stranger_script() -> bytes:
    return p2pkh_script(secrets.token_bytes(20))


def funding_tx(*payments: tuple[bytes, int]) -> Transaction:
    """A transaction from someone else (spending an outpoint the wallet has never seen) paying `payments`."""
    return Transaction(
        inputs=(TxIn(secrets.token_bytes(32), 0, b"\x00"),),
        outputs=tuple(TxOut(value, script) for script, value in payments),
    )


class ToyChain:
    """Blocks linked by prev_hash, with coinbases unique per height."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    def next_block(self, txs: tuple[Transaction, ...] = (), coinbase_to: bytes | None = None, value: int = 50) -> Block:
        height = len(self.blocks)
        coinbase = Transaction(
            inputs=(TxIn(NULL_HASH, NULL_INDEX, push_int(height) + secrets.token_bytes(4)),),
            outputs=(TxOut(value, coinbase_to or stranger_script()),),
        )
        transactions = (coinbase, *txs)
        prev = self.blocks[-1].hash_bytes if self.blocks else NULL_HASH
        header = BlockHeader(1, prev, merkle_root([tx.hash for tx in transactions]), 1_800_000_000 + height, 0, 0)
        block = Block(header, transactions)
        self.blocks.append(block)
        return block

    def extend(self, wallet: Wallet, count: int, coinbase_to: bytes | None = None, value: int = 50) -> None:
        for _ in range(count):
            wallet.apply_block(self.next_block(coinbase_to=coinbase_to, value=value), self.height)

    def mine(self, wallet: Wallet, *txs: Transaction) -> Block:
        block = self.next_block(txs)
        wallet.apply_block(block, self.height)
        return block

    def pop(self, wallet: Wallet) -> Block:
        block = self.blocks.pop()
        wallet.undo_block(block, self.height + 1)
        return block


def assert_signatures_verify(tx: Transaction, prevouts: dict[tuple[bytes, int], TxOut]) -> None:
    """Every input's scriptSig satisfies the output it spends, checked by the consensus interpreter."""
    for index, txin in enumerate(tx.inputs):
        spent = prevouts[(txin.prev_txid, txin.prev_index)]
        verify_script(txin.script_sig, spent.script_pubkey, TransactionSignatureChecker(tx, index, spent.value))
