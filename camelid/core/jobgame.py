"""The RASTiC dispute game's output and moves (docs/jobs-design.md, "The RASTiC dispute game").

A client that measures a RASTiC failure does not ask miners to run the model: its fraud-proof spend
moves the STAKE (and the PAYOUT, and a bond) into a GAME output, and the accused and the challenger then
take turns, each move one transaction spending the GAME into the next, until one of them fails to move
in N blocks or the accused's last step holds:

    GAME  <J> <t0> OP_2DROP <state> <n_move> OP_2DROP <Pn> <Pc> OP_2DROP <C> <model_id> OP_2DROP
          OP_IF   OP_CHECKJOBGAMEVERIFY OP_2DROP x GAME_CHUNKS/2 <mover> OP_CHECKSIG
          OP_ELSE <n_move> OP_CHECKSEQUENCEVERIFY OP_DROP <waiter> OP_CHECKSIG
          OP_ENDIF

`state` is one push: u8 stage | G (the challenge's hash) | R (sha256d of the accused's checkpoint
roots, zeros before move 1) | the step claim (zeros before the descent ends) | the descent's cursor (u16
checkpoint i | u64 size S of T_i | u8 level d | u64 index j | h, the hash of node (d, j) of T_i's tree |
the hash of what the accused last revealed; zeros before move 2). The mover is the accused (Pn) in stages
CHALLENGED, DESCENDING and POINTED and the challenger (Pc) in ANSWERED, REVEALED and LEAF_REVEALED; the
waiter is the other one, and takes everything once the mover has let N blocks pass (a version-2 spend with
sequence N, BIP 68/112).

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
    ANSWERED    2, pointer         challenge | header proof | K roots |         the roots hash to R, i < K and S
                                   checkpoint i | its size S                   is T_i's size under the header;
                                                                               output 0 is DESCENDING at
                                                                               the root of T_i
    DESCENDING  reveal (d > 0)     the hashes of node (d, j)'s descendants     as many as there are, and
                                   SPAN levels down (or at level 0)            chunk_root of them is h;
                                                                               output 0 is REVEALED
    DESCENDING  reveal (d = 0)     leaf j's float32 values                     256 of them (the rest of S
                                                                               in the last leaf) hashing to
                                                                               h; output 0 LEAF_REVEALED
    REVEALED    pick               the revealed hashes again | child k         k < their count; output 0 is
                                                                               DESCENDING at that child
    LEAF_REVEALED  pick element    the leaf's values again | offset o          o < their count; output 0 is
                                                                               POINTED at (i, 256 j + o)
    POINTED     3, step            challenge | K roots | step proof            the referee's recompute of the
                                                                               element equals the committed
                                                                               value: the accused takes all

The descent is how the challenger finds the element it disputes: move 1 publishes only the roots, so it
learns which checkpoint is the first to differ from its own trace, not where. Each reveal opens the accused's
tree of that checkpoint SPAN levels down, chained to the committed root; the challenger descends into a
child whose hash differs from its own, down to a leaf whose values differ somewhere, and names that element.
A checkpoint of up to 2^20 leaves takes at most two reveals, one of up to 2^30 three.

A structurally broken output (a token outside the vocabulary, tokens after an end token, more than
max_tokens, fewer without an end token) has no valid answer, so it too costs the stake, at the first
timeout. Every move but a refutation and a step (which end the game) must carry J and put the next GAME,
worth at least this one, in output 0; the chain rules beside the script (camelid.chain.jobrules) bound what
move 0 puts in the GAME and let a transaction move one GAME only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
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
from camelid.crypto.merkle import chunk_root

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
LEAF_VALUES = 256
"""float32 values per leaf of a checkpoint's Merkle tree (camelid.compute.reference.checkpoint_root)."""
SPAN = 10
"""Tree levels one reveal opens: at most 2^SPAN = 1,024 hashes (32 KiB), so two reveals cover 2^20 leaves."""
_CHALLENGE_TAG = b"camelid/game-challenge/v1"
_GAME_DROPS = GAME_CHUNKS // 2


