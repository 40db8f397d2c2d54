"""The RASTiC dispute game's output and moves (docs/jobs-design.md, "The RASTiC dispute game").

A client that measures a RASTiC failure does not ask miners to run the model: its fraud-proof spend
moves the STAKE (and the PAYOUT, and a bond) into a GAME output, and the accused and the challenger then
take turns, each move one transaction spending the GAME into the next, until one of them fails to move
in N blocks or the accused's last step holds:

    GAME  <J> <t0> OP_2DROP <state> <n_move> OP_2DROP <Pn> <Pc> OP_2DROP <C> <model_id> OP_2DROP
          OP_IF   OP_CHECKJOBGAMEVERIFY OP_2DROP x GAME_CHUNKS/2 <mover> OP_CHECKSIG
          OP_ELSE <n_move> OP_CHECKSEQUENCEVERIFY OP_DROP <waiter> OP_CHECKSIG
          OP_ENDIF

`state` is one push: u8 stage | G (the challenge's hash) | R (sha256 of the accused's checkpoint
roots, zeros before move 1) | the step claim (zeros before move 2). The mover is the accused (Pn) in
stages CHALLENGED and POINTED and the challenger (Pc) in stage ANSWERED; the waiter is the other one, and
takes everything once the mover has let N blocks pass (a version-2 spend with sequence N, BIP 68/112).

A move's scriptSig is `<mover_sig> <chunk_1> ... <chunk_GAME_CHUNKS> OP_1`: its data cut into 520-byte
pushes as the fraud proof's tokens are. OP_CHECKJOBGAMEVERIFY reads the data and the GAME being spent
(the script it runs in) and asks the checker, whose referee (`GameReferee`, injected by the node: the
arithmetic lives in camelid.compute, which core must not import) judges it without any model:

    stage       move               data                                        valid when
    CHALLENGED  1, answer          challenge | header proof | K roots | 2 logits  the roots are K, the two
                                                                               logit values open the last
                                                                               root, and their canonical gap
                                                                               is at most EPS_SLASH; output
                                                                               0 is the ANSWERED GAME
    CHALLENGED  1, refutation      challenge | header proof | no roots |       the challenge is void under
                                   2 zero logits                               the proven header (a prompt
                                                                               token or j* outside the
                                                                               vocabulary, j* = o): the
                                                                               accused takes all at once
    ANSWERED    2, pointer         challenge | header proof | step claim       the claim names an element of
                                                                               the trace; output 0 is POINTED
    POINTED     3, step            challenge | K roots | step proof            the referee's recompute of the
                                                                               element equals the committed
                                                                               value: the accused takes all

A structurally broken output (a token outside the vocabulary, tokens after an end token, more than
max_tokens, fewer without an end token) has no valid answer, so it too costs the stake, at the first
timeout. Moves 1 and 2 also need the transaction to carry J and output 0 worth at least the GAME spent;
the chain rules beside the script (camelid.chain.jobrules) bound what move 0 puts in the GAME and let a
transaction move one GAME only.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Protocol

from camelid.core.jobscripts import (
    COMMITMENT_SIZE,
    JOB_ID_SIZE,
    MODEL_ID_SIZE,
    PUBKEY_SIZE,
    TOKEN_SIZE,
    FraudProof,
    JobLock,
    join_chunks,
    split_chunks,
)
from camelid.core.opcodes import Opcode
from camelid.core.script import (
    MAX_LOCKTIME_NUM_SIZE,
    MAX_SCRIPT_ELEMENT_SIZE,
    ScriptError,
    build_script,
    decode_script_num,
    parse_script,
)
from camelid.core.transaction import TxOut
from camelid.crypto.hashes import sha256d

GAME_CHUNKS = 100
"""Data pushes in every move: 100 x 520 = 52,000 bytes, enough for a step over the longest job."""
MAX_MOVE_DATA = GAME_CHUNKS * MAX_SCRIPT_ELEMENT_SIZE
MAX_GAME_SCRIPT_SIG = 60_000
"""The scriptSig size limit for a spend of a GAME output (10,000 for every other script)."""
MIN_GAME_BOND = 100_000
"""The least a challenger adds to the game: B_c = max(R, MIN_GAME_BOND), so a false challenge costs it."""
STEP_CLAIM_SIZE = 10
"""u16 checkpoint index | u64 element (camelid.compute.referee.StepClaim)."""
ROOT_SIZE = 32
_CHALLENGE_TAG = b"camelid/game-challenge/v1"
_GAME_DROPS = GAME_CHUNKS // 2


class GameStage(IntEnum):
    """Whose move it is: the accused answers a challenge and steps on a pointer; the challenger points."""

    CHALLENGED = 0
    ANSWERED = 1
    POINTED = 2


_STATE = struct.Struct(f"<B{ROOT_SIZE}s{ROOT_SIZE}s{STEP_CLAIM_SIZE}s")
_NO_ROOTS = bytes(ROOT_SIZE)
_NO_CLAIM = bytes(STEP_CLAIM_SIZE)


@dataclass(frozen=True)
class Game:
    """A GAME output's fields: the job's lock fields, the move timeout and the state of play."""

    job_id: bytes
    t0: int
    node_pubkey: bytes  # the accused
    client_pubkey: bytes  # the challenger
    commitment: bytes
    model_id: bytes
    n_move: int
    stage: GameStage
    challenge_hash: bytes  # G = Challenge.hash()
    roots_hash: bytes = _NO_ROOTS  # R, from move 1
    claim: bytes = _NO_CLAIM  # the step claim, from move 2

    @classmethod
    def opened(cls, lock: JobLock, challenge_hash: bytes, n_move: int) -> Game:
        """The GAME a fraud-proof spend of `lock` must create (move 0)."""
        return cls(
            lock.job_id, lock.t0, lock.node_pubkey, lock.client_pubkey, lock.commitment, lock.model_id, n_move,
            GameStage.CHALLENGED, challenge_hash,
        )

    @property
    def mover(self) -> bytes:
        return self.client_pubkey if self.stage is GameStage.ANSWERED else self.node_pubkey

    @property
    def waiter(self) -> bytes:
        return self.node_pubkey if self.stage is GameStage.ANSWERED else self.client_pubkey

    def answered(self, roots: Sequence[bytes]) -> Game:
        """The GAME after move 1 commits to `roots`."""
        if self.stage is not GameStage.CHALLENGED:
            raise ValueError(f"a game is answered only when challenged, not {self.stage.name}")
        return replace(self, stage=GameStage.ANSWERED, roots_hash=roots_hash(roots))

    def pointed(self, claim: bytes) -> Game:
        """The GAME after move 2 names the element `claim`."""
        if self.stage is not GameStage.ANSWERED:
            raise ValueError(f"a game is pointed only when answered, not {self.stage.name}")
        if len(claim) != STEP_CLAIM_SIZE:
            raise ValueError(f"a step claim is {STEP_CLAIM_SIZE} bytes, not {len(claim)}")
        return replace(self, stage=GameStage.POINTED, claim=claim)


def roots_hash(roots: Sequence[bytes]) -> bytes:
    """R: what the GAME keeps of the accused's K checkpoint roots."""
    if not roots or any(len(root) != ROOT_SIZE for root in roots):
        raise ValueError(f"checkpoint roots are a non-empty list of {ROOT_SIZE}-byte hashes")
    return sha256d(b"".join(roots))


