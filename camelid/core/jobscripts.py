"""Job-contract scripts (docs/jobs-design.md): ESCROW, STAKE, PAYOUT and DELIVERED outputs, the fraud-proof
scriptSig and the delivery scriptSig.

    ESCROW  <t0> <refund_time> <J> OP_CHECKJOBESCROWVERIFY OP_2DROP OP_DROP <Pc> OP_CHECKSIG
    PAYOUT  <J> <t0> OP_2DROP
            OP_IF   <Pn> <C> <model_id> OP_CHECKJOBPROOFVERIFY OP_2DROP x 11 <Pc> OP_CHECKSIG
            OP_ELSE OP_IF   <D> OP_CHECKLOCKTIMEVERIFY OP_DROP <Pc> OP_CHECKSIG
                    OP_ELSE <release_time> OP_CHECKLOCKTIMEVERIFY OP_DROP <Pn> OP_CHECKSIG
                    OP_ENDIF
            OP_ENDIF
    STAKE   the same, with the node's delivery between the client's claim and the node's release:
            OP_ELSE OP_IF   <D> OP_CHECKLOCKTIMEVERIFY OP_DROP <Pc> OP_CHECKSIG
                    OP_ELSE OP_IF   OP_CHECKJOBDELIVERYVERIFY OP_2DROP x 9 <Pn> OP_CHECKSIG
                            OP_ELSE <release_time> OP_CHECKLOCKTIMEVERIFY OP_DROP <Pn> OP_CHECKSIG
                            OP_ENDIF
                    OP_ENDIF
            OP_ENDIF
    DELIVERED  <J> <t0> OP_2DROP <sha256(blob)> OP_DROP
            OP_IF   (the fraud-proof branch) OP_ELSE <release_time> OP_CHECKLOCKTIMEVERIFY OP_DROP <Pn> OP_CHECKSIG
            OP_ENDIF

All but the ESCROW are "job locks". The branch selectors end the scriptSig: OP_1 takes the fraud-proof
branch, OP_1 OP_0 the client's claim branch (STAKE, PAYOUT), OP_1 OP_0 OP_0 the STAKE's delivery branch,
OP_0 (DELIVERED), OP_0 OP_0 (PAYOUT) or OP_0 OP_0 OP_0 (STAKE) the node's release. The delivery branch
puts the sealed output on chain: OP_CHECKJOBDELIVERYVERIFY passes only when the transaction moves the
STAKE into the DELIVERED lock that commits to that blob (same job, keys, commitment and release time,
no claim branch), and a block may include it only while its median time past is before D
(camelid.chain.jobrules.check_delivery_deadline).
So once a delivery is mined the claim has nothing left to spend. The claim branches of a STAKE and of
its PAYOUT are valid only together, in one transaction, and only with a PAYOUT mined early enough
(camelid.chain.jobrules.check_job_claims): a node never paid keeps its stake, and a node that delivered
keeps its payment.

Every output carries J and t0 (the job's creation time) as pushes, because the dispute
window rule needs t0 and a block can see only the script it spends. The new opcodes
leave the stack as they found it (they replaced NOPs), so scripts drop their operands.

The delivery scriptSig is `<node_sig> <chunk_1> ... <chunk_18> OP_1 OP_0 OP_0`, the blob cut into
520-byte pieces the same way (at most 18 x 520 = 9,360 bytes, which keeps it under the 10,000-byte
scriptSig limit).

The fraud-proof scriptSig has a fixed shape so that the script can drop it with a
fixed number of OP_2DROPs:

    <client_sig> <chunk_1> ... <chunk_17> <header> <node_sig> OP_1

The chunks are prompt tokens then output tokens, each a u32 LE, cut into 520-byte
pieces (every piece full except the last non-empty one, then empty pushes), at most
17 x 130 = 2,210 tokens. The header is n_prompt u32 | max_tokens u32 | seed u64 |
temperature_milli u16 | position u32 | token u32 (j*, the token the challenger says the reference pass
prefers at position p). node_sig is the node's DER signature of commitment_signature_digest(C), the
testament it published with its stake. Such a proof decides nothing by itself: it opens the RASTiC
dispute game (camelid.core.jobgame), whose GAME output 0 of the spend must be.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace

from camelid.core.opcodes import Opcode
from camelid.core.script import (
    MAX_LOCKTIME_NUM_SIZE,
    MAX_SCRIPT_ELEMENT_SIZE,
    ScriptError,
    ScriptOp,
    build_script,
    decode_script_num,
    parse_script,
)
from camelid.crypto.hashes import sha256, sha256d

JOB_ID_SIZE = 32
COMMITMENT_SIZE = 32
MODEL_ID_SIZE = 32
PUBKEY_SIZE = 33
PROOF_CHUNKS = 17
"""Token pushes in every fraud proof: 17 x 520 bytes keep the scriptSig under the 10,000-byte limit."""
TOKEN_SIZE = 4
MAX_PROOF_TOKENS = PROOF_CHUNKS * MAX_SCRIPT_ELEMENT_SIZE // TOKEN_SIZE
PROOF_ITEMS = PROOF_CHUNKS + 2
"""Stack items OP_CHECKJOBPROOFVERIFY reads below its three operands: the chunks, the header, node_sig."""
JOB_PAYOUT_FEE_CAP = 100_000
"""Base units an escrow's payout spend may leave as fee: ~100 times the relay fee of that transaction."""

