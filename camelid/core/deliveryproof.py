"""The bad-delivery proof: a client shows, from chain data alone, that the blob its node delivered is not
the committed output (docs/jobs-design.md, "Bad deliveries, proven with the DLEQ reveal").

It takes the DELIVERED lock through its fraud-proof branch, with the same 19 items as a RASTiC proof:

    <client_sig> <blob chunk_1> ... <blob chunk_18> <reveal> OP_1

the blob cut as the delivery cut it (at most 9,360 bytes), and the client's 97-byte SharedPointReveal
(S = c*E with its DLEQ proof) in place of the RASTiC proof's header and testament signature; the item
length tells the two apart (a DER signature is at most 72 bytes). The DELIVERED lock commits to
H = sha256(blob), and Pn signed the delivery that created it, so the lock itself binds the blob to the
node: no delivery signature is needed. The proof holds when the blob is malformed (no ephemeral key:
the reveal is then 97 zero bytes, its one form), or the reveal's DLEQ proof holds for (Pc, E, S) and
the blob does not open under S with aad J, or opens to something other than a commitment body B for
the lock's model whose sha256d(tag || B) is C. No model runs: an honest delivery opens to its B, and a
client cannot forge S (DLEQ soundness).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from camelid.core.jobscripts import (
    DELIVERY_CHUNKS,
    MAX_DELIVERY_SIZE,
    PROOF_ITEMS,
    CommittedOutput,
    JobLock,
    commitment_of_body,
    delivery_blob,
    delivery_items,
    match_job_lock,
)
from camelid.core.opcodes import Opcode
from camelid.core.script import build_script
from camelid.crypto import ecies
from camelid.crypto.hashes import sha256
from camelid.crypto.keys import PublicKey

REVEAL_LENGTH = ecies.REVEAL_LENGTH
MALFORMED_REVEAL = bytes(REVEAL_LENGTH)
"""The reveal of a proof against a blob with no ephemeral key: there is no point to reveal."""

assert DELIVERY_CHUNKS + 1 == PROOF_ITEMS  # the proof keeps the fraud-proof branch's fixed shape


@dataclass(frozen=True)
class BadDeliveryProof:
    """The delivered blob and the client's reveal of its shared point (MALFORMED_REVEAL for a malformed blob)."""

    blob: bytes
    reveal: bytes

    def __post_init__(self) -> None:
        if len(self.reveal) != REVEAL_LENGTH:
            raise ValueError(f"a bad-delivery proof's reveal is {REVEAL_LENGTH} bytes, got {len(self.reveal)}")
        if len(self.blob) > MAX_DELIVERY_SIZE:
            raise ValueError(f"a delivered blob is at most {MAX_DELIVERY_SIZE} bytes, got {len(self.blob)}")

    def to_items(self) -> list[bytes]:
        """The PROOF_ITEMS stack elements, bottom first: the blob's chunks, then the reveal."""
        return [*delivery_items(self.blob), self.reveal]

    @classmethod
    def from_items(cls, items: Sequence[bytes]) -> BadDeliveryProof:
        """Decode to_items's layout; ValueError naming the problem for anything else."""
        if len(items) != PROOF_ITEMS:
            raise ValueError(f"a bad-delivery proof needs {PROOF_ITEMS} items, got {len(items)}")
        return cls(delivery_blob(items[:-1]), bytes(items[-1]))


def is_bad_delivery_proof(items: Sequence[bytes]) -> bool:
    """Whether the fraud-proof items are a bad-delivery proof (a reveal on top), not a RASTiC one."""
    return len(items) == PROOF_ITEMS and len(items[-1]) == REVEAL_LENGTH


def bad_delivery_script_sig(client_signature: bytes, proof: BadDeliveryProof) -> bytes:
    """scriptSig taking a DELIVERED lock through its fraud-proof branch with a bad-delivery proof."""
    return build_script(client_signature, *proof.to_items(), Opcode.OP_1)


def delivery_fault(model_id: bytes, commitment: bytes, plaintext: bytes) -> str | None:
    """Why an opened delivery is not the output committed to by C for `model_id`; None when it is."""
    try:
        body = CommittedOutput.from_body(plaintext)
    except ValueError as exc:
        return f"the delivery is not a commitment body ({exc})"
    if body.model_id != model_id:
        return "the delivery names another model"
    if commitment_of_body(plaintext) != commitment:
        return "the delivery is not the output the node committed to"
    return None


def reveal_would_expose(blob: bytes, others: Sequence[bytes]) -> bool:
    """Whether revealing our shared point for `blob` would open one of the `others` sealed to the same job key.

    The point is c*E, so it opens every blob with the same ephemeral key E: a node that copied another node's E
    into garbage would get the client to publish what opens the other node's delivery. The client reveals only
    for an E no other delivery to the job's key carries (a blob with no E needs no reveal).
    """
    ephemeral = _ephemeral(blob)
    return ephemeral is not None and any(_ephemeral(other) == ephemeral for other in others)


def _ephemeral(blob: bytes) -> bytes | None:
    try:
        return ecies.ephemeral_key(blob).to_bytes()
    except ecies.DecryptionError:
        return None


def bad_delivery_unproven(script_code: bytes, items: Sequence[bytes]) -> str | None:
    """Why `items` do not prove the blob of the DELIVERED lock `script_code` bad (None: they do). Consensus."""
    try:
        proof = BadDeliveryProof.from_items(items)
    except ValueError as exc:
        return str(exc)
    lock = match_job_lock(script_code)
    if lock is None or lock.delivery_hash is None:
        return "a bad-delivery proof takes only a DELIVERED lock, the one that commits to a blob"
    if sha256(proof.blob) != lock.delivery_hash:
        return "the blob is not the one the node's delivery put on chain"
    return _blob_unproven(lock, proof)


def _blob_unproven(lock: JobLock, proof: BadDeliveryProof) -> str | None:
    try:
        ecies.ephemeral_key(proof.blob)
    except ecies.DecryptionError:
        return None if proof.reveal == MALFORMED_REVEAL else "a malformed blob is proven with 97 zero bytes"
    try:
        reveal = ecies.SharedPointReveal.from_bytes(proof.reveal)
        client = PublicKey.from_bytes(lock.client_pubkey)
    except ValueError as exc:
        return f"the reveal is not a shared point and its proof ({exc})"
    if not ecies.reveal_holds(reveal, client, proof.blob):
        return "the reveal's DLEQ proof does not hold for the client's key and the blob's ephemeral key"
    try:
        plaintext = ecies.open_with_point(reveal.point, client, proof.blob, aad=lock.job_id)
    except ecies.DecryptionError:
        return None  # sealed garbage, or sealed to another key
    if delivery_fault(lock.model_id, lock.commitment, plaintext) is None:
        return "the delivery opens to the output the node committed to"
    return None