def game_script(game: Game) -> bytes:
    sizes = {"job_id": (game.job_id, JOB_ID_SIZE), "node_pubkey": (game.node_pubkey, PUBKEY_SIZE),
             "client_pubkey": (game.client_pubkey, PUBKEY_SIZE), "commitment": (game.commitment, COMMITMENT_SIZE),
             "model_id": (game.model_id, MODEL_ID_SIZE), "challenge_hash": (game.challenge_hash, ROOT_SIZE),
             "roots_hash": (game.roots_hash, ROOT_SIZE), "claim": (game.claim, STEP_CLAIM_SIZE)}
    for name, (value, size) in sizes.items():
        if len(value) != size:
            raise ValueError(f"{name} must be {size} bytes, got {len(value)}")
    if not 0 <= game.t0 < 2**32:
        raise ValueError(f"job time {game.t0} must fit an unsigned 32-bit lock time")
    if not 0 < game.n_move < 0xFFFF:
        raise ValueError(f"a move timeout of {game.n_move} blocks is not a relative lock in blocks")
    state = _STATE.pack(game.stage, game.challenge_hash, game.roots_hash, game.claim)
    return build_script(
        game.job_id, game.t0, Opcode.OP_2DROP, state, game.n_move, Opcode.OP_2DROP,
        game.node_pubkey, game.client_pubkey, Opcode.OP_2DROP, game.commitment, game.model_id, Opcode.OP_2DROP,
        Opcode.OP_IF, Opcode.OP_CHECKJOBGAMEVERIFY, *[Opcode.OP_2DROP] * _GAME_DROPS, game.mover, Opcode.OP_CHECKSIG,
        Opcode.OP_ELSE, game.n_move, Opcode.OP_CHECKSEQUENCEVERIFY, Opcode.OP_DROP, game.waiter, Opcode.OP_CHECKSIG,
        Opcode.OP_ENDIF,
    )