DELIVERY_CHUNKS = 18
"""Blob pushes in every delivery scriptSig: 18 x 523 bytes plus a signature stay under the 10,000-byte limit."""
MAX_DELIVERY_SIZE = DELIVERY_CHUNKS * MAX_SCRIPT_ELEMENT_SIZE
"""The largest sealed output a delivery can put on chain (JobParams bounds max_tokens to fit it)."""

_HEADER = struct.Struct("<IIQHII")
_BODY_FIELDS = struct.Struct("<QQd")
COMMITMENT_BODY_OVERHEAD = MODEL_ID_SIZE + 8 + 8 + 8 + 4 + 4
"""Bytes of a commitment body B besides its tokens (4 bytes each)."""
_COMMITMENT_TAG = b"camelid/rastic-commitment/v1"
_TESTAMENT_TAG = b"camelid/testament/v1"
_PROOF_DROPS = (3 + PROOF_ITEMS) // 2  # operands + proof items, all dropped before the client's CHECKSIG
_DELIVERY_DROPS = DELIVERY_CHUNKS // 2  # the blob's chunks, dropped before the node's CHECKSIG


def commitment_body(
    model_id: bytes,
    prompt_tokens: Sequence[int],
    output_tokens: Sequence[int],
    max_tokens: int,
    seed: int,
    temperature: float,
) -> bytes:
    """B, what C commits to and what a delivery seals: model_id || u64 max_tokens || u64 seed || f64
    temperature || u32 n_prompt || prompt tokens || u32 n_output || output tokens (all LE).

    The delivery carries B, not the output alone, so that whoever opens it (the client, or anyone given
    the client's reveal) checks it against C without the model (docs/jobs-design.md, "Change 1").
    """
    return b"".join(
        [
            model_id,
            struct.pack("<QQd", max_tokens, seed, temperature),
            struct.pack(f"<I{len(prompt_tokens)}I", len(prompt_tokens), *prompt_tokens),
            struct.pack(f"<I{len(output_tokens)}I", len(output_tokens), *output_tokens),
        ]
    )


def commitment_of_body(body: bytes) -> bytes:
    """C of a commitment body B: sha256d(tag || B)."""
    return sha256d(_COMMITMENT_TAG + body)


def output_commitment(
    model_id: bytes,
    prompt_tokens: Sequence[int],
    output_tokens: Sequence[int],
    max_tokens: int,
    seed: int,
    temperature: float,
) -> bytes:
    """The RASTiC output commitment C: sha256d over everything a verdict depends on.

    The compute node signs it before verification positions are drawn; consensus recomputes it
    from a fraud proof, so it lives here and camelid.compute.rastic uses this definition.
    """
    return commitment_of_body(
        commitment_body(model_id, prompt_tokens, output_tokens, max_tokens, seed, temperature)
    )