class GameStage(IntEnum):
    """Whose move it is: the accused answers a challenge, reveals where the descent stands and steps on a pointer;
    the challenger names the checkpoint it disputes, picks a revealed child and finally the element."""

    CHALLENGED = 0
    ANSWERED = 1
    POINTED = 2
    DESCENDING = 3
    REVEALED = 4
    LEAF_REVEALED = 5


_CHALLENGER_MOVES = frozenset({GameStage.ANSWERED, GameStage.REVEALED, GameStage.LEAF_REVEALED})
_NO_HASH = bytes(ROOT_SIZE)
_NO_ROOTS = _NO_HASH
_NO_CLAIM = bytes(STEP_CLAIM_SIZE)
_CLAIM = struct.Struct("<HQ")


@dataclass(frozen=True)
class Cursor:
    """Where the descent stands: node (depth, index) of the tree of checkpoint `checkpoint` (`size` values), its
    hash, and the hash of what the accused last revealed under it (zeros until it does)."""

    checkpoint: int = 0
    size: int = 0
    depth: int = 0
    index: int = 0
    node: bytes = _NO_HASH
    revealed: bytes = _NO_HASH

    @property
    def leaves(self) -> int:
        return leaf_count(self.size)

    def span(self) -> tuple[int, int, int]:
        """(level, first index, count) of the node's descendants a reveal opens; count 0 if there is no such node."""
        return span_below(self.leaves, self.depth, self.index)


_NO_CURSOR = Cursor()
_STATE = struct.Struct(f"<B{ROOT_SIZE}s{ROOT_SIZE}s{STEP_CLAIM_SIZE}sHQBQ{ROOT_SIZE}s{ROOT_SIZE}s")