_MIN_GAME_SIZE = len(game_script(Game(
    bytes(JOB_ID_SIZE), 0, bytes(PUBKEY_SIZE), bytes(PUBKEY_SIZE), bytes(COMMITMENT_SIZE), bytes(MODEL_ID_SIZE), 1,
    GameStage.CHALLENGED, bytes(ROOT_SIZE),
)))
_FIELD_POSITIONS = (0, 1, 3, 4, 6, 7, 9, 10)  # the pushes before OP_IF: J, t0, state, n_move, Pn, Pc, C, model_id


def match_game(script: bytes) -> Game | None:
    """The fields if `script` is exactly what game_script builds, else None."""
    if len(script) < _MIN_GAME_SIZE:
        return None
    try:
        ops = parse_script(script)
        if len(ops) <= _FIELD_POSITIONS[-1]:
            return None
        fields = [_push_value(ops[i]) for i in _FIELD_POSITIONS]
        job_id, t0, state, n_move, node_pubkey, client_pubkey, commitment, model_id = fields
        if not isinstance(state, bytes) or len(state) != _STATE.size:
            return None
        stage, challenge_hash, roots, claim = _STATE.unpack(state)
        game = Game(
            _as_bytes(job_id), _as_int(t0), _as_bytes(node_pubkey), _as_bytes(client_pubkey), _as_bytes(commitment),
            _as_bytes(model_id), _as_int(n_move), GameStage(stage), challenge_hash, roots, claim,
        )
        return game if game_script(game) == script else None
    except (ValueError, TypeError):  # ScriptError is a ValueError
        return None


def _push_value(op: object) -> bytes | int:
    """A push's bytes, or the number of OP_1..OP_16 (how build_script pushes small numbers)."""
    opcode, data = op.opcode, op.data  # type: ignore[attr-defined]
    if data is not None:
        return data
    if Opcode.OP_1 <= opcode <= Opcode.OP_16:
        return opcode - Opcode.OP_1 + 1
    raise ValueError("not a push")


def _as_bytes(value: bytes | int) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError("expected a data push")
    return value


def _as_int(value: bytes | int) -> int:
    return value if isinstance(value, int) else decode_script_num(value, MAX_LOCKTIME_NUM_SIZE)


# The challenge: the game's public data.

_CHALLENGE_HEADER = struct.Struct("<IIQHII")