@dataclass(frozen=True)
class CommittedOutput:
    """A commitment body B, decoded: what the node committed to and sealed in its delivery."""

    model_id: bytes
    max_tokens: int
    seed: int
    temperature: float
    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]

    @classmethod
    def from_body(cls, body: bytes) -> CommittedOutput:
        """Decode B exactly (commitment_body's layout, no trailing bytes); ValueError naming the defect."""
        fixed = MODEL_ID_SIZE + _BODY_FIELDS.size
        if len(body) < fixed + 8:
            raise ValueError(f"a commitment body is at least {fixed + 8} bytes, got {len(body)}")
        max_tokens, seed, temperature = _BODY_FIELDS.unpack_from(body, MODEL_ID_SIZE)
        prompt, offset = _tokens_at(body, fixed, "prompt")
        if len(body) < offset + 4:
            raise ValueError("the commitment body ends before its output token count")
        output, offset = _tokens_at(body, offset, "output")
        if offset != len(body):
            raise ValueError(f"the commitment body has {len(body) - offset} bytes after its output tokens")
        return cls(body[:MODEL_ID_SIZE], max_tokens, seed, temperature, prompt, output)


def _tokens_at(body: bytes, offset: int, what: str) -> tuple[tuple[int, ...], int]:
    """The u32 count and the tokens it counts at `offset` of B, and the offset after them."""
    (count,) = struct.unpack_from("<I", body, offset)
    end = offset + 4 + TOKEN_SIZE * count
    if end > len(body):
        raise ValueError(f"the commitment body counts {count} {what} tokens but ends before them")
    return struct.unpack_from(f"<{count}I", body, offset + 4), end


def commitment_signature_digest(commitment: bytes) -> bytes:
    """What the node signs to stand behind output commitment C (domain-separated from sighashes)."""
    return sha256d(_TESTAMENT_TAG + commitment)


@dataclass(frozen=True)
class JobEscrow:
    """An ESCROW output: the client's reward, movable only to a payout for J or, after refund_time, anywhere."""

    job_id: bytes
    client_pubkey: bytes
    t0: int
    refund_time: int


@dataclass(frozen=True)
class JobLock:
    """A STAKE, PAYOUT or DELIVERED output: the client takes it with a fraud proof, the node after release_time.

    A STAKE and a PAYOUT (`payout` True) also have `claim_time` (the delivery deadline D): from then on
    the client may take them together without a proof (jobrules.check_job_claims); until then the node
    may move the STAKE, with its sealed output, into a DELIVERED lock. A DELIVERED lock has
    `delivery_hash`, the sha256 of the blob that delivery carried.
    """

    job_id: bytes
    t0: int
    node_pubkey: bytes
    client_pubkey: bytes
    commitment: bytes
    model_id: bytes
    release_time: int
    claim_time: int | None = None  # None: a DELIVERED
    delivery_hash: bytes | None = None  # a DELIVERED lock's sha256(blob)
    payout: bool = False  # a PAYOUT: a claim branch and no delivery branch

    @property
    def is_stake(self) -> bool:
        return self.claim_time is not None and not self.payout

    @property
    def is_payout(self) -> bool:
        return self.payout

    @property
    def claim_key(self) -> tuple[object, ...]:
        """What a STAKE and the PAYOUT claimed with it share: the job, both keys, the commitment and D."""
        return (self.job_id, self.t0, self.node_pubkey, self.client_pubkey, self.commitment, self.model_id,
                self.claim_time)

    def delivered(self, blob: bytes) -> JobLock:
        """The DELIVERED lock this STAKE's delivery branch must move it into for `blob`."""
        if not self.is_stake:
            raise ValueError("only a STAKE is delivered")
        return replace(self, claim_time=None, delivery_hash=sha256(blob))


