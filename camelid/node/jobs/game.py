"""The RASTiC dispute game as this node plays it, on either side (docs/jobs-design.md, "The RASTiC dispute game").

A client whose check of a delivery finds a failure the reference confirms opens a game with move 0 (client.py);
from then on this driver plays each game this node is in, as the challenger (our client key Pc) or the accused
(our node key Pn), from what the mempool and the blocks show of its GAME output:

- when it is our move, it computes it off the event loop (`GamePlayer`: one reference pass, minutes on the
  longest job) and publishes it: moves 1 and 2 put the next GAME in output 0, worth as much, with the fee from a
  coin the wallet funds for it; a refutation or a step that holds takes the GAME to our wallet;
- when the other side has let n_move blocks pass since its GAME was mined, it takes the GAME through the
  timeout branch (a version-2 spend with sequence n_move; the mempool refuses it until BIP 68 allows it);
- it records the outcome once the spend that ends the game is in a block: a challenger's win is the job's
  SLASHED, the accused's "defended".

Each play is journaled with its role's job record, so a restarted node goes on where it stopped; a spend that
moved or ended the game while it was down reaches it with the blocks it catches up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from camelid.chain.errors import TxRejected
from camelid.chain.jobpool import JobRecord
from camelid.compute.game_player import GamePlayer
from camelid.compute.referee import StepClaim
from camelid.core.jobgame import Answer, Challenge, Game, GameStage, Pointer, match_game, move_data
from camelid.core.jobscripts import PROOF_ITEMS, FraudProof
from camelid.core.opcodes import Opcode
from camelid.core.script import ScriptError, p2pkh_script, parse_script
from camelid.core.transaction import NULL_HASH, OutPoint, Transaction, TxOut
from camelid.crypto.hashes import hash160
from camelid.node.jobs.common import RELEASE_FEE, TIMED_RETRY, JobContext, hex_id
from camelid.node.jobs.contract import Spent, p2pk_script
from camelid.wallet.errors import WalletError

if TYPE_CHECKING:
    from camelid.wallet.wallet import Wallet

log = logging.getLogger(__name__)

MOVE_FEE = 300_000
"""Fee of a move (up to a 60,000-byte scriptSig): 5 per byte."""
POLL = 1.0


class Side(StrEnum):
    ACCUSED = "accused"
    CHALLENGER = "challenger"


class Outcome(StrEnum):
    SLASHED = "slashed"  # the challenger's win is mined
    DEFENDED = "defended"  # the accused's win is mined


@dataclass
class GamePlay:
    """One game this node plays: where its GAME output is now and what the game showed so far (journaled)."""

    side: Side
    game: OutPoint  # the GAME output in play
    game_out: TxOut
    challenge: bytes  # Challenge.encode()
    answer: bytes | None = None  # move 1's data, which the challenger points from
    moved: Transaction | None = None  # our spend of `game` (a move or the timeout), once the mempool took it
    conceded: bool = False  # we have no valid move: the other side takes the GAME by timeout
    ended_by: Transaction | None = None  # the spend that ended the game
    outcome: Outcome | None = None  # once `ended_by` is in a block

    @property
    def state(self) -> Game:
        game = match_game(self.game_out.script_pubkey)
        if game is None:
            raise ValueError("a game play's output is not a GAME")
        return game

    @property
    def our_key(self) -> bytes:
        state = self.state
        return state.node_pubkey if self.side is Side.ACCUSED else state.client_pubkey

    def info(self) -> dict[str, object]:
        """What getjob shows of the game."""
        return {
            "side": self.side.value,
            "stage": self.state.stage.name.lower(),
            "game_txid": hex_id(self.game.txid),
            "outcome": None if self.outcome is None else self.outcome.value,
            "ended_by": None if self.ended_by is None else self.ended_by.txid(),
        }


class GameDriver:
    """Plays every game whose GamePlay `plays(job_id)` returns, one task per game."""

    def __init__(
        self,
        ctx: JobContext,
        plays: Callable[[bytes], GamePlay | None],
        join: Callable[[Transaction, Game, Challenge], GamePlay | None],
        ended: Callable[[bytes, GamePlay], None],
    ) -> None:
        """`plays(job_id)`: our play of the job's game, if any; `join(tx, game, challenge)`: a move 0 made against us
        (the play we attached, or None); `ended(job_id, play)`: the game's outcome is mined."""
        self._ctx = ctx
        self._plays = plays
        self._join = join
        self._ended = ended
        self._players: dict[bytes, GamePlayer] = {}
        self._wakes: dict[bytes, asyncio.Event] = {}

    def play(self, job_id: bytes) -> None:
        """Start playing the job's game (after move 0, or after a restart)."""
        if job_id not in self._wakes:
            self._wakes[job_id] = asyncio.Event()
            self._ctx.spawn(self._run(job_id), f"job-game-{hex_id(job_id)[:16]}")

    def on_transaction(self, tx: Transaction, mined: bool) -> None:
        """A transaction the mempool took or a block holds: a move, the end of a game, or its win mined."""
        play = self._plays(tx.job_id)
        if play is None:
            opened = opened_game(tx)
            if opened is not None and self._join(tx, *opened) is not None:
                self._ctx.pool.on_change(tx.job_id)
                self.play(tx.job_id)
            return
        if play.outcome is not None:
            return
        if play.ended_by is not None and tx.hash == play.ended_by.hash:
            if mined:
                self._decide(tx.job_id, play)
            return
        if not any(txin.prevout == play.game for txin in tx.inputs):
            return
        spent = play.state
        after = match_game(tx.outputs[0].script_pubkey) if tx.outputs else None
        data = _move_data(tx, play.game)
        if after is not None and after.job_id == spent.job_id and data is not None:
            if spent.stage is GameStage.CHALLENGED:
                play.answer = data
            play.game, play.game_out, play.moved, play.conceded = OutPoint(tx.hash, 0), tx.outputs[0], None, False
            play.ended_by = None  # a spend of ours this move displaced
            log.info("job %s: the game is %s (%s)", hex_id(tx.job_id), after.stage.name, tx.txid())
        else:
            play.ended_by = tx
            if mined:
                self._decide(tx.job_id, play)
        self._ctx.pool.on_change(tx.job_id)
        self._wake(tx.job_id)

    def _decide(self, job_id: bytes, play: GamePlay) -> None:
        """The spend that ended the game is mined: a move (a refutation or a step that held) is the accused's win,
        the timeout branch the waiter's."""
        assert play.ended_by is not None
        spent = play.state
        by_move = _move_data(play.ended_by, play.game) is not None
        accused_won = by_move or spent.waiter == spent.node_pubkey
        play.outcome = Outcome.DEFENDED if accused_won else Outcome.SLASHED
        log.info("job %s: game over, %s (%s)", hex_id(job_id), play.outcome.value, play.ended_by.txid())
        self._ended(job_id, play)
        self._ctx.pool.on_change(job_id)

    def _wake(self, job_id: bytes) -> None:
        wake = self._wakes.get(job_id)
        if wake is not None:
            wake.set()

    async def _run(self, job_id: bytes) -> None:
        wake = self._wakes[job_id]
        try:
            while (play := self._plays(job_id)) is not None and play.outcome is None:
                wake.clear()
                try:
                    await self._turn(job_id, play)
                except WalletError as exc:  # a locked wallet: asked again at the next look
                    log.warning("job %s: game move not made yet: %s", hex_id(job_id), exc.message)
                except ValueError as exc:  # the move cannot be made (the job or the model gone): none is tried again
                    log.warning("job %s: no game move: %s", hex_id(job_id), exc)
                    play.conceded = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL)
        finally:
            self._wakes.pop(job_id, None)

    async def _turn(self, job_id: bytes, play: GamePlay) -> None:
        """What is due now: follow a spend we missed, our move, a timeout, or nothing."""
        if play.ended_by is not None:
            standing = await self._ctx.chain.call(self._standing, play.ended_by.hash)
            if standing == 2:
                self._decide(job_id, play)
            if standing:
                return
            play.ended_by = None  # displaced by a conflicting spend we have not seen yet
        game = play.state
        if not await self._ctx.holds(play.game, play.game_out):
            return  # spent: the spend's event (mempool or block) moves the play on
        if play.moved is not None:
            if not await self._ctx.chain.call(self._standing, play.moved.hash):
                with contextlib.suppress(TxRejected):  # evicted, or dropped at a restart: publish it again
                    await self._ctx.chain.submit_transaction(play.moved)
            return
        if game.mover == play.our_key and not play.conceded:
            await self._move(job_id, play, game)
        elif game.waiter == play.our_key:
            await self._take_by_timeout(job_id, play, game)

    async def _move(self, job_id: bytes, play: GamePlay, game: Game) -> None:
        player = await self.player(game.model_id)
        if player is None:
            log.warning("job %s: the model is gone: no move in the game", hex_id(job_id))
            play.conceded = True
            return
        challenge, _ = Challenge.decode_from(play.challenge)
        wallets = self._ctx.require_wallets()
        wallet = wallets.get()
        terms = self._ctx.terms(self._record(job_id).params)
        spent = Spent(play.game, play.game_out)
        if game.stage is GameStage.ANSWERED:
            if play.answer is None:
                raise ValueError("the game was answered but we did not see the answer")
            claim = await asyncio.to_thread(player.point, Answer.decode(play.answer))
            if claim is None:
                log.warning("job %s: the accused's trace is ours: our challenge was wrong", hex_id(job_id))
                play.conceded = True
                return
            data = Pointer(challenge, player.header_proof, claim.encode()).encode()
            tx = await self._with_fee(wallet, lambda coin, key: terms.game_move(
                spent, game, data, game.pointed(claim.encode()), coin, key, wallet))
        elif game.stage is GameStage.CHALLENGED:
            answer = await asyncio.to_thread(player.answer, challenge)
            if answer is None:
                log.warning("job %s: the reference agrees with the challenge: no answer", hex_id(job_id))
                play.conceded = True
                return
            if not answer.roots:
                tx = terms.game_win(spent, game, answer.encode(), self._pay_to(wallet), MOVE_FEE, wallet)
            else:
                data = answer.encode()
                tx = await self._with_fee(wallet, lambda coin, key: terms.game_move(
                    spent, game, data, game.answered(answer.roots), coin, key, wallet))
        else:
            step = await asyncio.to_thread(player.step, challenge, StepClaim.decode(game.claim))
            tx = terms.game_win(spent, game, step.encode(), self._pay_to(wallet), MOVE_FEE, wallet)
        if not await self._publish(job_id, play, tx):
            log.warning("job %s: our move was refused; we make no other", hex_id(job_id))
            play.conceded = True

    async def _take_by_timeout(self, job_id: bytes, play: GamePlay, game: Game) -> None:
        if await self._ctx.chain.call(self._ctx.confirmations, play.game.txid) < game.n_move:
            return
        wallet = self._ctx.require_wallets().get()
        terms = self._ctx.terms(self._record(job_id).params)
        tx = terms.game_timeout(Spent(play.game, play.game_out), game, self._pay_to(wallet), RELEASE_FEE, wallet)
        await self._publish(job_id, play, tx, TIMED_RETRY)

    async def _publish(
        self, job_id: bytes, play: GamePlay, tx: Transaction, retry: frozenset[str] = frozenset()
    ) -> bool:
        """Whether the mempool took our spend of the GAME; a refusal in `retry` (not yet allowed) is not logged."""
        try:
            await self._ctx.chain.submit_transaction(tx)
        except TxRejected as exc:
            if exc.reason not in retry:
                log.warning("job %s: game spend %s refused: %s", hex_id(job_id), tx.txid(), exc)
            return False
        play.moved = tx
        self._ctx.pool.on_change(job_id)
        log.info("job %s: game spend %s published (%s)", hex_id(job_id), tx.txid(), play.state.stage.name)
        return True

    async def _with_fee(self, wallet: Wallet, build: Callable[[Spent, bytes], Transaction]) -> Transaction:
        """`build(coin, key)` with a fresh coin of MOVE_FEE under the job key `key`, which the wallet funds now."""
        key = wallet.new_job_key()
        script = p2pk_script(key)
        created = await self._ctx.require_wallets().pay(
            wallet, lambda: wallet.create_script_payment(script, MOVE_FEE, NULL_HASH)  # outside the job: see _challenge
        )
        index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == script)
        return build(Spent(OutPoint(created.tx.hash, index), created.tx.outputs[index]), key)

    def _record(self, job_id: bytes) -> JobRecord:
        record = self._ctx.pool.get(job_id)
        if record is None:
            raise ValueError("the job pool dropped the job")
        return record

    @staticmethod
    def _pay_to(wallet: Wallet) -> bytes:
        return p2pkh_script(hash160(wallet.new_job_key()))

    async def player(self, model_id: bytes) -> GamePlayer | None:
        """The reference pass over our copy of the model (its id is hashed once per model: off the loop)."""
        if model_id not in self._players:
            store = self._ctx.models.store
            if store.get(model_id) is None:
                return None
            self._players[model_id] = await asyncio.to_thread(GamePlayer, store.model_path(model_id))
        return self._players[model_id]

    def _standing(self, txid: bytes) -> int:
        """Chain thread: 2 if `txid` is in a block, 1 if in the mempool, else 0."""
        if self._ctx.confirmations(txid):
            return 2
        return 1 if txid in self._ctx.chain.mempool else 0