@dataclass(frozen=True)
class Challenge:
    """What move 0 opens the game on: the committed job (prompt, output, job fields), the disputed output
    position p and the challenger's token j*, which the reference pass must score above the output's by more
    than EPS_SLASH."""

    prompt_tokens: tuple[int, ...]
    output_tokens: tuple[int, ...]
    max_tokens: int
    seed: int
    temperature_milli: int
    position: int
    token: int  # j*

    @classmethod
    def of_proof(cls, proof: FraudProof) -> Challenge:
        return cls(proof.prompt_tokens, proof.output_tokens, proof.max_tokens, proof.seed,
                   proof.temperature_milli, proof.position, proof.token)

    @property
    def temperature(self) -> float:
        return self.temperature_milli / 1000

    @property
    def tokens(self) -> tuple[int, ...]:
        """The reference pass's input: the prompt and the output before position p."""
        return self.prompt_tokens + self.output_tokens[: self.position]

    @property
    def rows(self) -> tuple[int, int]:
        """The two logit rows the trace ends in: j* and the output's token o at p."""
        return self.token, self.output_tokens[self.position]

    def encode(self) -> bytes:
        tokens = self.prompt_tokens + self.output_tokens
        header = _CHALLENGE_HEADER.pack(len(self.prompt_tokens), self.max_tokens, self.seed, self.temperature_milli,
                                        self.position, self.token)
        return header + struct.pack(f"<I{len(tokens)}I", len(tokens), *tokens)

    @classmethod
    def decode_from(cls, data: bytes, offset: int = 0) -> tuple[Challenge, int]:
        """The challenge encoded at `offset` of `data` and the offset after it; ValueError if malformed."""
        end = offset + _CHALLENGE_HEADER.size + 4
        if len(data) < end:
            raise ValueError("the move data ends inside the challenge header")
        n_prompt, max_tokens, seed, temperature_milli, position, token = _CHALLENGE_HEADER.unpack_from(data, offset)
        (count,) = struct.unpack_from("<I", data, end - 4)
        if len(data) < end + TOKEN_SIZE * count:
            raise ValueError(f"the challenge counts {count} tokens but the move data ends before them")
        tokens = struct.unpack_from(f"<{count}I", data, end)
        if not 0 < n_prompt < count or not 0 <= position < count - n_prompt:
            raise ValueError("the challenge's prompt length or position is outside its tokens")
        challenge = cls(tokens[:n_prompt], tokens[n_prompt:], max_tokens, seed, temperature_milli, position, token)
        return challenge, end + TOKEN_SIZE * count

    def hash(self) -> bytes:
        """G, what the GAME keeps of the challenge; every later move carries the challenge again."""
        return sha256d(_CHALLENGE_TAG + self.encode())


# Moves.


def _part(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def _take_part(data: bytes, offset: int, what: str) -> tuple[bytes, int]:
    if len(data) < offset + 4:
        raise ValueError(f"the move data ends before {what}")
    (size,) = struct.unpack_from("<I", data, offset)
    if len(data) < offset + 4 + size:
        raise ValueError(f"the move data ends inside {what}")
    return data[offset + 4 : offset + 4 + size], offset + 4 + size


def _take_roots(data: bytes, offset: int) -> tuple[tuple[bytes, ...], int]:
    if len(data) < offset + 2:
        raise ValueError("the move data ends before its root count")
    (count,) = struct.unpack_from("<H", data, offset)
    end = offset + 2 + ROOT_SIZE * count
    if len(data) < end:
        raise ValueError(f"the move data counts {count} roots but ends before them")
    return tuple(data[i : i + ROOT_SIZE] for i in range(offset + 2, end, ROOT_SIZE)), end


def _roots(roots: Sequence[bytes]) -> bytes:
    return struct.pack("<H", len(roots)) + b"".join(roots)


def _done(data: bytes, offset: int, what: str) -> None:
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} bytes after the {what}")