def escrow_script(job_id: bytes, client_pubkey: bytes, t0: int, refund_time: int) -> bytes:
    _check_fields(job_id=job_id, client_pubkey=client_pubkey)
    _check_times(t0, refund_time)
    return build_script(
        t0, refund_time, job_id, Opcode.OP_CHECKJOBESCROWVERIFY, Opcode.OP_2DROP, Opcode.OP_DROP,
        client_pubkey, Opcode.OP_CHECKSIG,
    )


def job_lock_script(lock: JobLock) -> bytes:
    _check_fields(
        job_id=lock.job_id, node_pubkey=lock.node_pubkey, client_pubkey=lock.client_pubkey,
        commitment=lock.commitment, model_id=lock.model_id,
    )
    _check_times(lock.t0, lock.release_time)
    release: tuple[object, ...] = (
        lock.release_time, Opcode.OP_CHECKLOCKTIMEVERIFY, Opcode.OP_DROP, lock.node_pubkey, Opcode.OP_CHECKSIG,
    )
    head: tuple[object, ...] = (lock.job_id, lock.t0, Opcode.OP_2DROP)
    if (lock.delivery_hash is None) == (lock.claim_time is None):
        raise ValueError("a job lock has either a claim time (STAKE, PAYOUT) or a delivery hash (DELIVERED)")
    if lock.payout and lock.claim_time is None:
        raise ValueError("a PAYOUT has a claim time")
    if lock.delivery_hash is not None:
        _check_fields(delivery_hash=lock.delivery_hash)
        head += (lock.delivery_hash, Opcode.OP_DROP)
    if lock.claim_time is not None:
        _check_times(lock.claim_time)
        claim = (lock.claim_time, Opcode.OP_CHECKLOCKTIMEVERIFY, Opcode.OP_DROP, lock.client_pubkey, Opcode.OP_CHECKSIG)
        deliver = (
            Opcode.OP_CHECKJOBDELIVERYVERIFY, *[Opcode.OP_2DROP] * _DELIVERY_DROPS,
            lock.node_pubkey, Opcode.OP_CHECKSIG,
        )
        if not lock.payout:
            release = (Opcode.OP_IF, *deliver, Opcode.OP_ELSE, *release, Opcode.OP_ENDIF)
        release = (Opcode.OP_IF, *claim, Opcode.OP_ELSE, *release, Opcode.OP_ENDIF)
    return build_script(
        *head,
        Opcode.OP_IF,
        lock.node_pubkey, lock.commitment, lock.model_id, Opcode.OP_CHECKJOBPROOFVERIFY,
        *[Opcode.OP_2DROP] * _PROOF_DROPS,
        lock.client_pubkey, Opcode.OP_CHECKSIG,
        Opcode.OP_ELSE,
        *release,
        Opcode.OP_ENDIF,
    )


def stake_script(
    job_id: bytes, node_pubkey: bytes, client_pubkey: bytes, commitment: bytes, model_id: bytes, t0: int,
    deadline: int, reclaim_time: int,
) -> bytes:
    """The node's stake: forfeit to a fraud proof, claimable by the client from the delivery `deadline` (D)
    together with the node's PAYOUT if the node did not deliver, reclaimable by the node from reclaim_time (D + W)."""
    return job_lock_script(
        JobLock(job_id, t0, node_pubkey, client_pubkey, commitment, model_id, reclaim_time, deadline)
    )


def payout_script(
    job_id: bytes, node_pubkey: bytes, client_pubkey: bytes, commitment: bytes, model_id: bytes, t0: int,
    deadline: int, pay_time: int,
) -> bytes:
    """The node's reward: back to the client with a fraud proof, or from `deadline` (D) together with the
    STAKE the node did not deliver; the node's from pay_time (t_pay, D + W)."""
    return job_lock_script(
        JobLock(job_id, t0, node_pubkey, client_pubkey, commitment, model_id, pay_time, deadline, payout=True)
    )


