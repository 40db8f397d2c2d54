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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from camelid.chain.errors import TxRejected
from camelid.chain.jobpool import JobRecord
from camelid.compute.game_player import GamePlayer
from camelid.compute.referee import StepClaim
from camelid.core.jobgame import Answer, Challenge, Game, GameStage, LeafReveal, Reveal, match_game, move_data
from camelid.core.jobscripts import PROOF_ITEMS, FraudProof
from camelid.core.opcodes import Opcode
from camelid.core.script import ScriptError, p2pkh_script, parse_script
from camelid.core.transaction import NULL_HASH, OutPoint, Transaction, TxOut
from camelid.crypto.hashes import hash160, sha256d
from camelid.node.jobs.common import RELEASE_FEE, RELEASE_PATIENCE, TIMED_RETRY, JobContext, hex_id
from camelid.node.jobs.contract import Spent, p2pk_script
from camelid.wallet.errors import WalletError

if TYPE_CHECKING:
    from camelid.node.wallet_service import WalletService
    from camelid.wallet.wallet import Wallet

log = logging.getLogger(__name__)

MOVE_FEE = 300_000
"""Fee of a move (up to a 60,000-byte scriptSig): 5 per byte."""
KEY_HOLD = 86_400
"""How long past now a game's keys stay usable after the wallet relocks, renewed while the game lasts."""
POLL = 1.0


class Side(StrEnum):
    ACCUSED = "accused"
    CHALLENGER = "challenger"


class Outcome(StrEnum):
    SLASHED = "slashed"  # the challenger's win is mined
    DEFENDED = "defended"  # the accused's win is mined
    VOID = "void"  # a reorganisation undid move 0 and the chain dropped it: there is no game


@dataclass(frozen=True)
class Position:
    """A GAME output the game passed through and the move data that made it (None for move 0)."""

    game: OutPoint
    game_out: TxOut
    last_move: bytes | None


@dataclass(frozen=True)
class FeeCoin:
    """A coin we funded under a job key for a move's fee or the bond (`p2pk_script(key)`, which the wallet does not
    track): swept back to the wallet whenever no spend of ours is using it, so a move never made loses nothing."""

    coin: Spent
    key: bytes