@dataclass(frozen=True)
class Answer:
    """Move 1: the accused's K checkpoint roots and the two logits (j*, o) they end in; no roots refutes
    the challenge itself."""

    challenge: Challenge
    header_proof: bytes  # camelid.compute.model_proof.prove_header
    roots: tuple[bytes, ...]
    logits: tuple[float, float] = (0.0, 0.0)  # float32 values of rows j* and o; unused by a refutation

    def encode(self) -> bytes:
        logits = struct.pack("<2f", *self.logits)
        return self.challenge.encode() + _part(self.header_proof) + _roots(self.roots) + logits

    @classmethod
    def decode(cls, data: bytes) -> Answer:
        challenge, at = Challenge.decode_from(data)
        header, at = _take_part(data, at, "the header proof")
        roots, at = _take_roots(data, at)
        if len(data) < at + 8:
            raise ValueError("the move data ends before the two logits")
        logits = struct.unpack_from("<2f", data, at)
        _done(data, at + 8, "answer")
        return cls(challenge, header, roots, logits)


@dataclass(frozen=True)
class Pointer:
    """Move 2: the challenger names the first element of the accused's trace it disputes."""

    challenge: Challenge
    header_proof: bytes
    claim: bytes  # referee.StepClaim.encode()

    def encode(self) -> bytes:
        return self.challenge.encode() + _part(self.header_proof) + _part(self.claim)

    @classmethod
    def decode(cls, data: bytes) -> Pointer:
        challenge, at = Challenge.decode_from(data)
        header, at = _take_part(data, at, "the header proof")
        claim, at = _take_part(data, at, "the step claim")
        _done(data, at, "pointer")
        if len(claim) != STEP_CLAIM_SIZE:
            raise ValueError(f"a step claim is {STEP_CLAIM_SIZE} bytes, not {len(claim)}")
        return cls(challenge, header, claim)


@dataclass(frozen=True)
class Step:
    """Move 3: the accused opens the pointed element and what its recompute reads."""

    challenge: Challenge
    roots: tuple[bytes, ...]
    proof: bytes  # referee.StepProof.encode()

    def encode(self) -> bytes:
        return self.challenge.encode() + _roots(self.roots) + _part(self.proof)

    @classmethod
    def decode(cls, data: bytes) -> Step:
        challenge, at = Challenge.decode_from(data)
        roots, at = _take_roots(data, at)
        proof, at = _take_part(data, at, "the step proof")
        _done(data, at, "step")
        return cls(challenge, roots, proof)


def move_items(data: bytes) -> list[bytes]:
    """The GAME_CHUNKS stack elements carrying a move's data; ValueError if it is over MAX_MOVE_DATA."""
    if len(data) > MAX_MOVE_DATA:
        raise ValueError(f"move data of {len(data)} bytes exceeds the {MAX_MOVE_DATA} a move carries")
    return split_chunks(data, GAME_CHUNKS)


def move_data(items: Sequence[bytes]) -> bytes:
    """The data of move_items; ValueError for anything but its one canonical layout."""
    if len(items) != GAME_CHUNKS:
        raise ValueError(f"a move needs {GAME_CHUNKS} data chunks, got {len(items)}")
    return join_chunks(items, "move data")


def move_script_sig(mover_signature: bytes, data: bytes) -> bytes:
    """scriptSig making a move on a GAME output."""
    return build_script(mover_signature, *move_items(data), Opcode.OP_1)


def timeout_script_sig(waiter_signature: bytes) -> bytes:
    """scriptSig taking a GAME whose mover let n_move blocks pass (a version-2 spend, sequence n_move)."""
    return build_script(waiter_signature, Opcode.OP_0)


def game_move_spend(script_sig: bytes, script_pubkey: bytes) -> Game | None:
    """The GAME an input moves through its move branch (last push OP_1), else None."""
    game = match_game(script_pubkey)
    if game is None:
        return None
    try:
        ops = parse_script(script_sig)
    except ScriptError:
        return None
    return game if ops and ops[-1].opcode == Opcode.OP_1 else None