def match_escrow(script: bytes) -> JobEscrow | None:
    """The escrow's fields if `script` is exactly what escrow_script builds, else None."""
    if len(script) < _MIN_ESCROW_SIZE:  # cheap refusal of the usual scripts (P2PKH)
        return None
    try:
        data = _template_data(parse_script(script), _ESCROW_SHAPE)
    except ScriptError:
        return None
    if data is None:
        return None
    t0, refund_time, job_id, client_pubkey = data
    try:
        escrow = JobEscrow(job_id, client_pubkey, _decode_time(t0), _decode_time(refund_time))
        rebuilt = escrow_script(escrow.job_id, escrow.client_pubkey, escrow.t0, escrow.refund_time)
    except ValueError:
        return None
    return escrow if rebuilt == script else None


def match_job_lock(script: bytes) -> JobLock | None:
    """The fields if `script` is exactly what job_lock_script builds (a STAKE, PAYOUT or DELIVERED), else None."""
    if len(script) < _MIN_JOB_LOCK_SIZE:  # cheap refusal of the usual scripts (P2PKH)
        return None
    claim_time: bytes | None = None
    delivery_hash: bytes | None = None
    try:
        ops = parse_script(script)
    except ScriptError:
        return None
    payout = False
    if (data := _template_data(ops, _PAYOUT_SHAPE)) is not None:
        payout = True
        (job_id, t0, node_pubkey, commitment, model_id, client_pubkey, claim_time, _client, release_time,
         _node) = data
    elif (data := _template_data(ops, _DELIVERED_SHAPE)) is not None:
        job_id, t0, delivery_hash, node_pubkey, commitment, model_id, client_pubkey, release_time, _node = data
    elif (data := _template_data(ops, _STAKE_SHAPE)) is not None:
        (job_id, t0, node_pubkey, commitment, model_id, client_pubkey, claim_time, _client, _deliverer,
         release_time, _node) = data
    else:
        return None
    try:
        lock = JobLock(
            job_id, _decode_time(t0), node_pubkey, client_pubkey, commitment, model_id, _decode_time(release_time),
            None if claim_time is None else _decode_time(claim_time), delivery_hash, payout,
        )
        rebuilt = job_lock_script(lock)
    except ValueError:
        return None
    return lock if rebuilt == script else None


def job_t0(script: bytes) -> int | None:
    """t0 of the job an ESCROW, STAKE or PAYOUT script belongs to; None for any other script."""
    escrow = match_escrow(script)
    if escrow is not None:
        return escrow.t0
    lock = match_job_lock(script)
    return lock.t0 if lock is not None else None


# Fraud proofs.