@dataclass
class GamePlay:
    """One game this node plays: where its GAME output is now and what the game showed so far (journaled)."""

    side: Side
    game: OutPoint  # the GAME output in play
    game_out: TxOut
    challenge: bytes  # Challenge.encode()
    last_move: bytes | None = None  # the data of the move that made `game` (the answer, a reveal), which we move from
    moved: Transaction | None = None  # our spend of `game` (a move or the timeout), once the mempool took it
    conceded: bool = False  # we have no valid move: the other side takes the GAME by timeout
    ended_by: Transaction | None = None  # the spend that ended the game
    outcome: Outcome | None = None  # once `ended_by` is in a block
    earlier: list[Position] = field(default_factory=list)  # the GAMEs before `game`, oldest first: a reorg's way back
    fees: list[FeeCoin] = field(default_factory=list)  # coins we funded for it that may still need sweeping

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

    def advance(self, tx: Transaction, data: bytes) -> None:
        """`tx` moved the game with `data`: its output 0 is the GAME now."""
        self.earlier.append(Position(self.game, self.game_out, self.last_move))
        self.game, self.game_out, self.last_move = OutPoint(tx.hash, 0), tx.outputs[0], data
        self.moved, self.conceded, self.ended_by = None, False, None

    def rewind(self, to: OutPoint) -> bool:
        """Back to the earlier GAME at `to` (a reorganisation undid the moves after it); False if none is there."""
        at = next((i for i, p in enumerate(self.earlier) if p.game == to), None)
        if at is None:
            return False
        position = self.earlier[at]
        del self.earlier[at:]
        self.game, self.game_out, self.last_move = position.game, position.game_out, position.last_move
        self.moved, self.conceded, self.ended_by = None, False, None
        return True

    def positions(self) -> list[Position]:
        """Every GAME of the game so far, the one in play last."""
        return [*self.earlier, Position(self.game, self.game_out, self.last_move)]

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
        self._unsure: set[bytes] = set()  # games a disconnected block touched: is their GAME still there?

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
        prevouts = {txin.prevout for txin in tx.inputs}
        if play.game not in prevouts:
            earlier = next((p.game for p in reversed(play.earlier) if p.game in prevouts), None)
            if earlier is None or not mined:
                return
            play.rewind(earlier)  # a block spends a GAME we had moved past: the chain reorganised under the game
            log.warning("job %s: a block spends an earlier GAME of the game: back to it", hex_id(tx.job_id))
        spent = play.state
        after = match_game(tx.outputs[0].script_pubkey) if tx.outputs else None
        data = _move_data(tx, play.game)
        if after is not None and after.job_id == spent.job_id and data is not None:
            play.advance(tx, data)
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

    def on_disconnected(self, transactions: list[Transaction]) -> None:
        """A block left the chain: each game one of its transactions made or moved looks again at what is left
        (the mempool takes most of them back; one it drops leaves the game at an earlier GAME, or none)."""
        txids = {tx.hash for tx in transactions}
        for job_id in list(self._wakes):
            play = self._plays(job_id)
            if play is None:
                continue
            made = {p.game.txid for p in play.positions()}
            if txids & made or (play.moved is not None and play.moved.hash in txids):
                self._unsure.add(job_id)
                self._wake(job_id)

    def _wake(self, job_id: bytes) -> None:
        wake = self._wakes.get(job_id)
        if wake is not None:
            wake.set()

    async def _run(self, job_id: bytes) -> None:
        wake = self._wakes[job_id]
        try:
            while (play := self._plays(job_id)) is not None and (play.outcome is None or play.fees):
                wake.clear()
                try:
                    if job_id in self._unsure:
                        self._unsure.discard(job_id)
                        await self._find_game(job_id, play)
                    if play.outcome is None:
                        await self._turn(job_id, play)
                    await self._sweep(job_id, play)
                    self._hold_key(job_id, play)
                except WalletError as exc:  # a locked wallet: asked again at the next look
                    log.warning("job %s: game move not made yet: %s", hex_id(job_id), exc.message)
                except ValueError as exc:  # the move cannot be made (the job or the model gone): none is tried again
                    log.warning("job %s: no game move: %s", hex_id(job_id), exc)
                    play.conceded = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), POLL)
        finally:
            self._wakes.pop(job_id, None)

    def _hold_key(self, job_id: bytes, play: GamePlay) -> None:
        """Keep our game key usable while the game lasts, even once the wallet relocks (a timeout or a win needs no
        other key); when it is over, back to the job's own hold (the roles hold Pn and Pc until its refund time
        plus RELEASE_PATIENCE), which may let it go."""
        wallets, record = self._ctx.wallets, self._ctx.pool.get(job_id)
        if wallets is None or record is None:
            return
        job_hold = self._ctx.terms(record.params).refund_time + RELEASE_PATIENCE
        until = max(job_hold, time.time() + KEY_HOLD) if play.outcome is None else job_hold
        with contextlib.suppress(WalletError):  # not held and locked: the next unlock lets us hold it
            wallets.get().hold_job_key(play.our_key, until)

    async def _find_game(self, job_id: bytes, play: GamePlay) -> None:
        """After a disconnected block: go back to the latest GAME of the game that the chain or the mempool still
        holds; with none (move 0 dropped), the game is void."""
        for position in reversed(play.positions()):
            if await self._ctx.holds(position.game, position.game_out):
                if position.game != play.game:
                    play.rewind(position.game)
                    log.warning("job %s: a reorganisation dropped moves: the game is back at %s", hex_id(job_id),
                                play.state.stage.name)
                    self._ctx.pool.on_change(job_id)
                return
        if play.outcome is None:  # a spend of ours or theirs of a GAME that is gone is gone with it
            play.moved = play.ended_by = None
            play.outcome = Outcome.VOID
            log.warning("job %s: a reorganisation dropped the game's opening: no game", hex_id(job_id))
            self._ended(job_id, play)
            self._ctx.pool.on_change(job_id)

    async def _sweep(self, job_id: bytes, play: GamePlay) -> None:
        """Send back to the wallet each fee coin no spend of ours uses; once the game is over, forget those the chain
        has spent."""
        kept = []
        for fee in play.fees:
            if await self._ctx.output_at(fee.coin.outpoint) is None:
                if play.outcome is not None:
                    continue  # spent in a block (by a move or a sweep), or its funding dropped: the wallet has it back
                kept.append(fee)  # a reorganisation may yet undo the move that spent it
                continue
            kept.append(fee)
            in_use = play.moved is not None and any(txin.prevout == fee.coin.outpoint for txin in play.moved.inputs)
            ours_to_move = play.outcome is None and not play.conceded and play.state.mover == play.our_key
            if in_use or not await self._loose(fee) or (ours_to_move and fee.coin.out.value == MOVE_FEE):
                continue  # kept for our move (a displaced move makes it again with this coin)
            wallet = self._ctx.require_wallets().get()
            terms = self._ctx.terms(self._record(job_id).params)
            tx = terms.sweep(fee.coin, fee.key, self._pay_to(wallet), RELEASE_FEE, wallet)
            try:
                await self._ctx.chain.submit_transaction(tx)
                log.info("job %s: unused game coin %s swept back to the wallet", hex_id(job_id), tx.txid())
            except TxRejected as exc:
                log.warning("job %s: sweep of a game coin refused: %s", hex_id(job_id), exc)
        if len(kept) != len(play.fees):
            play.fees = kept
            self._ctx.pool.on_change(job_id)

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
        if game.stage is GameStage.CHALLENGED:
            answer = await asyncio.to_thread(player.answer, challenge)
            if answer is None:
                log.warning("job %s: the reference agrees with the challenge: no answer", hex_id(job_id))
                play.conceded = True
                return
            if not answer.roots:
                tx = terms.game_win(spent, game, answer.encode(), self._pay_to(wallet), MOVE_FEE, wallet)
            else:
                tx = await self._with_fee(play, wallet, lambda coin, key: terms.game_move(
                    spent, game, answer.encode(), game.answered(answer.roots), coin, key, wallet))
        elif game.stage is GameStage.POINTED:
            step = await asyncio.to_thread(player.step, challenge, StepClaim.decode(game.claim))
            tx = terms.game_win(spent, game, step.encode(), self._pay_to(wallet), MOVE_FEE, wallet)
        else:
            found = await asyncio.to_thread(_descent_move, player, challenge, game, play.last_move)
            if found is None:
                log.warning("job %s: the accused's %s is ours: our challenge was wrong", hex_id(job_id),
                            "trace" if game.stage is GameStage.ANSWERED else "reveal")
                play.conceded = True
                return
            data, after = found
            tx = await self._with_fee(play, wallet, lambda coin, key: terms.game_move(
                spent, game, data, after, coin, key, wallet))
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

    async def _with_fee(
        self, play: GamePlay, wallet: Wallet, build: Callable[[Spent, bytes], Transaction]
    ) -> Transaction:
        """`build(coin, key)` with a coin of MOVE_FEE under the job key `key`: a loose one of the play's (a move
        displaced or refused), else one the wallet funds now, recorded in the play before anything can lose it."""
        fee = None
        for loose in play.fees:
            if loose.coin.out.value == MOVE_FEE and await self._loose(loose):
                fee = loose
                break
        if fee is None:
            key = wallet.new_job_key()
            wallet.hold_job_key(key, time.time() + KEY_HOLD)  # the sweep must be able to sign once the wallet relocks
            fee = await fund_coin(self._ctx.require_wallets(), wallet, key, MOVE_FEE)
            play.fees.append(fee)
            self._ctx.pool.on_change(play.state.job_id)
        return build(fee.coin, fee.key)

    async def _loose(self, fee: FeeCoin) -> bool:
        """Whether the fee coin is there and nothing in the mempool spends it."""
        if await self._ctx.output_at(fee.coin.outpoint) is None:
            return False
        return await self._ctx.chain.call(self._ctx.chain.mempool.spender, fee.coin.outpoint) is None

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


