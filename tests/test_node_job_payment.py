"""What a compute node accepts as payment before it hands over its output: output 0 the job's exact PAYOUT for its
own key and commitment, worth the escrow; from the escrow, signed by the client, or from any other coins (a client's
claim on the stake needs a PAYOUT, wherever its coins came from)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from prompt_support import hidden

from camelid.core.job import JobParams
from camelid.core.jobscripts import JOB_PAYOUT_FEE_CAP, escrow_script, escrow_script_sig, payout_script
from camelid.core.transaction import SIGHASH_ALL, OutPoint, Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs import ComputeJob, payment_problem
from camelid.node.jobs.contract import JobTerms

CLIENT = PrivateKey.from_bytes(b"\x11" * 32)
NODE = PrivateKey.from_bytes(b"\x22" * 32).public_key.to_bytes()
OTHER_NODE = PrivateKey.from_bytes(b"\x33" * 32).public_key.to_bytes()
COMMITMENT = b"\x44" * 32
T0 = 1_800_000_000
REWARD = 100_000_000
PARAMS = JobParams(b"\x01" * 32, *hidden("llamas"), 8, 0, 0, T0, 600, CLIENT.public_key.to_bytes(), "", 9733)
JOB = PARAMS.job_id()
REFUND = T0 + 600 + 5
TERMS = JobTerms(PARAMS, 5)
ESCROW = escrow_script(JOB, PARAMS.client_pubkey, T0, REFUND)
WORK = ComputeJob(
    [7, 8], [1, 2], "llamas", NODE, COMMITMENT, OutPoint(b"\x55" * 32, 1), ESCROW, REWARD, OutPoint(b"\x66" * 32, 0),
    TxOut(REWARD, b""),
)


def payment(
    node: bytes = NODE,
    value: int = REWARD - 20_000,
    pay_time: int = TERMS.refund_time,
    job_id: bytes = JOB,
    escrow: OutPoint = WORK.escrow,
    signer: PrivateKey = CLIENT,
) -> Transaction:
    payout = payout_script(JOB, node, PARAMS.client_pubkey, COMMITMENT, PARAMS.model_id, T0, TERMS.deadline, pay_time)
    outputs = (TxOut(value, payout),)
    unsigned = Transaction(inputs=(TxIn(escrow.txid, escrow.index),), outputs=outputs, job_id=job_id)
    signature = signer.sign(unsigned.signature_hash(0, ESCROW, REWARD, SIGHASH_ALL)) + bytes([SIGHASH_ALL])
    return replace(unsigned, inputs=(TxIn(escrow.txid, escrow.index, escrow_script_sig(signature)),))


def test_the_clients_signed_payment_to_our_payout_is_accepted():
    assert payment_problem(payment(), TERMS, WORK) is None
    assert payment_problem(payment(value=REWARD - JOB_PAYOUT_FEE_CAP), TERMS, WORK) is None
    assert payment_problem(payment(escrow=OutPoint(b"\x55" * 32, 0)), TERMS, WORK) is None  # from other coins


@pytest.mark.parametrize(
    ("tx", "problem"),
    [
        (payment(job_id=b"\x66" * 32), "another Job ID"),
        (payment(node=OTHER_NODE), "not the job's PAYOUT to our key"),
        (payment(pay_time=REFUND + 1), "not the job's PAYOUT to our key"),
        (payment(pay_time=T0 + 10), "not the job's PAYOUT to our key"),
        (payment(value=REWARD - JOB_PAYOUT_FEE_CAP - 1), "less than the escrow's"),
        (payment(signer=PrivateKey.from_bytes(b"\x77" * 32)), "signature does not verify"),
    ],
)
def test_anything_else_is_refused_with_the_reason(tx, problem):
    assert problem in payment_problem(tx, TERMS, WORK)