@dataclass(frozen=True)
class FraudProof:
    """The tokens, job fields, position and challenger's token j* a client offers against a node's signed
    commitment: move 0 of the dispute game."""

    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    max_tokens: int
    seed: int
    temperature_milli: int
    position: int
    node_signature: bytes
    token: int  # j*

    def __post_init__(self) -> None:
        if not self.prompt_tokens:
            raise ValueError("fraud proof has no prompt tokens")
        if not self.output_tokens:
            raise ValueError("fraud proof has no output tokens")
        if len(self.prompt_tokens) + len(self.output_tokens) > MAX_PROOF_TOKENS:
            raise ValueError(f"fraud proof carries more than {MAX_PROOF_TOKENS} tokens")
        if any(not 0 <= t < 2**32 for t in self.prompt_tokens + self.output_tokens):
            raise ValueError("fraud proof token ids must fit 32 bits")
        if not 0 <= self.position < len(self.output_tokens):
            raise ValueError(f"position {self.position} is outside the {len(self.output_tokens)} output tokens")
        if not (0 < self.max_tokens < 2**32 and 0 <= self.seed < 2**64 and 0 <= self.temperature_milli < 2**16):
            raise ValueError("fraud proof job fields out of range")
        if not 0 <= self.token < 2**32:
            raise ValueError(f"fraud proof token {self.token} does not fit 32 bits")
        if not 0 < len(self.node_signature) <= MAX_SCRIPT_ELEMENT_SIZE:
            raise ValueError("fraud proof node signature is empty or too long")

    @property
    def temperature(self) -> float:
        return self.temperature_milli / 1000

    def commitment(self, model_id: bytes) -> bytes:
        return output_commitment(
            model_id, self.prompt_tokens, self.output_tokens, self.max_tokens, self.seed, self.temperature
        )

    def to_items(self) -> list[bytes]:
        """The PROOF_ITEMS stack elements, bottom first: the token chunks, the header, the node signature."""
        tokens = self.prompt_tokens + self.output_tokens
        chunks = split_chunks(struct.pack(f"<{len(tokens)}I", *tokens), PROOF_CHUNKS)
        header = _HEADER.pack(
            len(self.prompt_tokens), self.max_tokens, self.seed, self.temperature_milli, self.position, self.token
        )
        return [*chunks, header, self.node_signature]

    @classmethod
    def from_items(cls, items: Sequence[bytes]) -> FraudProof:
        """Decode the stack elements of to_items; ValueError for anything but the one canonical layout."""
        if len(items) != PROOF_ITEMS:
            raise ValueError(f"fraud proof needs {PROOF_ITEMS} items, got {len(items)}")
        *chunks, header, node_signature = items
        raw = join_chunks(chunks, "fraud proof token")
        if len(raw) % TOKEN_SIZE:
            raise ValueError(f"fraud proof token bytes ({len(raw)}) are not a whole number of u32 tokens")
        if len(header) != _HEADER.size:
            raise ValueError(f"fraud proof header must be {_HEADER.size} bytes, got {len(header)}")
        n_prompt, max_tokens, seed, temperature_milli, position, token = _HEADER.unpack(header)
        tokens = struct.unpack(f"<{len(raw) // TOKEN_SIZE}I", raw)
        return cls(
            tokens[:n_prompt], tokens[n_prompt:], max_tokens, seed, temperature_milli, position, node_signature, token
        )


def fraud_proof_script_sig(client_signature: bytes, proof: FraudProof) -> bytes:
    """scriptSig taking a STAKE or PAYOUT output through its fraud-proof branch."""
    return build_script(client_signature, *proof.to_items(), Opcode.OP_1)


def release_script_sig(node_signature: bytes, lock: JobLock) -> bytes:
    """scriptSig taking a STAKE, PAYOUT or DELIVERED output through the node's time-locked branch."""
    if lock.is_stake:
        return build_script(node_signature, Opcode.OP_0, Opcode.OP_0, Opcode.OP_0)
    if lock.is_payout:
        return build_script(node_signature, Opcode.OP_0, Opcode.OP_0)
    return build_script(node_signature, Opcode.OP_0)


def delivery_items(blob: bytes) -> list[bytes]:
    """The DELIVERY_CHUNKS stack elements carrying `blob`; ValueError if it is longer than MAX_DELIVERY_SIZE."""
    if len(blob) > MAX_DELIVERY_SIZE:
        raise ValueError(f"a delivery blob of {len(blob)} bytes exceeds the {MAX_DELIVERY_SIZE} a scriptSig carries")
    return split_chunks(blob, DELIVERY_CHUNKS)


def delivery_blob(items: Sequence[bytes]) -> bytes:
    """The blob of delivery_items; ValueError naming the problem for anything but its one canonical layout."""
    if len(items) != DELIVERY_CHUNKS:
        raise ValueError(f"a delivery needs {DELIVERY_CHUNKS} blob chunks, got {len(items)}")
    return join_chunks(items, "delivery blob")


def delivery_script_sig(node_signature: bytes, blob: bytes) -> bytes:
    """scriptSig moving a STAKE, with the sealed output `blob`, into its DELIVERED lock (open before D)."""
    return build_script(node_signature, *delivery_items(blob), Opcode.OP_1, Opcode.OP_0, Opcode.OP_0)


