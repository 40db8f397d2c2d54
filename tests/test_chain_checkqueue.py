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
from camelid.core.script import p2pkh_script_sig
from camelid.core.sigchecker import SignatureCheck
from camelid.core.transaction import OutPoint, Transaction, TxIn, TxOut
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


def _non_minimal(tx: Transaction) -> Transaction:
    """The same spend with its signature pushed through OP_PUSHDATA1: only the interpreter judges it."""
    script_sig = tx.inputs[0].script_sig
    sig = script_sig[1 : 1 + script_sig[0]]
    non_minimal = b"\x4c" + bytes([len(sig)]) + sig + script_sig[1 + len(sig) :]
    assert non_minimal != p2pkh_script_sig(sig, KEY.public_key.to_bytes())
    return replace(tx, inputs=(replace(tx.inputs[0], script_sig=non_minimal),))


def _outcome(funded: tuple[Path, Transaction], tmp_path: Path, txs: list[Transaction], threads: int) -> str:
    source, _ = funded
    path = tmp_path / f"chain-{threads}"
    shutil.copytree(source, path)
    chain = ChainState.open(path, PARAMS, script_threads=threads)
    try:
        block = Block.from_bytes(build_block(chain, txs).to_bytes())  # as off the wire: nothing cached
        try:
            chain.process_block(block, now=REGTEST_NOW)
        except BlockRejected as exc:
            return str(exc)
        return f"connected, UTXO set {chain.utxo_set_stats()}"
    finally:
        chain.close()


def _same_for_every_thread_count(funded: tuple[Path, Transaction], tmp_path: Path, txs: list[Transaction]) -> str:
    outcomes = {threads: _outcome(funded, tmp_path, txs, threads) for threads in THREADS}
    assert len(set(outcomes.values())) == 1, outcomes
    return outcomes[1]


def test_a_valid_block_connects_alike_on_any_number_of_threads(funded, tmp_path: Path) -> None:
    _, funding = funded
    outcome = _same_for_every_thread_count(funded, tmp_path, [_spend(funding, i) for i in range(SPENDS)])
    assert outcome.startswith("connected")


def test_the_first_bad_signature_in_block_order_names_the_rejection(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    first, second = CHUNK_SIZE + 2, 3 * CHUNK_SIZE
    txs[first] = _spend(funding, first, signed_value=VALUE + 1)
    txs[second] = _spend(funding, second, signed_value=VALUE + 1)
    outcome = _same_for_every_thread_count(funded, tmp_path, txs)
    assert outcome.startswith("mandatory-script-verify-flag-failed (NULLFAIL): ")
    assert f"transaction {txs[first].txid()}" in outcome


def test_a_bad_signature_before_a_missing_input_wins(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    txs[5] = _spend(funding, 5, signed_value=VALUE - 1)
    txs[2 * CHUNK_SIZE] = _spend(funding, 0, txid=bytes([0x42]) * 32)
    outcome = _same_for_every_thread_count(funded, tmp_path, txs)
    assert outcome.startswith("mandatory-script-verify-flag-failed (NULLFAIL): ")
    assert f"transaction {txs[5].txid()}" in outcome


def test_a_missing_input_before_a_bad_signature_wins(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    txs[5] = _spend(funding, 0, txid=bytes([0x42]) * 32)
    txs[2 * CHUNK_SIZE] = _spend(funding, 2 * CHUNK_SIZE, signed_value=VALUE - 1)
    outcome = _same_for_every_thread_count(funded, tmp_path, txs)
    assert outcome.startswith("bad-txns-inputs-missingorspent: ")
    assert f"transaction {txs[5].txid()}" in outcome


def test_a_queued_bad_signature_beats_a_later_interpreter_failure(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    txs[CHUNK_SIZE] = _spend(funding, CHUNK_SIZE, signed_value=VALUE + 7)
    txs[CHUNK_SIZE + 3] = _non_minimal(txs[CHUNK_SIZE + 3])
    outcome = _same_for_every_thread_count(funded, tmp_path, txs)
    assert outcome.startswith("mandatory-script-verify-flag-failed (NULLFAIL): ")
    assert f"transaction {txs[CHUNK_SIZE].txid()}" in outcome


def test_an_interpreter_failure_before_a_queued_bad_signature_wins(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    txs[CHUNK_SIZE] = _non_minimal(txs[CHUNK_SIZE])
    txs[CHUNK_SIZE + 3] = _spend(funding, CHUNK_SIZE + 3, signed_value=VALUE + 7)
    outcome = _same_for_every_thread_count(funded, tmp_path, txs)
    assert outcome.startswith("mandatory-script-verify-flag-failed (MINIMALDATA): ")
    assert f"transaction {txs[CHUNK_SIZE].txid()}" in outcome


def test_a_bad_signature_beats_a_later_overpaying_coinbase(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    txs[-1] = _spend(funding, SPENDS - 1, signed_value=VALUE + 1)
    source, _ = funded
    for threads in THREADS:
        path = tmp_path / f"overpay-{threads}"
        shutil.copytree(source, path)
        chain = ChainState.open(path, PARAMS, script_threads=threads)
        try:
            block = build_block(chain, txs, fees=1)  # the coinbase claims a fee nobody paid
            with pytest.raises(BlockRejected, match="NULLFAIL") as caught:
                chain.process_block(block, now=REGTEST_NOW)
            assert caught.value.reason == "mandatory-script-verify-flag-failed (NULLFAIL)"
        finally:
            chain.close()


def test_the_interpreter_path_and_a_missing_input_keep_their_own_reasons(funded, tmp_path: Path) -> None:
    _, funding = funded
    txs = [_spend(funding, i) for i in range(SPENDS)]
    txs[7] = replace(txs[7], inputs=(TxIn(funding.hash, 7, b"", txs[7].inputs[0].sequence),))  # empty scriptSig
    outcome = _same_for_every_thread_count(funded, tmp_path, txs)
    assert outcome.startswith("mandatory-script-verify-flag-failed (INVALID_STACK_OPERATION): ")