def opened_game(tx: Transaction) -> tuple[Game, Challenge] | None:
    """The GAME `tx` opens (output 0, stage CHALLENGED) and its challenge, read from the fraud proof of its move 0
    spend; None if `tx` opens none."""
    game = match_game(tx.outputs[0].script_pubkey) if tx.outputs else None
    if game is None or game.stage is not GameStage.CHALLENGED or tx.job_id != game.job_id:
        return None
    for txin in tx.inputs:
        items = _branch_items(txin.script_sig)
        if items is None or len(items) != PROOF_ITEMS:
            continue
        try:
            challenge = Challenge.of_proof(FraudProof.from_items(items))
        except ValueError:
            continue
        if challenge.hash() == game.challenge_hash:
            return game, challenge
    return None


def _branch_items(script_sig: bytes) -> list[bytes] | None:
    """The pushes between the signature and the final OP_1 of a spend through a move or fraud-proof branch."""
    try:
        ops = parse_script(script_sig)
    except ScriptError:
        return None
    if len(ops) < 2 or ops[-1].opcode != Opcode.OP_1:
        return None
    return [op.data or b"" for op in ops[1:-1]]


def _move_data(tx: Transaction, game: OutPoint) -> bytes | None:
    """The move data of `tx`'s spend of the GAME at `game` through its move branch; None for the timeout branch."""
    for txin in tx.inputs:
        if txin.prevout == game:
            items = _branch_items(txin.script_sig)
            try:
                return None if items is None else move_data(items)
            except ValueError:
                return None
    return None