def delivery_spend(script_sig: bytes, script_pubkey: bytes) -> JobLock | None:
    """The STAKE an input moves through its delivery branch (selectors OP_1 OP_0 OP_0), else None."""
    lock = match_job_lock(script_pubkey)
    if lock is None or not lock.is_stake:
        return None
    return lock if _selectors(script_sig)[-3:] == [Opcode.OP_1, Opcode.OP_0, Opcode.OP_0] else None


def delivered_blob(script_sig: bytes) -> bytes | None:
    """The blob a delivery scriptSig carries (its pushes after the signature), None if it has no such shape."""
    try:
        pushes = [op.data for op in parse_script(script_sig)]
    except ScriptError:
        return None
    if len(pushes) != DELIVERY_CHUNKS + 4 or any(data is None for data in pushes[1 : 1 + DELIVERY_CHUNKS]):
        return None
    try:
        return delivery_blob([data or b"" for data in pushes[1 : 1 + DELIVERY_CHUNKS]])
    except ValueError:
        return None


def claim_script_sig(client_signature: bytes) -> bytes:
    """scriptSig taking a STAKE or PAYOUT through the client's non-delivery claim branch (open from the deadline D)."""
    return build_script(client_signature, Opcode.OP_1, Opcode.OP_0)


def escrow_script_sig(client_signature: bytes) -> bytes:
    """scriptSig spending an ESCROW output (refund or payout; the transaction decides which)."""
    return build_script(client_signature)


def is_fraud_proof_spend(script_sig: bytes, script_pubkey: bytes) -> bool:
    """True if the input takes a job lock through its fraud-proof branch (it will cost a model check).

    The outer IF's selector is the scriptSig's last push in both templates. MINIMALIF and MINIMALDATA
    leave a valid spend one way to write it, OP_1; anything else fails before a proof is judged.
    """
    return match_job_lock(script_pubkey) is not None and _selectors(script_sig)[-1:] == [Opcode.OP_1]


def non_delivery_claim(script_sig: bytes, script_pubkey: bytes) -> JobLock | None:
    """The STAKE or PAYOUT an input takes through the client's claim branch (selectors OP_1 OP_0), else None."""
    lock = match_job_lock(script_pubkey)
    if lock is None or lock.claim_time is None:
        return None
    return lock if _selectors(script_sig)[-2:] == [Opcode.OP_1, Opcode.OP_0] else None


def _selectors(script_sig: bytes) -> list[int]:
    """The scriptSig's opcodes (pushes included), [] if it does not parse."""
    try:
        return [op.opcode for op in parse_script(script_sig)]
    except ScriptError:
        return []


# Canonical chunking: a byte string over several pushes, every piece full but the last non-empty one.


def split_chunks(raw: bytes, count: int) -> list[bytes]:
    chunks = [raw[i : i + MAX_SCRIPT_ELEMENT_SIZE] for i in range(0, len(raw), MAX_SCRIPT_ELEMENT_SIZE)]
    return chunks + [b""] * (count - len(chunks))


def join_chunks(chunks: Sequence[bytes], what: str) -> bytes:
    """The bytes _split cut into `chunks`; ValueError for any other cut (so a relay cannot re-chunk them)."""
    used = [chunk for chunk in chunks if chunk]
    if list(chunks[: len(used)]) != used or any(len(c) != MAX_SCRIPT_ELEMENT_SIZE for c in used[:-1]):
        raise ValueError(f"{what} chunks must be full 520-byte pieces, then the rest, then empties")
    if any(len(c) > MAX_SCRIPT_ELEMENT_SIZE for c in used):
        raise ValueError(f"{what} chunks must be at most {MAX_SCRIPT_ELEMENT_SIZE} bytes")
    return b"".join(used)


# Template matching helpers.

