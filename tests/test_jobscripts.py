"""Job-contract scripts: templates and their parsers, the fraud-proof and delivery layouts, and the job opcodes as
the interpreter asks the checker (the dispute game's moves: test_chain_jobgame.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest
from chain_helpers import make_key

from camelid.compute import rastic
from camelid.core.deliveryproof import (
    MALFORMED_REVEAL,
    BadDeliveryProof,
    bad_delivery_script_sig,
    is_bad_delivery_proof,
    reveal_would_expose,
)
from camelid.core.interpreter import eval_script, verify_script
from camelid.core.jobscripts import (
    COMMITMENT_BODY_OVERHEAD,
    DELIVERY_CHUNKS,
    JOB_PAYOUT_FEE_CAP,
    MAX_DELIVERY_SIZE,
    MAX_PROOF_TOKENS,
    PROOF_ITEMS,
    CommittedOutput,
    FraudProof,
    JobEscrow,
    JobLock,
    claim_script_sig,
    commitment_body,
    commitment_of_body,
    commitment_signature_digest,
    delivery_blob,
    delivery_items,
    delivery_script_sig,
    delivery_spend,
    escrow_script,
    fraud_proof_script_sig,
    is_fraud_proof_spend,
    job_lock_script,
    job_t0,
    match_escrow,
    match_job_lock,
    non_delivery_claim,
    output_commitment,
    payout_script,
    release_script_sig,
    stake_script,
)
from camelid.core.opcodes import Opcode
from camelid.core.script import MAX_SCRIPT_ELEMENT_SIZE, MAX_SCRIPT_SIZE, ScriptError, ScriptErrorReason, build_script
from camelid.core.sigchecker import TransactionSignatureChecker
from camelid.core.transaction import Transaction, TxIn, TxOut
from camelid.crypto import ecies
from camelid.crypto.hashes import sha256d

CLIENT, NODE = make_key(41).public_key.to_bytes(), make_key(42).public_key.to_bytes()
JOB_ID, COMMITMENT, MODEL_ID = bytes([1]) * 32, bytes([2]) * 32, bytes([3]) * 32
# A PAYOUT and a STAKE: the client's claim opens at D, the node's release at D + W.
LOCK = JobLock(JOB_ID, 1_900_000_000, NODE, CLIENT, COMMITMENT, MODEL_ID, 1_900_000_600, 1_900_000_500, payout=True)
STAKE = replace(LOCK, payout=False)
PROOF = FraudProof((1, 2, 3), (4, 5, 2), 8, 77, 800, 1, b"\x30\x06node-sig", 9)


# Templates.


def test_escrow_script_round_trips() -> None:
    script = escrow_script(JOB_ID, CLIENT, 1_900_000_000, 1_900_000_605)
    assert match_escrow(script) == JobEscrow(JOB_ID, CLIENT, 1_900_000_000, 1_900_000_605)
    assert match_job_lock(script) is None
    assert job_t0(script) == 1_900_000_000


def test_stake_and_payout_round_trip_and_both_have_the_claim_branch() -> None:
    payout = payout_script(JOB_ID, NODE, CLIENT, COMMITMENT, MODEL_ID, LOCK.t0, LOCK.claim_time, LOCK.release_time)
    stake = stake_script(JOB_ID, NODE, CLIENT, COMMITMENT, MODEL_ID, LOCK.t0, STAKE.claim_time, LOCK.release_time)
    assert payout == job_lock_script(LOCK) and stake == job_lock_script(STAKE)
    assert match_job_lock(payout) == LOCK and LOCK.is_payout and not LOCK.is_stake
    assert match_job_lock(stake) == STAKE and STAKE.is_stake and not STAKE.is_payout
    assert LOCK.claim_key == STAKE.claim_key
    claim_and_else = payout[: payout.index(bytes([Opcode.OP_ELSE]), payout.index(CLIENT) + 1) + 1]
    assert stake.startswith(claim_and_else)  # the same fraud-proof and claim branches
    assert match_escrow(stake) is None
    assert job_t0(stake) == job_t0(payout) == LOCK.t0


def test_the_shortest_job_scripts_still_match() -> None:
    """The matchers refuse anything shorter than the shortest template (times of 0) without parsing it."""
    escrow = escrow_script(JOB_ID, CLIENT, 0, 0)
    assert match_escrow(escrow) == JobEscrow(JOB_ID, CLIENT, 0, 0)
    assert match_escrow(escrow[:-1]) is None
    for lock in (replace(LOCK, t0=0, release_time=0, claim_time=0), replace(STAKE, t0=0, release_time=0, claim_time=0)):
        assert match_job_lock(job_lock_script(lock)) == lock
        assert job_t0(job_lock_script(lock)) == 0


def test_scripts_that_only_resemble_a_template_do_not_match() -> None:
    for lock in (LOCK, STAKE):
        script = job_lock_script(lock)
        at = script.rindex(NODE)
        other_node_in_reclaim = script[:at] + CLIENT + script[at + len(NODE) :]  # the branches name different nodes
        assert match_job_lock(other_node_in_reclaim) is None
        assert match_job_lock(script + bytes([Opcode.OP_NOP])) is None
    stake = job_lock_script(STAKE)
    at = stake.rindex(CLIENT)
    node_in_claim = stake[:at] + NODE + stake[at + len(CLIENT) :]  # the claim branch must name the client
    assert match_job_lock(node_in_claim) is None
    non_minimal_t0 = escrow_script(JOB_ID, CLIENT, 5, 600).replace(bytes([Opcode.OP_5]), bytes([1, 5]), 1)
    assert match_escrow(non_minimal_t0) is None
    assert match_escrow(build_script(1, 2, b"short", Opcode.OP_CHECKJOBESCROWVERIFY, Opcode.OP_2DROP,
                                     Opcode.OP_DROP, CLIENT, Opcode.OP_CHECKSIG)) is None
    assert job_t0(b"\x4c") is None  # does not even parse


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: escrow_script(JOB_ID[:31], CLIENT, 1, 2), "job_id must be 32 bytes"),
        (lambda: escrow_script(JOB_ID, CLIENT, -1, 2), "fit an unsigned 32-bit"),
        (lambda: job_lock_script(replace(LOCK, model_id=b"m")), "model_id must be 32 bytes"),
        (lambda: job_lock_script(replace(LOCK, release_time=2**32)), "fit an unsigned 32-bit"),
        (lambda: job_lock_script(replace(STAKE, claim_time=-1)), "fit an unsigned 32-bit"),
    ],
)
def test_templates_reject_bad_fields(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()


# Fraud-proof layout.


def test_fraud_proof_items_round_trip() -> None:
    items = PROOF.to_items()
    assert len(items) == PROOF_ITEMS
    assert FraudProof.from_items(items) == PROOF


def test_largest_fraud_proof_fits_the_script_sig() -> None:
    prompt = tuple(range(1, 1_001))
    proof = FraudProof(prompt, tuple(range(MAX_PROOF_TOKENS - len(prompt))), 4096, 0, 0, 5, bytes(72), 7)
    assert all(len(item) <= MAX_SCRIPT_ELEMENT_SIZE for item in proof.to_items())
    assert len(fraud_proof_script_sig(bytes(72), proof)) <= MAX_SCRIPT_SIZE
    assert FraudProof.from_items(proof.to_items()) == proof
    with pytest.raises(ValueError, match="more than 2210 tokens"):
        replace(proof, output_tokens=proof.output_tokens + (1,))


def _rechunked(items: list[bytes]) -> list[bytes]:
    """The same token bytes split differently: what a third party would try to change a txid."""
    return [items[0][:4], items[0][4:], *items[2:]]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda items: items[:-1], "needs 19 items"),
        (_rechunked, "full 520-byte pieces"),
        (lambda items: [b"", items[0], *items[2:]], "full 520-byte pieces"),
        (lambda items: [items[0] + b"\x01", *items[1:]], "whole number of u32 tokens"),
        (lambda items: [*items[:-2], items[-2] + b"\x00", items[-1]], "header must be 26 bytes"),
        (lambda items: [*items[:-1], b""], "node signature"),
    ],
)
def test_fraud_proof_layout_is_canonical(mutate, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FraudProof.from_items(mutate(PROOF.to_items()))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompt_tokens": ()}, "no prompt tokens"),
        ({"output_tokens": ()}, "no output tokens"),
        ({"position": 3}, "position 3 is outside"),
        ({"max_tokens": 0}, "job fields out of range"),
        ({"prompt_tokens": (2**32,)}, "fit 32 bits"),
        ({"token": 2**32}, "token 4294967296 does not fit 32 bits"),
    ],
)
def test_fraud_proof_fields_are_checked(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(PROOF, **change)


def test_commitment_known_answer() -> None:
    """Pinned bytes: nodes that sign and nodes that judge proofs must agree on C forever."""
    args = (b"\x11" * 32, [1, 2, 3], [4, 5, 2], 8, 77, 0.8)
    assert output_commitment(*args).hex() == "8dacc5dfcf97c95169e5e40d2c08170e6879d1644e268b54611390c9d7c3d40a"
    assert rastic.output_commitment is output_commitment
    body = commitment_body(*args)  # what a delivery seals: C is its tagged hash, so anyone holding it checks C
    assert sha256d(b"camelid/rastic-commitment/v1" + body) == output_commitment(*args) == commitment_of_body(body)
    assert len(body) == COMMITMENT_BODY_OVERHEAD + 4 * 6
    assert CommittedOutput.from_body(body) == CommittedOutput(b"\x11" * 32, 8, 77, 0.8, (1, 2, 3), (4, 5, 2))


@pytest.mark.parametrize(
    "cut, message",
    [(-1, "ends before them"), (10, "at least"), (72, "ends before its output token count")],
)
def test_a_commitment_body_decodes_only_whole(cut: int, message: str) -> None:
    body = commitment_body(b"\x11" * 32, [1, 2, 3], [4, 5, 2], 8, 77, 0.8)
    with pytest.raises(ValueError, match=message):
        CommittedOutput.from_body(body[:cut])
    with pytest.raises(ValueError, match="after its output tokens"):
        CommittedOutput.from_body(body + b"\x00")


def test_a_bad_delivery_proof_of_the_largest_blob_fits_a_script_sig() -> None:
    """18 chunks, as the delivery: the proof carries every blob a delivery can put on chain."""
    proof = BadDeliveryProof(bytes(MAX_DELIVERY_SIZE), MALFORMED_REVEAL)
    assert len(bad_delivery_script_sig(b"\x30" * 72, proof)) <= MAX_SCRIPT_SIZE
    assert BadDeliveryProof.from_items(proof.to_items()) == proof
    assert is_bad_delivery_proof(proof.to_items()) and not is_bad_delivery_proof(PROOF.to_items())


# The opcodes, with a recording checker standing in for the transaction.


@dataclass
class JobChecker:
    escrow_ok: bool = True
    proof_problem: str | None = None  # what check_job_proof answers: None, the proof opens its game
    signer: bytes | None = None  # the only key b"sig" is valid for; None: any key
    lock_time: int | None = None  # the transaction's lock time; None: every CHECKLOCKTIMEVERIFY passes
    asked: list[tuple] = field(default_factory=list)

    def check_sig(self, sig: bytes, pubkey: bytes, script_code: bytes) -> bool:
        return sig == b"sig" and self.signer in (None, pubkey)

    def check_locktime(self, locktime: int) -> bool:
        return self.lock_time is None or locktime <= self.lock_time

    def check_job_escrow(self, job_id: bytes, t0: int, refund_time: int) -> bool:
        self.asked.append((job_id, t0, refund_time))
        return self.escrow_ok

    def check_job_proof(self, lock_script: bytes, proof_items: list[bytes]) -> str | None:
        self.asked.append((lock_script, list(proof_items)))
        return self.proof_problem

    def check_job_game(self, game_script: bytes, data: bytes) -> str | None:
        self.asked.append((game_script, data))
        return "no game here"

    def check_job_delivery(self, stake_script: bytes, blob: bytes) -> bool:
        self.asked.append((stake_script, blob))
        return self.escrow_ok


def _reason(run) -> ScriptErrorReason:
    with pytest.raises(ScriptError) as caught:
        run()
    return caught.value.reason


def test_escrow_opcode_asks_the_checker_and_leaves_the_stack() -> None:
    checker = JobChecker()
    stack: list[bytes] = []
    eval_script(build_script(100, 700, JOB_ID, Opcode.OP_CHECKJOBESCROWVERIFY), stack, checker)
    assert stack == [bytes([100]), (700).to_bytes(2, "little"), JOB_ID]
    assert checker.asked == [(JOB_ID, 100, 700)]
    script = build_script(100, 700, JOB_ID, Opcode.OP_CHECKJOBESCROWVERIFY)
    refused = JobChecker(escrow_ok=False)
    assert _reason(lambda: eval_script(script, [], refused)) == ScriptErrorReason.JOB_ESCROW


def test_escrow_script_spends_with_the_clients_signature_only_when_the_checker_agrees() -> None:
    script = escrow_script(JOB_ID, CLIENT, 100, 700)
    verify_script(build_script(b"sig"), script, JobChecker())
    assert _reason(lambda: verify_script(build_script(b"sig"), script, JobChecker(escrow_ok=False))) == (
        ScriptErrorReason.JOB_ESCROW
    )
    assert _reason(lambda: verify_script(build_script(b"bad"), script, JobChecker())) == ScriptErrorReason.NULLFAIL


@pytest.mark.parametrize(("problem", "reason"), [(None, None), ("refuted", ScriptErrorReason.JOB_PROOF)])
def test_fraud_proof_branch_passes_the_proof_to_the_checker(problem: str | None, reason) -> None:
    checker = JobChecker(proof_problem=problem)
    script_sig = fraud_proof_script_sig(b"sig", PROOF)
    if reason is None:
        verify_script(script_sig, job_lock_script(LOCK), checker)
    else:
        assert _reason(lambda: verify_script(script_sig, job_lock_script(LOCK), checker)) == reason
    assert checker.asked == [(job_lock_script(LOCK), PROOF.to_items())]


def test_reclaim_branch_never_asks_for_a_proof() -> None:
    checker = JobChecker(proof_problem="refuted")
    verify_script(release_script_sig(b"sig", LOCK), job_lock_script(LOCK), checker)
    verify_script(release_script_sig(b"sig", STAKE), job_lock_script(STAKE), checker)
    assert checker.asked == []


@pytest.mark.parametrize(
    ("lock", "script_sig", "signer", "lock_time"),
    [
        (STAKE, claim_script_sig(b"sig"), CLIENT, STAKE.claim_time),
        (STAKE, release_script_sig(b"sig", STAKE), NODE, STAKE.release_time),
        (LOCK, claim_script_sig(b"sig"), CLIENT, LOCK.claim_time),
        (LOCK, release_script_sig(b"sig", LOCK), NODE, LOCK.release_time),
    ],
)
def test_time_branches_need_their_signer_and_lock_time(
    lock: JobLock, script_sig: bytes, signer: bytes, lock_time: int
) -> None:
    stake = job_lock_script(lock)
    verify_script(script_sig, stake, JobChecker(signer=signer, lock_time=lock_time))
    too_early = JobChecker(signer=signer, lock_time=lock_time - 1)
    assert _reason(lambda: verify_script(script_sig, stake, too_early)) == ScriptErrorReason.UNSATISFIED_LOCKTIME
    other = NODE if signer == CLIENT else CLIENT
    wrong_key = JobChecker(signer=other, lock_time=lock_time)
    assert _reason(lambda: verify_script(script_sig, stake, wrong_key)) == ScriptErrorReason.NULLFAIL


def test_branch_selectors_tell_fraud_proofs_and_claims_apart() -> None:
    stake, payout = job_lock_script(STAKE), job_lock_script(LOCK)
    proof = fraud_proof_script_sig(b"sig", PROOF)
    claim = claim_script_sig(b"sig")
    assert is_fraud_proof_spend(proof, stake) and is_fraud_proof_spend(proof, payout)
    assert not is_fraud_proof_spend(claim, stake)  # ends OP_0: the ELSE side, no model check
    assert not is_fraud_proof_spend(proof, escrow_script(JOB_ID, CLIENT, 100, 700))
    assert non_delivery_claim(claim, stake) == STAKE
    assert non_delivery_claim(release_script_sig(b"sig", STAKE), stake) is None
    assert non_delivery_claim(proof, stake) is None
    assert non_delivery_claim(claim, payout) == LOCK  # a PAYOUT's claim, valid only with its STAKE's
    assert non_delivery_claim(release_script_sig(b"sig", LOCK), payout) is None
    assert non_delivery_claim(b"\x4c", stake) is None  # does not parse


# The transaction checker's own job answers.


def test_transaction_checker_without_game_rules_never_passes_a_proof() -> None:
    node_key = make_key(42)
    commitment = PROOF.commitment(MODEL_ID)  # the signature is not part of the commitment
    proof = replace(PROOF, node_signature=node_key.sign(commitment_signature_digest(commitment)))
    lock = replace(LOCK, commitment=commitment)
    checker = TransactionSignatureChecker(Transaction(inputs=[TxIn(bytes(32), 0)], outputs=[TxOut(1, b"")]), 0, 1)
    assert "no game rules" in checker.check_job_proof(job_lock_script(lock), proof.to_items())
    assert "testament" in checker.check_job_proof(job_lock_script(replace(lock, node_pubkey=CLIENT)), proof.to_items())
    assert "committed" in checker.check_job_proof(job_lock_script(LOCK), proof.to_items())
    assert "malformed" in checker.check_job_proof(job_lock_script(lock), proof.to_items()[1:])
    assert "not a job lock" in checker.check_job_proof(b"", proof.to_items())
    assert checker.check_job_escrow(JOB_ID, 0, 1_900_000_000) is False


# The delivery branch: the STAKE, with the sealed output, into a DELIVERED lock.


def test_delivered_lock_round_trips_and_has_no_claim_branch() -> None:
    delivered = STAKE.delivered(b"sealed")
    script = job_lock_script(delivered)
    assert match_job_lock(script) == delivered and not delivered.is_stake
    assert delivered.release_time == STAKE.release_time and job_t0(script) == STAKE.t0
    assert claim_script_sig(b"sig") and non_delivery_claim(claim_script_sig(b"sig"), script) is None
    with pytest.raises(ValueError, match="only a STAKE"):
        LOCK.delivered(b"sealed")
    with pytest.raises(ValueError, match="either a claim time"):
        job_lock_script(replace(delivered, claim_time=1))
    with pytest.raises(ValueError, match="either a claim time"):
        job_lock_script(replace(delivered, delivery_hash=None))


def test_branch_selectors_tell_a_delivery_from_a_claim_a_reclaim_and_a_proof() -> None:
    stake = job_lock_script(STAKE)
    delivery = delivery_script_sig(b"sig", b"")  # every chunk empty: the selectors still end OP_1 OP_0 OP_0
    assert delivery_spend(delivery, stake) == STAKE
    assert non_delivery_claim(delivery, stake) is None and not is_fraud_proof_spend(delivery, stake)
    for other in (claim_script_sig(b"sig"), release_script_sig(b"sig", STAKE), fraud_proof_script_sig(b"sig", PROOF)):
        assert delivery_spend(other, stake) is None
    assert delivery_spend(delivery, job_lock_script(LOCK)) is None  # a PAYOUT has no delivery branch


@pytest.mark.parametrize("size", [0, 1, 519, 520, 521, 1040, MAX_DELIVERY_SIZE])
def test_delivery_blob_round_trips_in_its_canonical_chunks(size: int) -> None:
    blob = bytes(range(256)) * (size // 256) + bytes(size % 256)
    items = delivery_items(blob)
    assert len(items) == DELIVERY_CHUNKS and delivery_blob(items) == blob
    assert len(delivery_script_sig(b"\x30" * 72, blob)) <= MAX_SCRIPT_SIZE


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([b"x" * 519, b"y", *[b""] * (DELIVERY_CHUNKS - 2)], "full 520-byte pieces, then the rest"),
        ([b"", b"y", *[b""] * (DELIVERY_CHUNKS - 2)], "full 520-byte pieces, then the rest"),
        ([b"y"] * (DELIVERY_CHUNKS - 1), f"needs {DELIVERY_CHUNKS} blob chunks"),
    ],
)
def test_delivery_blob_layout_is_canonical(items: list[bytes], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        delivery_blob(items)


def test_a_blob_longer_than_a_scriptsig_carries_is_refused() -> None:
    with pytest.raises(ValueError, match=f"exceeds the {MAX_DELIVERY_SIZE} a scriptSig carries"):
        delivery_items(bytes(MAX_DELIVERY_SIZE + 1))


def test_delivery_branch_asks_the_checker_with_the_stake_and_the_blob() -> None:
    stake = job_lock_script(STAKE)
    checker = JobChecker(signer=NODE)
    verify_script(delivery_script_sig(b"sig", b"blob" * 200), stake, checker)
    assert checker.asked == [(stake, b"blob" * 200)]
    refused = JobChecker(escrow_ok=False, signer=NODE)
    reason = _reason(lambda: verify_script(delivery_script_sig(b"sig", b"blob"), stake, refused))
    assert reason == ScriptErrorReason.JOB_DELIVERY
    wrong_signer = JobChecker(signer=CLIENT)
    assert _reason(lambda: verify_script(delivery_script_sig(b"sig", b"b"), stake, wrong_signer)) == (
        ScriptErrorReason.NULLFAIL
    )


def test_a_malformed_blob_fails_the_delivery_opcode_with_its_reason() -> None:
    bent = build_script(b"sig", b"x" * 519, b"y", *[b""] * (DELIVERY_CHUNKS - 2), Opcode.OP_1, Opcode.OP_0, Opcode.OP_0)
    with pytest.raises(ScriptError, match="full 520-byte pieces") as caught:
        verify_script(bent, job_lock_script(STAKE), JobChecker())
    assert caught.value.reason == ScriptErrorReason.JOB_DELIVERY


def test_transaction_checker_wants_the_stakes_delivered_lock_for_the_blob() -> None:
    stake, blob, value = job_lock_script(STAKE), b"sealed output", 1_000_000
    delivered = job_lock_script(STAKE.delivered(blob))

    def checker(out: TxOut, job_id: bytes = JOB_ID) -> TransactionSignatureChecker:
        tx = Transaction(inputs=[TxIn(bytes(32), 0)], outputs=[out], job_id=job_id)
        return TransactionSignatureChecker(tx, 0, value)

    assert checker(TxOut(value - JOB_PAYOUT_FEE_CAP, delivered)).check_job_delivery(stake, blob)
    assert not checker(TxOut(value - JOB_PAYOUT_FEE_CAP - 1, delivered)).check_job_delivery(stake, blob)
    assert not checker(TxOut(value, delivered)).check_job_delivery(stake, b"another blob")
    assert not checker(TxOut(value, delivered), job_id=bytes(32)).check_job_delivery(stake, blob)
    assert not checker(TxOut(value, job_lock_script(LOCK))).check_job_delivery(stake, blob)
    assert not checker(TxOut(value, delivered)).check_job_delivery(job_lock_script(LOCK), blob)  # not a STAKE


def test_the_client_reveals_no_point_that_would_open_another_delivery() -> None:
    """A node that copies another delivery's ephemeral key E into garbage must not get the client to publish c*E."""
    client = make_key(40).public_key
    honest = ecies.encrypt(client, b"the other node's output", aad=bytes(32))
    copied = honest[:34] + bytes(len(honest) - 34)  # the same version and E, garbage after them
    assert reveal_would_expose(copied, [honest])
    assert not reveal_would_expose(ecies.encrypt(client, b"garbage", aad=bytes(32)), [honest])
    assert not reveal_would_expose(bytes(100), [bytes(100)])  # no E, no reveal needed: proven with 97 zero bytes