class GameReferee(Protocol):
    """The arithmetic behind OP_CHECKJOBGAMEVERIFY, model-free and exact (camelid.compute.game_referee).

    Each returns None when the move holds, else the reason it does not.
    """

    def refutation_problem(self, model_id: bytes, answer: Answer) -> str | None:
        """Move 1 without roots: None if the proven header shows the challenge void."""
        ...

    def answer_problem(self, model_id: bytes, answer: Answer) -> str | None:
        """Move 1: None if the output is well formed under the header, the roots are the model's K, the logits
        open the last root and their canonical gap is at most EPS_SLASH."""
        ...

    def pointer_problem(self, model_id: bytes, pointer: Pointer) -> str | None:
        """Move 2: None if the claim names an element of the trace of a model with that header."""
        ...

    def step_problem(self, model_id: bytes, step: Step, claim: bytes) -> str | None:
        """Move 3: None if the referee's recompute of the claimed element equals the accused's committed value."""
        ...



@dataclass(frozen=True)
class GameRules:
    """What judging a game needs beyond the transaction: the chain's move timeout, which move 0's GAME must carry,
    and the referee (None: every move fails closed; a node always passes one)."""

    n_move: int
    referee: GameReferee | None = None


def opening_problem(
    lock: JobLock, proof: FraudProof, job_id: bytes, outputs: Sequence[TxOut], n_move: int
) -> str | None:
    """Move 0: None if the transaction carries the job's id and its output 0 is the GAME this RASTiC proof opens on
    `lock` (what it is worth is a chain rule: jobrules.check_game_openings)."""
    if job_id != lock.job_id:
        return "a fraud proof's spend must carry the job's id"
    expected = game_script(Game.opened(lock, Challenge.of_proof(proof).hash(), n_move))
    if not outputs or outputs[0].script_pubkey != expected:
        return "output 0 is not the GAME this fraud proof opens (same job, keys, commitment, challenge, n_move)"
    return None


def move_problem(
    game: Game, data: bytes, job_id: bytes, outputs: Sequence[TxOut], amount: int, referee: GameReferee | None
) -> str | None:
    """None if `data` is a valid move on `game` (worth `amount`) by a transaction with `job_id` and `outputs`,
    else why not. Moves 1 and 2 must put the next GAME, worth at least this one, in output 0; a refutation and
    a step that holds end the game, so the accused may take the GAME anywhere."""
    if referee is None:
        return "this node has no game referee: it judges no move"
    try:
        move: Answer | Pointer | Step = _MOVES[game.stage].decode(data)
    except (ValueError, struct.error) as exc:
        return f"malformed {game.stage.name} move: {exc}"
    if move.challenge.hash() != game.challenge_hash:
        return "the move's challenge is not the one the game opened on"
    if isinstance(move, Answer):
        if not move.roots:
            if struct.pack("<2f", *move.logits) != bytes(8):
                return "a refutation's two logits must be zero"
            problem = referee.refutation_problem(game.model_id, move)
            return None if problem is None else f"refutation: {problem}"
        problem = referee.answer_problem(game.model_id, move)
        return problem or _next_state_problem(game.answered(move.roots), job_id, outputs, amount)
    if isinstance(move, Pointer):
        problem = referee.pointer_problem(game.model_id, move)
        return problem or _next_state_problem(game.pointed(move.claim), job_id, outputs, amount)
    if not move.roots or roots_hash(move.roots) != game.roots_hash:
        return "the step's roots are not those the accused committed to in move 1"
    return referee.step_problem(game.model_id, move, game.claim)


_MOVES: dict[GameStage, type[Answer] | type[Pointer] | type[Step]] = {
    GameStage.CHALLENGED: Answer, GameStage.ANSWERED: Pointer, GameStage.POINTED: Step,
}


def _next_state_problem(after: Game, job_id: bytes, outputs: Sequence[TxOut], amount: int) -> str | None:
    if job_id != after.job_id:
        return "a move must carry the game's job id"
    if not outputs or outputs[0].script_pubkey != game_script(after):
        return f"output 0 is not the game's next state ({after.stage.name})"
    if outputs[0].value < amount:
        return f"output 0 holds {outputs[0].value}, less than the {amount} the GAME held"
    return None