def leaf_count(size: int) -> int:
    """Leaves of the tree of a checkpoint of `size` values."""
    return -(-size // LEAF_VALUES)


def tree_depth(leaves: int) -> int:
    """The root's level in chunk_root's tree over `leaves` leaves: ceil(log2 leaves), 0 for one leaf."""
    return max(leaves - 1, 0).bit_length()


def span_below(leaves: int, depth: int, index: int) -> tuple[int, int, int]:
    """(level, first index, count) of the descendants of node (depth, index) SPAN levels down (or at the leaves)
    in a tree of `leaves` leaves, whose chunk_root is that node's hash; count 0 if there is no such node."""
    level = max(depth - SPAN, 0)
    first = index << (depth - level)
    width = -(-leaves >> level)  # the nodes at that level: ceil(leaves / 2^level)
    return level, first, max(min(1 << (depth - level), width - first), 0)


def leaf_values(size: int, index: int) -> int:
    """The values in leaf `index` of a checkpoint of `size` values: LEAF_VALUES, fewer in the last, 0 past it."""
    return max(min(LEAF_VALUES, size - index * LEAF_VALUES), 0)


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
    claim: bytes = _NO_CLAIM  # the step claim, when the descent ends
    cursor: Cursor = _NO_CURSOR  # the descent, from move 2

    @classmethod
    def opened(cls, lock: JobLock, challenge_hash: bytes, n_move: int) -> Game:
        """The GAME a fraud-proof spend of `lock` must create (move 0)."""
        return cls(
            lock.job_id, lock.t0, lock.node_pubkey, lock.client_pubkey, lock.commitment, lock.model_id, n_move,
            GameStage.CHALLENGED, challenge_hash,
        )

    @property
    def mover(self) -> bytes:
        return self.client_pubkey if self.stage in _CHALLENGER_MOVES else self.node_pubkey

    @property
    def waiter(self) -> bytes:
        return self.node_pubkey if self.stage in _CHALLENGER_MOVES else self.client_pubkey

    def _expect(self, stage: GameStage, what: str) -> None:
        if self.stage is not stage:
            raise ValueError(f"a game is {what} only when {stage.name}, not {self.stage.name}")

    def answered(self, roots: Sequence[bytes]) -> Game:
        """The GAME after move 1 commits to `roots`."""
        self._expect(GameStage.CHALLENGED, "answered")
        return replace(self, stage=GameStage.ANSWERED, roots_hash=roots_hash(roots))

    def descending(self, checkpoint: int, size: int, root: bytes) -> Game:
        """The GAME after move 2 names checkpoint `checkpoint` (`size` values, root `root`): the descent starts at
        the root of its tree."""
        self._expect(GameStage.ANSWERED, "pointed at a checkpoint")
        if size < 1:
            raise ValueError("a checkpoint has at least one value")
        cursor = Cursor(checkpoint, size, tree_depth(leaf_count(size)), 0, root)
        return replace(self, stage=GameStage.DESCENDING, cursor=cursor)

    def revealed(self, digest: bytes) -> Game:
        """The GAME after the accused reveals under the cursor what hashes (sha256d) to `digest`: hashes of
        descendants above the leaves, a leaf's values at them."""
        self._expect(GameStage.DESCENDING, "revealed")
        stage = GameStage.REVEALED if self.cursor.depth else GameStage.LEAF_REVEALED
        return replace(self, stage=stage, cursor=replace(self.cursor, revealed=digest))

    def picked(self, child: int, child_hash: bytes) -> Game:
        """The GAME after the challenger picks revealed descendant number `child`, whose hash is `child_hash`."""
        self._expect(GameStage.REVEALED, "picked")
        level, first, _ = self.cursor.span()
        cursor = replace(self.cursor, depth=level, index=first + child, node=child_hash, revealed=_NO_HASH)
        return replace(self, stage=GameStage.DESCENDING, cursor=cursor)

    def pointed(self, offset: int) -> Game:
        """The GAME after the challenger names value `offset` of the revealed leaf: move 3's claim."""
        self._expect(GameStage.LEAF_REVEALED, "pointed at an element")
        element = self.cursor.index * LEAF_VALUES + offset
        if not 0 <= element < 2**64:
            raise ValueError(f"element {element} does not fit a step claim")
        claim = _CLAIM.pack(self.cursor.checkpoint, element)
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
    if len(game.cursor.node) != ROOT_SIZE or len(game.cursor.revealed) != ROOT_SIZE:
        raise ValueError(f"the cursor's hashes must be {ROOT_SIZE} bytes")
    try:
        state = _STATE.pack(game.stage, game.challenge_hash, game.roots_hash, game.claim, game.cursor.checkpoint,
                            game.cursor.size, game.cursor.depth, game.cursor.index, game.cursor.node,
                            game.cursor.revealed)
    except struct.error as exc:
        raise ValueError(f"the cursor does not fit the GAME's state: {exc}") from None
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
        stage, challenge_hash, roots, claim, *cursor = _STATE.unpack(state)
        game = Game(
            _as_bytes(job_id), _as_int(t0), _as_bytes(node_pubkey), _as_bytes(client_pubkey), _as_bytes(commitment),
            _as_bytes(model_id), _as_int(n_move), GameStage(stage), challenge_hash, roots, claim, Cursor(*cursor),
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
    """Move 2: the challenger names the first checkpoint of the accused's trace that differs from its own (and its
    size, which the referee checks against the header); the roots again, for the consensus to read its root."""

    challenge: Challenge
    header_proof: bytes
    roots: tuple[bytes, ...]
    checkpoint: int
    size: int  # values in that checkpoint

    def encode(self) -> bytes:
        return (self.challenge.encode() + _part(self.header_proof) + _roots(self.roots)
                + _CLAIM.pack(self.checkpoint, self.size))

    @classmethod
    def decode(cls, data: bytes) -> Pointer:
        challenge, at = Challenge.decode_from(data)
        header, at = _take_part(data, at, "the header proof")
        roots, at = _take_roots(data, at)
        if len(data) < at + _CLAIM.size:
            raise ValueError("the move data ends before the checkpoint and its size")
        checkpoint, size = _CLAIM.unpack_from(data, at)
        _done(data, at + _CLAIM.size, "pointer")
        return cls(challenge, header, roots, checkpoint, size)


@dataclass(frozen=True)
class Reveal:
    """The accused opens the cursor's node: the hashes of its descendants SPAN levels down (or at the leaves)."""

    children: tuple[bytes, ...]

    def encode(self) -> bytes:
        return _roots(self.children)

    @classmethod
    def decode(cls, data: bytes) -> Reveal:
        children, at = _take_roots(data, 0)
        _done(data, at, "reveal")
        return cls(children)


@dataclass(frozen=True)
class LeafReveal:
    """The accused opens the cursor's leaf: its float32 values, little-endian, as the checkpoint's tree hashes them."""

    values: bytes

    def encode(self) -> bytes:
        return _part(self.values)

    @classmethod
    def decode(cls, data: bytes) -> LeafReveal:
        values, at = _take_part(data, 0, "the leaf's values")
        _done(data, at, "leaf reveal")
        _whole_values(values)
        return cls(values)


@dataclass(frozen=True)
class Pick:
    """The challenger descends into revealed child number `child` (its hash differs from the challenger's own)."""

    children: tuple[bytes, ...]  # the accused's reveal, again
    child: int

    def encode(self) -> bytes:
        return _roots(self.children) + struct.pack("<H", self.child)

    @classmethod
    def decode(cls, data: bytes) -> Pick:
        children, at = _take_roots(data, 0)
        if len(data) < at + 2:
            raise ValueError("the move data ends before the picked child")
        (child,) = struct.unpack_from("<H", data, at)
        _done(data, at + 2, "pick")
        return cls(children, child)


@dataclass(frozen=True)
class LeafPick:
    """The challenger names value `offset` of the revealed leaf: the element move 3 is about."""

    values: bytes  # the accused's leaf reveal, again
    offset: int

    def encode(self) -> bytes:
        return _part(self.values) + struct.pack("<H", self.offset)

    @classmethod
    def decode(cls, data: bytes) -> LeafPick:
        values, at = _take_part(data, 0, "the leaf's values")
        if len(data) < at + 2:
            raise ValueError("the move data ends before the picked value")
        (offset,) = struct.unpack_from("<H", data, at)
        _done(data, at + 2, "leaf pick")
        _whole_values(values)
        return cls(values, offset)


def _whole_values(values: bytes) -> None:
    if len(values) % 4:
        raise ValueError(f"{len(values)} bytes are not whole float32 values")


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


_Move = Answer | Pointer | Reveal | LeafReveal | Pick | LeafPick | Step


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
        """Move 2: None if the pointer names a checkpoint of the model with that header and gives its size in the
        trace over the challenge."""
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
    else why not. Every move but a refutation and a step must put the next GAME, worth at least this one, in
    output 0; those two end the game, so the accused may take the GAME anywhere."""
    if referee is None:
        return "this node has no game referee: it judges no move"
    leaf = game.stage is GameStage.DESCENDING and game.cursor.depth == 0
    try:
        move = (LeafReveal.decode if leaf else _MOVES[game.stage])(data)
    except (ValueError, struct.error) as exc:
        return f"malformed {game.stage.name} move: {exc}"
    if isinstance(move, Answer | Pointer | Step) and move.challenge.hash() != game.challenge_hash:
        return "the move's challenge is not the one the game opened on"
    try:
        problem, after = _judge(game, move, referee)
        if problem is not None or after is None:
            return problem
        return _next_state_problem(after, job_id, outputs, amount)
    except ValueError as exc:  # a GAME whose cursor no valid move leads to, e.g. one a descent cannot continue from
        return f"no next state after this {game.stage.name} move: {exc}"


def _judge(game: Game, move: _Move, referee: GameReferee) -> tuple[str | None, Game | None]:
    """(why the move is invalid, None) or (None, the GAME it must create; None if it ends the game)."""
    cursor = game.cursor
    if isinstance(move, Answer):
        if not move.roots:
            if struct.pack("<2f", *move.logits) != bytes(8):
                return "a refutation's two logits must be zero", None
            problem = referee.refutation_problem(game.model_id, move)
            return (None if problem is None else f"refutation: {problem}"), None
        return referee.answer_problem(game.model_id, move), game.answered(move.roots)
    if isinstance(move, Pointer):
        if not move.roots or roots_hash(move.roots) != game.roots_hash:
            return "the pointer's roots are not those the accused committed to in move 1", None
        if move.checkpoint >= len(move.roots):
            return f"checkpoint {move.checkpoint} is not one of the {len(move.roots)} committed", None
        problem = referee.pointer_problem(game.model_id, move)
        if problem is not None:
            return problem, None
        return None, game.descending(move.checkpoint, move.size, move.roots[move.checkpoint])
    if isinstance(move, Reveal):
        level, _, count = cursor.span()
        where = f"node ({cursor.depth}, {cursor.index}) of checkpoint {cursor.checkpoint}'s {cursor.leaves}-leaf tree"
        if count == 0:
            return f"the cursor's {where} does not exist", None
        if len(move.children) != count:
            return f"{where} has {count} descendants at level {level}, the reveal {len(move.children)}", None
        if chunk_root(move.children) != cursor.node:
            return f"the revealed hashes do not chain to the hash of {where}", None
        return None, game.revealed(sha256d(b"".join(move.children)))
    if isinstance(move, LeafReveal):
        count = leaf_values(cursor.size, cursor.index)
        where = f"leaf {cursor.index} of checkpoint {cursor.checkpoint}"
        if count == 0:
            return f"the cursor's {where} does not exist ({cursor.size} values)", None
        if len(move.values) != 4 * count:
            return f"{where} has {count} values, the reveal {len(move.values) // 4}", None
        if sha256d(move.values) != cursor.node:
            return f"the revealed values do not hash to {where}", None
        return None, game.revealed(sha256d(move.values))
    if isinstance(move, Pick):
        if sha256d(b"".join(move.children)) != cursor.revealed:
            return "the pick's hashes are not those the accused revealed", None
        if move.child >= len(move.children):
            return f"child {move.child} is out of the {len(move.children)} revealed", None
        return None, game.picked(move.child, move.children[move.child])
    if isinstance(move, LeafPick):
        if sha256d(move.values) != cursor.revealed:
            return "the pick's values are not those the accused revealed", None
        if move.offset >= len(move.values) // 4:
            return f"value {move.offset} is out of the {len(move.values) // 4} revealed", None
        return None, game.pointed(move.offset)
    if not move.roots or roots_hash(move.roots) != game.roots_hash:
        return "the step's roots are not those the accused committed to in move 1", None
    return referee.step_problem(game.model_id, move, game.claim), None


_MOVES: dict[GameStage, Callable[[bytes], _Move]] = {
    GameStage.CHALLENGED: Answer.decode, GameStage.ANSWERED: Pointer.decode, GameStage.DESCENDING: Reveal.decode,
    GameStage.REVEALED: Pick.decode, GameStage.LEAF_REVEALED: LeafPick.decode, GameStage.POINTED: Step.decode,
}


def _next_state_problem(after: Game, job_id: bytes, outputs: Sequence[TxOut], amount: int) -> str | None:
    if job_id != after.job_id:
        return "a move must carry the game's job id"
    if not outputs or outputs[0].script_pubkey != game_script(after):
        return f"output 0 is not the game's next state ({after.stage.name})"
    if outputs[0].value < amount:
        return f"output 0 holds {outputs[0].value}, less than the {amount} the GAME held"
    return None