async def fund_coin(wallets: WalletService, wallet: Wallet, key: bytes, value: int) -> FeeCoin:
    """A coin of `value` under the job key `key` (`p2pk_script`), which the wallet funds and publishes now.

    Funded by a transaction outside the job (no job id): one carrying J that spends our escrow transaction's change
    would read, to the job pool, as a spend of the escrow (JobPool.settle_block matches the txid)."""
    script = p2pk_script(key)
    created = await wallets.pay(wallet, lambda: wallet.create_script_payment(script, value, NULL_HASH))
    index = next(i for i, out in enumerate(created.tx.outputs) if out.script_pubkey == script)
    return FeeCoin(Spent(OutPoint(created.tx.hash, index), created.tx.outputs[index]), key)


def _descent_move(
    player: GamePlayer, challenge: Challenge, game: Game, last_move: bytes | None
) -> tuple[bytes, Game] | None:
    """Our move of the descent (from move 2 to the element) and the GAME it makes; None where the challenger finds
    nothing that differs. `last_move` is the other side's move that made `game` (the answer, a reveal)."""
    cursor = game.cursor
    if game.stage is GameStage.DESCENDING:
        reveal = player.reveal(challenge, cursor)
        if isinstance(reveal, Reveal):
            return reveal.encode(), game.revealed(sha256d(b"".join(reveal.children)))
        return reveal.encode(), game.revealed(sha256d(reveal.values))
    if last_move is None:
        raise ValueError(f"the game is {game.stage.name} but we did not see the move that made it")
    if game.stage is GameStage.ANSWERED:
        answer = Answer.decode(last_move)
        pointer = player.point(answer)
        if pointer is None:
            return None
        return pointer.encode(), game.descending(pointer.checkpoint, pointer.size, answer.roots[pointer.checkpoint])
    if game.stage is GameStage.REVEALED:
        revealed = Reveal.decode(last_move)
        pick = player.pick(challenge, cursor, revealed)
        return None if pick is None else (pick.encode(), game.picked(pick.child, revealed.children[pick.child]))
    leaf = LeafReveal.decode(last_move)
    element = player.pick_element(challenge, cursor, leaf)
    return None if element is None else (element.encode(), game.pointed(element.offset))


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