_PUSH = "push"
_ESCROW_SHAPE = (
    _PUSH, _PUSH, _PUSH, Opcode.OP_CHECKJOBESCROWVERIFY, Opcode.OP_2DROP, Opcode.OP_DROP, _PUSH, Opcode.OP_CHECKSIG,
)
_HEAD = (_PUSH, _PUSH, Opcode.OP_2DROP)
_PROOF_BRANCH = (
    Opcode.OP_IF, _PUSH, _PUSH, _PUSH, Opcode.OP_CHECKJOBPROOFVERIFY,
    *[Opcode.OP_2DROP] * _PROOF_DROPS, _PUSH, Opcode.OP_CHECKSIG, Opcode.OP_ELSE,
)
_TIMED_BRANCH = (_PUSH, Opcode.OP_CHECKLOCKTIMEVERIFY, Opcode.OP_DROP, _PUSH, Opcode.OP_CHECKSIG)
_DELIVER_BRANCH = (Opcode.OP_CHECKJOBDELIVERYVERIFY, *[Opcode.OP_2DROP] * _DELIVERY_DROPS, _PUSH, Opcode.OP_CHECKSIG)
_PAYOUT_SHAPE = (
    *_HEAD, *_PROOF_BRANCH,
    Opcode.OP_IF, *_TIMED_BRANCH, Opcode.OP_ELSE, *_TIMED_BRANCH, Opcode.OP_ENDIF,
    Opcode.OP_ENDIF,
)
_DELIVERED_SHAPE = (*_HEAD, _PUSH, Opcode.OP_DROP, *_PROOF_BRANCH, *_TIMED_BRANCH, Opcode.OP_ENDIF)
_STAKE_SHAPE = (
    *_HEAD, *_PROOF_BRANCH,
    Opcode.OP_IF, *_TIMED_BRANCH,
    Opcode.OP_ELSE, Opcode.OP_IF, *_DELIVER_BRANCH, Opcode.OP_ELSE, *_TIMED_BRANCH, Opcode.OP_ENDIF,
    Opcode.OP_ENDIF, Opcode.OP_ENDIF,
)


def _template_data(ops: Sequence[ScriptOp], shape: tuple[object, ...]) -> list[bytes] | None:
    """The pushed elements if the parsed script `ops` has exactly `shape` (pushes where it says push), else None."""
    if len(ops) != len(shape):
        return None
    data = []
    for op, expected in zip(ops, shape, strict=True):
        if expected == _PUSH:
            if op.data is None:
                return None
            data.append(op.data)
        elif op.opcode != expected:
            return None
    return data


def _decode_time(encoded: bytes) -> int:
    """A t0 or release-time push: a minimal script number of at most 5 bytes (ScriptError, a ValueError, if not)."""
    return decode_script_num(encoded, MAX_LOCKTIME_NUM_SIZE)


def _check_fields(**fields: bytes) -> None:
    sizes = {
        "job_id": JOB_ID_SIZE, "node_pubkey": PUBKEY_SIZE, "client_pubkey": PUBKEY_SIZE,
        "commitment": COMMITMENT_SIZE, "model_id": MODEL_ID_SIZE, "delivery_hash": 32,
    }
    for name, value in fields.items():
        if len(value) != sizes[name]:
            raise ValueError(f"{name} must be {sizes[name]} bytes, got {len(value)}")


def _check_times(*times: int) -> None:
    for value in times:
        if not 0 <= value < 2**32:
            raise ValueError(f"job time {value} must fit an unsigned 32-bit lock time")


# The shortest scripts the builders can produce: every field has a fixed size except the times,
# pushed as minimal script numbers, shortest at 0.
_MIN_ESCROW_SIZE = len(escrow_script(bytes(JOB_ID_SIZE), bytes(PUBKEY_SIZE), 0, 0))
_MIN_JOB_LOCK_SIZE = min(
    len(job_lock_script(JobLock(bytes(JOB_ID_SIZE), 0, bytes(PUBKEY_SIZE), bytes(PUBKEY_SIZE),
                                bytes(COMMITMENT_SIZE), bytes(MODEL_ID_SIZE), 0, **fields)))
    for fields in ({"claim_time": 0, "payout": True}, {"delivery_hash": bytes(32)})
)
