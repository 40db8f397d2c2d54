"""Signature checks on several threads: same verdict, same rejection reason, whatever the thread count."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from chain_helpers import REGTEST_NOW, Spendable, build_block, make_key, p2pkh_for, spend

from camelid.chain.chainstate import ChainState
from camelid.chain.checkqueue import CHUNK_SIZE, CheckQueue
from camelid.chain.errors import BlockRejected
from camelid.chain.template import make_coinbase
from camelid.core.block import Block
from camelid.core.params import REGTEST
from camelid.core.sigchecker import SignatureCheck
from camelid.core.transaction import OutPoint, Transaction, TxOut
from camelid.crypto.hashes import sha256

KEY = make_key(1)
PARAMS = replace(REGTEST, coinbase_maturity=1)  # block 2 spends block 1's coinbase outputs
SPENDS = 3 * CHUNK_SIZE + 5  # several chunks and a partial one
VALUE = 1_000_000
THREADS = (1, 2, 4)


def _check(n: int, valid: bool) -> SignatureCheck:
    digest = sha256(n.to_bytes(4, "big"))
    signature = KEY.sign(digest if valid else sha256(digest))
    return SignatureCheck(KEY.public_key.to_bytes(), signature, digest)


@pytest.mark.parametrize("threads", THREADS)
def test_failures_come_back_in_queue_order(threads: int) -> None:
    bad = {3, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, SPENDS - 1}
    queue = CheckQueue(threads)
    try:
        session = queue.session()
        for n in range(SPENDS):
            session.add(_check(n, n not in bad), f"check {n}")
        assert list(session.failures()) == [f"check {n}" for n in sorted(bad)]
    finally:
        queue.close()


def test_a_queue_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        CheckQueue(0)


@pytest.fixture(scope="module")
def funded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Transaction]:
    """A chain whose block 1 pays SPENDS outputs to KEY (kept on disk, copied per test run)."""
    path = tmp_path_factory.mktemp("funded") / "chain"
    chain = ChainState.open(path, PARAMS)
    script = p2pkh_for(KEY)
    funding = Transaction(
        inputs=make_coinbase(1, 0, script, 0).inputs, outputs=tuple(TxOut(VALUE, script) for _ in range(SPENDS))
    )
    chain.process_block(build_block(chain, coinbase=funding), now=REGTEST_NOW)
    chain.close()
    return path, funding


def _spend(funding: Transaction, index: int, *, signed_value: int = VALUE, txid: bytes | None = None) -> Transaction:
    """Spend funding output `index` (or an outpoint of `txid` nobody has), signed as if it held `signed_value`."""
    outpoint = OutPoint(txid if txid is not None else funding.hash, index)
    return spend([Spendable(outpoint, signed_value, KEY)], [TxOut(VALUE, p2pkh_for(KEY))])


def _broken(funding: Transaction, index: int, how: str) -> Transaction:
    """Spend `index` of the funding transaction, broken `how`."""
    if how == "bad signature":  # signed over the wrong amount: the queued check fails
        return _spend(funding, index, signed_value=VALUE + 1)
    if how == "missing input":
        return _spend(funding, index, txid=bytes([0x42]) * 32)
    tx = _spend(funding, index)
    if how == "non-minimal push":  # only the interpreter judges it
        script_sig = tx.inputs[0].script_sig
        sig = script_sig[1 : 1 + script_sig[0]]
        script_sig = b"\x4c" + bytes([len(sig)]) + sig + script_sig[1 + len(sig) :]
    else:
        assert how == "empty scriptSig"
        script_sig = b""
    return replace(tx, inputs=(replace(tx.inputs[0], script_sig=script_sig),))


def _outcome(funded: tuple[Path, Transaction], tmp_path: Path, txs: list[Transaction], threads: int, fees: int) -> str:
    source, _ = funded
    path = tmp_path / f"chain-{threads}"
    shutil.copytree(source, path)
    chain = ChainState.open(path, PARAMS, script_threads=threads)
    try:
        block = Block.from_bytes(build_block(chain, txs, fees=fees).to_bytes())  # as off the wire: nothing cached
        try:
            chain.process_block(block, now=REGTEST_NOW)
        except BlockRejected as exc:
            return str(exc)
        return f"connected, UTXO set {chain.utxo_set_stats()}"
    finally:
        chain.close()


LATE = 3 * CHUNK_SIZE  # in another chunk than the early breakage


@pytest.mark.parametrize(
    ("breakage", "fees", "reason", "culprit"),
    [
        ({}, 0, "connected", None),
        ({CHUNK_SIZE + 2: "bad signature", LATE: "bad signature"}, 0, "(NULLFAIL)", CHUNK_SIZE + 2),
        ({5: "bad signature", LATE: "missing input"}, 0, "(NULLFAIL)", 5),
        ({5: "missing input", LATE: "bad signature"}, 0, "bad-txns-inputs-missingorspent", 5),
        ({CHUNK_SIZE: "bad signature", CHUNK_SIZE + 3: "non-minimal push"}, 0, "(NULLFAIL)", CHUNK_SIZE),
        ({CHUNK_SIZE: "non-minimal push", CHUNK_SIZE + 3: "bad signature"}, 0, "(MINIMALDATA)", CHUNK_SIZE),
        ({7: "empty scriptSig"}, 0, "(INVALID_STACK_OPERATION)", 7),
        ({SPENDS - 1: "bad signature"}, 1, "(NULLFAIL)", SPENDS - 1),  # before the coinbase's claim of 1 too many
    ],
)
def test_the_first_broken_rule_in_block_order_names_the_rejection_on_any_number_of_threads(
    funded, tmp_path: Path, breakage: dict[int, str], fees: int, reason: str, culprit: int | None
) -> None:
    _, funding = funded
    txs = [_broken(funding, i, breakage[i]) if i in breakage else _spend(funding, i) for i in range(SPENDS)]
    outcomes = {threads: _outcome(funded, tmp_path, txs, threads, fees) for threads in THREADS}
    assert len(set(outcomes.values())) == 1, outcomes
    outcome = outcomes[1]
    if culprit is None:
        assert outcome.startswith(reason), outcome
    else:
        assert outcome.split(": ")[0].endswith(reason), outcome
        assert f"transaction {txs[culprit].txid()}" in outcome
