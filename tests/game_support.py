"""A RASTiC dispute on the tiny gemma3 model, its moves built as the honest players and the cheaters would make them.

Shared by the script-level tests (test_chain_jobgame.py) and the chain-level ones: the accused's trace is the real
reference pass (camelid.compute.reference), its step the real prover (referee.prove_step), and every transaction is
signed with real keys; nothing here stands in for the thing under test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from chain_helpers import make_key

from camelid.compute.model_id import Manifest, manifest_of_file
from camelid.compute.model_proof import prove_header
from camelid.compute.referee import prove_step
from camelid.compute.reference import ReferenceModel, checkpoint_leaves, checkpoint_root
from camelid.core.jobgame import (
    LEAF_VALUES,
    Answer,
    Challenge,
    Cursor,
    Game,
    GameStage,
    LeafPick,
    LeafReveal,
    Pick,
    Pointer,
    Reveal,
    Step,
    game_script,
)
from camelid.core.jobscripts import (
    FraudProof,
    JobLock,
    commitment_signature_digest,
    job_lock_script,
    output_commitment,
)
from camelid.core.transaction import SIGHASH_ALL, Transaction, TxIn, TxOut
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PrivateKey
from camelid.crypto.merkle import chunk_level

CLIENT, NODE = make_key(52), make_key(53)
JOB_ID = bytes(range(100, 132))
PROMPT = (1, 40, 77, 3, 200, 259)
POSITION = 2
MAX_TOKENS = 4
END_FREE = 70  # a token that is not the tiny model's end token (2), to fill the output


@dataclass(frozen=True)
class Model:
    path: Path
    manifest: Manifest
    reference: ReferenceModel
    header_proof: bytes

    @classmethod
    def load(cls, path: Path) -> Model:
        manifest = manifest_of_file(path)
        return cls(path, manifest, ReferenceModel(path), prove_header(path, manifest))

    @property
    def model_id(self) -> bytes:
        return self.manifest.id

    def logits_at(self, prefix: Sequence[int]) -> np.ndarray:
        """The reference logits predicting the token after `prefix`."""
        return self.reference.logits(list(prefix), [len(prefix) - 1])[0]


@dataclass(frozen=True)
class Dispute:
    """One job's output (prompt, output, job fields), the disputed position and the challenger's token j*."""

    model: Model
    output: tuple[int, ...]
    token: int  # j*
    t0: int = 1_000
    temperature_milli: int = 0
    seed: int = 0
    max_tokens: int = MAX_TOKENS
    prompt: tuple[int, ...] = PROMPT

    @property
    def commitment(self) -> bytes:
        return output_commitment(self.model.model_id, self.prompt, self.output, self.max_tokens, self.seed,
                                 self.temperature_milli / 1000)

    def lock(self, payout: bool = False) -> JobLock:
        return JobLock(JOB_ID, self.t0, NODE.public_key.to_bytes(), CLIENT.public_key.to_bytes(), self.commitment,
                       self.model.model_id, self.t0 + 500, self.t0 + 300, payout=payout)

    def proof(self, signer: PrivateKey = NODE) -> FraudProof:
        signature = signer.sign(commitment_signature_digest(self.commitment))
        return FraudProof(self.prompt, self.output, self.max_tokens, self.seed, self.temperature_milli, POSITION,
                          signature, self.token)

    @property
    def challenge(self) -> Challenge:
        return Challenge.of_proof(self.proof())

    def opened(self, n_move: int) -> Game:
        return Game.opened(self.lock(), self.challenge.hash(), n_move)

    @cached_property
    def trace(self) -> dict[str, np.ndarray]:
        """The true reference trace the accused commits to when honest."""
        return self.model.reference.trace(list(self.challenge.tokens), list(self.challenge.rows))

    def roots(self, trace: dict[str, np.ndarray] | None = None) -> tuple[bytes, ...]:
        trace = trace or self.trace
        return tuple(checkpoint_root(trace[name]) for name in self.model.reference.checkpoint_names())

    def answer(self, trace: dict[str, np.ndarray] | None = None) -> Answer:
        trace = trace or self.trace
        logits = tuple(float(v) for v in trace["logits"])
        return Answer(self.challenge, self.model.header_proof, self.roots(trace), logits)  # type: ignore[arg-type]

    def refutation(self) -> Answer:
        return Answer(self.challenge, self.model.header_proof, ())

    @property
    def names(self) -> list[str]:
        return self.model.reference.checkpoint_names()

    def pointer(self, name: str, trace: dict[str, np.ndarray] | None = None) -> Pointer:
        """Move 2 naming checkpoint `name` of the accused's trace (`trace`, the true one by default)."""
        trace = trace or self.trace
        return Pointer(self.challenge, self.model.header_proof, self.roots(trace), self.names.index(name),
                       trace[name].size)

    def reveal(self, cursor: Cursor, trace: dict[str, np.ndarray] | None = None) -> Reveal | LeafReveal:
        """The accused's opening of the cursor's node in `trace`: its descendants' hashes, or a leaf's values."""
        values = (trace or self.trace)[self.names[cursor.checkpoint]]
        if cursor.depth == 0:
            data = np.ascontiguousarray(values, dtype="<f4").tobytes()
            return LeafReveal(data[cursor.index * 4 * LEAF_VALUES : (cursor.index + 1) * 4 * LEAF_VALUES])
        level, first, count = cursor.span()
        return Reveal(tuple(chunk_level(checkpoint_leaves(values), level)[first : first + count]))

    def pick(self, cursor: Cursor, revealed: Reveal | LeafReveal) -> Pick | LeafPick:
        """The challenger's pick: the first revealed child (or value, by its bits) that differs from the true trace;
        the first of them when none does (a false challenger's)."""
        own = self.reveal(cursor)
        if isinstance(revealed, Reveal):
            assert isinstance(own, Reveal)
            return Pick(revealed.children, next((k for k, (theirs, mine) in enumerate(
                zip(revealed.children, own.children, strict=True)) if theirs != mine), 0))
        assert isinstance(own, LeafReveal)
        differs = np.frombuffer(revealed.values, "<u4") != np.frombuffer(own.values, "<u4")
        return LeafPick(revealed.values, int(next(iter(np.flatnonzero(differs)), 0)))

    def descent(self, game: Game, trace: dict[str, np.ndarray] | None = None) -> list[tuple[Game, bytes, Game]]:
        """The descent from DESCENDING `game` to POINTED, the accused revealing from `trace` and the challenger
        picking where it differs from the true trace: (GAME spent, move data, GAME created) per move."""
        moves = []
        while game.stage is not GameStage.POINTED:
            revealed = self.reveal(game.cursor, trace)
            digest = sha256d(revealed.values if isinstance(revealed, LeafReveal) else b"".join(revealed.children))
            after = game.revealed(digest)
            moves.append((game, revealed.encode(), after))
            pick = self.pick(game.cursor, revealed)
            if isinstance(pick, LeafPick):
                game = after.pointed(pick.offset)
            else:
                game = after.picked(pick.child, pick.children[pick.child])
            moves.append((after, pick.encode(), game))
        return moves

    def forged_trace(self, name: str, element: int) -> dict[str, np.ndarray]:
        """The conceding trace with ONE element of checkpoint `name` forged too: the first root to differ is that
        checkpoint's, and the challenger must descend to find the element."""
        lied = self.conceding_trace()
        forged = lied[name].copy()
        forged.flat[element] = np.nextafter(forged.flat[element], np.float32(np.inf))  # by the least it can
        lied[name] = forged
        return lied

    def step(self, name: str, element: int, trace: dict[str, np.ndarray] | None = None) -> Step:
        trace = trace or self.trace
        proof = prove_step(self.model.reference, list(self.challenge.tokens), list(self.challenge.rows), trace, name,
                           element, self.model.manifest)
        return Step(self.challenge, self.roots(trace), proof.encode())

    def conceding_trace(self) -> dict[str, np.ndarray]:
        """A false trace whose logits row makes the output's token the model's choice: what a cheater must commit."""
        lied = dict(self.trace)
        lied["logits"] = np.array([self.trace["logits"][1], self.trace["logits"][1]], dtype=np.float32)
        return lied


