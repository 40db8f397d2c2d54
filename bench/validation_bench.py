"""Block validation speed against raw signature verification, measured side by side.

Validates and connects a regtest block of 1,000 one-input P2PKH transactions into
a fresh copy of a prepared chain state (LevelDB, synced write included), once with
one script-check thread and once with one per core (-par), and verifies the same
1,000 signatures directly with coincurve on one core. Prints the median of several
interleaved runs of each and both ratios against the raw one-core rate; the goals
are >= 0.7 on one core and >= 1.2 with all cores.

    .venv/bin/python bench/validation_bench.py [--txs 1000] [--runs 7] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import coincurve

from camelid.chain.chainstate import ChainState
from camelid.chain.template import make_coinbase
from camelid.core.block import Block, BlockHeader
from camelid.core.consensus import block_subsidy
from camelid.core.params import REGTEST, ChainParams
from camelid.core.script import p2pkh_script, p2pkh_script_sig
from camelid.core.transaction import SIGHASH_ALL, Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.crypto.merkle import merkle_root

PARAMS: ChainParams = replace(REGTEST, coinbase_maturity=1)  # spend the funding coinbase in the next block
NOW = 1_900_000_000


def _solved_block(parent: BlockHeader, transactions: tuple[Transaction, ...]) -> Block:
    header = BlockHeader(
        1, parent.hash_bytes, merkle_root([t.hash for t in transactions]), parent.time + 120, parent.bits, 0
    )
    while not header.check_pow(PARAMS.pow_limit):
        header = header.with_nonce(header.nonce + 1)
    return Block(header, transactions)


def prepare(datadir: Path, tx_count: int) -> tuple[Block, list[tuple[bytes, bytes, bytes]]]:
    """A chain whose block 1 pays `tx_count` outputs to one key, and a block 2 spending each of them.

    Returns block 2 and the (pubkey, DER signature, digest) of every input, for the raw verify timing.
    """
    key = PrivateKey.from_bytes(bytes(31) + b"\x07")
    script = p2pkh_script(key.public_key.hash160())
    chain = ChainState.open(datadir, PARAMS)
    value = block_subsidy(1) // tx_count
    funding = Transaction(
        inputs=make_coinbase(1, 0, script, 0).inputs, outputs=tuple(TxOut(value, script) for _ in range(tx_count))
    )
    block1 = _solved_block(chain.tip.header, (funding,))
    chain.process_block(block1, now=NOW)
    pubkey = key.public_key.to_bytes()
    spends, signatures = [], []
    for index in range(tx_count):
        # Zero fee, so block 2's coinbase claims the plain subsidy.
        unsigned = Transaction(inputs=(TxIn(funding.hash, index),), outputs=(TxOut(value, script),))
        digest = unsigned.signature_hash(0, script, value, SIGHASH_ALL)
        der = key.sign(digest)
        script_sig = p2pkh_script_sig(der + bytes([SIGHASH_ALL]), pubkey)
        spends.append(replace(unsigned, inputs=(TxIn(funding.hash, index, script_sig),)))
        signatures.append((pubkey, der, digest))
    coinbase = make_coinbase(2, 0, script, block_subsidy(2))
    block2 = _solved_block(block1.header, (coinbase, *spends))
    chain.close()
    return block2, signatures


def time_raw_verify(signatures: list[tuple[bytes, bytes, bytes]]) -> float:
    start = time.perf_counter()
    for pubkey, der, digest in signatures:
        if not coincurve.PublicKey(pubkey).verify(der, digest, hasher=None):
            raise AssertionError("benchmark signature does not verify")
    return time.perf_counter() - start


def time_connect(prepared: Path, scratch: Path, block: Block, threads: int) -> float:
    """Seconds for process_block on a fresh copy of the prepared chain state (decoded block as a peer sends it)."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(prepared, scratch)
    chain = ChainState.open(scratch, PARAMS, script_threads=threads)
    received = Block.from_bytes(block.to_bytes())  # no cached hashes: the node gets bytes off the wire
    start = time.perf_counter()
    result = chain.process_block(received, now=NOW)
    elapsed = time.perf_counter() - start
    if result.status != "connected":
        raise AssertionError(f"benchmark block was not connected: {result.status}")
    chain.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txs", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="for the all-cores run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prepared, scratch = Path(tmp) / "prepared", Path(tmp) / "scratch"
        block, signatures = prepare(prepared, args.txs)
        raw, one, every = [], [], []
        for _ in range(args.runs):  # interleaved, so machine load affects all alike
            raw.append(time_raw_verify(signatures))
            one.append(time_connect(prepared, scratch, block, 1))
            every.append(time_connect(prepared, scratch, block, args.threads))
    raw_rate = args.txs / statistics.median(raw)
    one_rate = args.txs / statistics.median(one)
    every_rate = args.txs / statistics.median(every)
    print(f"block of {args.txs} one-input P2PKH transactions, median of {args.runs} runs")
    print(f"raw coincurve verify, one core:   {raw_rate:10,.0f} signatures/s")
    print(f"validate + connect, 1 thread:     {one_rate:10,.0f} transactions/s")
    print(f"validate + connect, {args.threads:>3} threads: {every_rate:10,.0f} transactions/s")
    print(
        f"ratio to raw verify: one core {one_rate / raw_rate:.2f} (goal >= 0.7), "
        f"{args.threads} threads {every_rate / raw_rate:.2f} (goal >= 1.2)"
    )


if __name__ == "__main__":
    main()