def honest_dispute(model: Model, prompt: tuple[int, ...] = PROMPT) -> Dispute:
    """An honest output (the reference's choice at the disputed position) under a false challenge."""
    logits = model.logits_at(prompt + (50, 60))
    chosen = int(np.argmax(logits))
    runner_up = int(np.argsort(logits)[-2])
    return Dispute(model, (50, 60, chosen, END_FREE), runner_up, prompt=prompt)


def cheating_dispute(model: Model, prompt: tuple[int, ...] = PROMPT) -> Dispute:
    """A tampered output (the reference's least likely token at the disputed position), challenged with the best."""
    logits = model.logits_at(prompt + (50, 60))
    return Dispute(model, (50, 60, int(np.argmin(logits)), END_FREE), int(np.argmax(logits)), prompt=prompt)


# Transactions.


@dataclass(frozen=True)
class Spending:
    """One input: the outpoint, the output it spends, who signs and how the scriptSig is made."""

    txin: TxIn
    out: TxOut
    key: PrivateKey
    unlock: Callable[[bytes], bytes]


def signed(spending: Sequence[Spending], outputs: Sequence[TxOut], job_id: bytes = JOB_ID, version: int = 1,
           lock_time: int = 0) -> Transaction:
    unsigned = Transaction(version=version, inputs=tuple(s.txin for s in spending), outputs=tuple(outputs),
                           lock_time=lock_time, job_id=job_id)
    inputs = []
    for index, s in enumerate(spending):
        digest = unsigned.signature_hash(index, s.out.script_pubkey, s.out.value)
        inputs.append(replace(s.txin, script_sig=s.unlock(s.key.sign(digest) + bytes([SIGHASH_ALL]))))
    return replace(unsigned, inputs=tuple(inputs))


def game_out(game: Game, value: int) -> TxOut:
    return TxOut(value, game_script(game))


def lock_out(lock: JobLock, value: int) -> TxOut:
    return TxOut(value, job_lock_script(lock))
