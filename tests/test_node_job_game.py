"""The node's side of the dispute game on the tiny gemma3: the transactions its builders make from its players' moves
pass the consensus checks (verify_tx_scripts with the model-free referee, the opening bond rule), a driver reads
every move back from them, and a play survives the journal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
from chain_helpers import make_key
from game_support import MAX_TOKENS, PROMPT, Model, cheating_dispute, honest_dispute
from prompt_support import hidden
from tiny_model import write_tiny_gemma3

from camelid.chain.coins import Coin
from camelid.chain.errors import TxRejected
from camelid.chain.jobrules import check_game_openings
from camelid.chain.recordcodec import decode_record, encode_record
from camelid.chain.validation import verify_tx_scripts
from camelid.compute.game_player import GamePlayer
from camelid.compute.game_referee import ModelFreeReferee
from camelid.compute.referee import StepClaim
from camelid.core.job import JobParams
from camelid.core.jobgame import (
    MIN_GAME_BOND,
    Challenge,
    Game,
    GameRules,
    GameStage,
    LeafPick,
    LeafReveal,
    Pick,
    Pointer,
    Reveal,
    match_game,
)
from camelid.core.jobscripts import FraudProof, commitment_signature_digest, output_commitment
from camelid.core.params import REGTEST
from camelid.core.script import p2pkh_script
from camelid.core.transaction import OutPoint, Transaction, TxIn, TxOut
from camelid.crypto.keys import PrivateKey
from camelid.node.jobs.client import OPEN_FEE, ClientJob
from camelid.node.jobs.common import JobContext
from camelid.node.jobs.contract import JobTerms, Spent, p2pk_script
from camelid.node.jobs.game import (
    MOVE_FEE,
    FeeCoin,
    GameDriver,
    GamePlay,
    Outcome,
    Side,
    _descent_move,
    _move_data,
    opened_game,
)

RULES = GameRules(REGTEST.n_move, ModelFreeReferee())
CLIENT, NODE, FEES = make_key(61), make_key(62), make_key(63)
STAKE = REWARD = 900_000
PAY_TO = p2pkh_script(bytes(20))


class Keys:
    """The JobSigner a wallet is, over keys held here."""

    def sign_job_digest(self, public_key: bytes, digest: bytes) -> bytes:
        key: PrivateKey = next(k for k in (CLIENT, NODE, FEES) if k.public_key.to_bytes() == public_key)
        return key.sign(digest)


@dataclass
class Table:
    """One job's terms and locks, a player holding the model, and the coins the moves spend."""

    model: Model
    player: GamePlayer
    output: tuple[int, ...]
    token: int
    terms: JobTerms
    coins: dict[OutPoint, TxOut]

    def spend(self, tx: Transaction) -> None:
        """Consensus on `tx` (scripts, referee, opening bond); its outputs become spendable."""
        coins = [Coin(self.coins[txin.prevout], 1, False) for txin in tx.inputs]
        verify_tx_scripts(tx, coins, game=RULES)
        check_game_openings(tx, coins, "bad-job-game-open")
        self.coins.update({OutPoint(tx.hash, i): out for i, out in enumerate(tx.outputs)})

    def coin(self, tag: int, out: TxOut) -> Spent:
        outpoint = OutPoint(bytes([tag]) * 32, 0)
        self.coins[outpoint] = out
        return Spent(outpoint, out)

    def fee_coin(self, tag: int, value: int = MOVE_FEE) -> Spent:
        return self.coin(tag, TxOut(value, p2pk_script(FEES.public_key.to_bytes())))

    def open(self) -> tuple[Transaction, Challenge]:
        """Move 0 as JobClient._challenge makes it: STAKE and PAYOUT through the fraud branch, with the bond."""
        terms, node = self.terms, NODE.public_key.to_bytes()
        commitment = output_commitment(self.model.model_id, PROMPT, self.output, MAX_TOKENS, 0, 0.0)
        stake = self.coin(1, TxOut(STAKE, terms.stake_script(node, commitment)))
        payout = self.coin(2, TxOut(REWARD, terms.payout_script(node, commitment)))
        proof = FraudProof(PROMPT, self.output, MAX_TOKENS, 0, 0, 2, NODE.sign(commitment_signature_digest(commitment)),
                           self.token)
        challenge = Challenge.of_proof(proof)
        game = Game.opened(terms.stake_lock(node, commitment), challenge.hash(), RULES.n_move)
        bond = self.fee_coin(3, max(REWARD, MIN_GAME_BOND) + OPEN_FEE)
        tx = terms.open_game([stake, payout], bond, FEES.public_key.to_bytes(), proof, game, OPEN_FEE, Keys())
        self.spend(tx)
        return tx, challenge


def _table(model: Model, player: GamePlayer, output: tuple[int, ...], token: int) -> Table:
    client = CLIENT.public_key.to_bytes()
    params = JobParams(model.model_id, *hidden("The llama"), MAX_TOKENS, 0, 0, 1_000, 600, client, "", 1)
    return Table(model, player, output, token, JobTerms(params, REGTEST.dispute_window), {})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Model, GamePlayer]:
    path = write_tiny_gemma3(tmp_path_factory.mktemp("tiny") / "gemma3.gguf")
    return Model.load(path), GamePlayer(path)


def _game_at(tx: Transaction) -> tuple[Spent, Game]:
    game = match_game(tx.outputs[0].script_pubkey)
    assert game is not None
    return Spent(OutPoint(tx.hash, 0), tx.outputs[0]), game


def test_an_honest_accused_plays_every_move_of_a_false_challenge_and_wins(model: tuple[Model, GamePlayer]) -> None:
    """Move 0 by the builders; the accused's answer (GamePlayer.answer), a pointer anyway, and its step, each a
    transaction the consensus checks pass, each read back by the driver (opened_game, _move_data)."""
    dispute = honest_dispute(model[0])
    table = _table(*model, dispute.output, dispute.token)
    opening, challenge = table.open()
    assert opening_read(opening) == challenge
    spent, game = _game_at(opening)
    assert spent.out.value == STAKE + REWARD + max(REWARD, MIN_GAME_BOND)
    player, terms, keys = table.player, table.terms, Keys()
    answer = player.answer(challenge)
    assert answer is not None and answer.roots
    move1 = terms.game_move(spent, game, answer.encode(), game.answered(answer.roots), table.fee_coin(4),
                            FEES.public_key.to_bytes(), keys)
    table.spend(move1)
    assert _move_data(move1, spent.outpoint) == answer.encode()
    assert player.point(answer) is None  # the honest trace is the challenger's own: it has nothing to point at
    spent, game = _game_at(move1)
    assert game.stage is GameStage.ANSWERED and spent.out.value == opening.outputs[0].value
    # a false challenger that names a checkpoint anyway, and descends into the first child and value each time
    checkpoint = player.names.index("blk.0.q")
    size = player.reference.trace(challenge.tokens, challenge.rows)["blk.0.q"].size
    pointer = Pointer(challenge, player.header_proof, answer.roots, checkpoint, size)
    descending = game.descending(checkpoint, size, answer.roots[checkpoint])
    fee_tag = 5
    data, after = pointer.encode(), descending
    while True:
        move = terms.game_move(spent, game, data, after, table.fee_coin(fee_tag), FEES.public_key.to_bytes(), keys)
        table.spend(move)
        assert _move_data(move, spent.outpoint) == data
        fee_tag += 1
        spent, game = _game_at(move)
        if game.stage is GameStage.POINTED:
            break
        found = _descent_move(player, challenge, game, data)
        if game.stage is GameStage.DESCENDING:
            assert found is not None  # the accused's reveal
            data, after = found
        else:  # the challenger's pick finds nothing that differs: it picks the first anyway
            assert found is None
            if game.stage is GameStage.REVEALED:
                reveal = Reveal.decode(data)
                data, after = Pick(reveal.children, 0).encode(), game.picked(0, reveal.children[0])
            else:
                data, after = LeafPick(LeafReveal.decode(data).values, 0).encode(), game.pointed(0)
    assert StepClaim.decode(game.claim) == StepClaim(checkpoint, 0)
    step = player.step(challenge, StepClaim.decode(game.claim))
    move3 = terms.game_win(spent, game, step.encode(), PAY_TO, MOVE_FEE, keys)
    table.spend(move3)
    assert _move_data(move3, spent.outpoint) == step.encode() and match_game(move3.outputs[0].script_pubkey) is None


def test_the_timeout_is_a_version_2_spend_with_sequence_n_move_by_the_waiter(model: tuple[Model, GamePlayer]) -> None:
    dispute = cheating_dispute(model[0])
    table = _table(*model, dispute.output, dispute.token)
    opening, challenge = table.open()
    assert table.player.answer(challenge) is None  # the cheater has no valid answer: it lets the game time out
    spent, game = _game_at(opening)
    timeout = table.terms.game_timeout(spent, game, PAY_TO, 10_000, Keys())
    assert timeout.version == 2 and [txin.sequence for txin in timeout.inputs] == [RULES.n_move]
    table.spend(timeout)  # the script's CSV holds; the chain's BIP 68 check makes it wait n_move blocks
    assert _move_data(timeout, spent.outpoint) is None


def test_a_refutation_takes_the_game_at_once(model: tuple[Model, GamePlayer]) -> None:
    dispute = honest_dispute(model[0])
    table = _table(*model, dispute.output, dispute.output[2])  # j* = o: a void challenge
    opening, challenge = table.open()
    answer = table.player.answer(challenge)
    assert answer is not None and answer.roots == ()
    spent, game = _game_at(opening)
    table.spend(table.terms.game_win(spent, game, answer.encode(), PAY_TO, MOVE_FEE, Keys()))


def test_a_game_play_survives_the_journal(model: tuple[Model, GamePlayer]) -> None:
    dispute = honest_dispute(model[0])
    opening, challenge = _table(*model, dispute.output, dispute.token).open()
    play = GamePlay(Side.CHALLENGER, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode(), moved=opening)
    fee = FeeCoin(Spent(OutPoint(bytes([9]) * 32, 1), TxOut(MOVE_FEE, p2pk_script(FEES.public_key.to_bytes()))),
                  FEES.public_key.to_bytes())
    play.fees.append(fee)
    play.advance(opening, b"a move's data")  # what a reorganisation goes back to, and the coins to sweep, kept
    assert play.earlier and play.last_move == b"a move's data"
    job = ClientJob(OutPoint(bytes(32), 0), b"\x51", 1, CLIENT.public_key.to_bytes(), game=play)
    assert decode_record(ClientJob, encode_record(job)) == job
    assert play.info()["stage"] == "challenged" and play.our_key == CLIENT.public_key.to_bytes()
    assert play.rewind(OutPoint(opening.hash, 0)) and play.earlier == [] and play.last_move is None


def opening_read(tx: Transaction) -> Challenge:
    """What the accused reads of move 0: the GAME and the challenge from the fraud proof in its scriptSig."""
    found = opened_game(tx)
    assert found is not None and found[0] == match_game(tx.outputs[0].script_pubkey)
    return found[1]



# The driver itself, over a small chain of outputs (no scripts run: the tests above check what consensus says of
# the same builders) and a wallet that signs with the keys held here.


class FakeMempool:
    def __init__(self) -> None:
        self.txs: dict[bytes, Transaction] = {}

    def __contains__(self, txid: object) -> bool:
        return txid in self.txs

    def get(self, txid: bytes) -> SimpleNamespace | None:
        tx = self.txs.get(txid)
        return None if tx is None else SimpleNamespace(tx=tx)

    def spender(self, outpoint: OutPoint) -> bytes | None:
        return next((tx.hash for tx in self.txs.values() if any(i.prevout == outpoint for i in tx.inputs)), None)


class FakeChain:
    """Outputs in blocks (`coins`, with their heights) and a mempool; a block mines the whole mempool."""

    def __init__(self, driver: Callable[[], GameDriver]) -> None:
        self.coins: dict[OutPoint, tuple[TxOut, int]] = {}
        self.mempool = FakeMempool()
        self.height = 100
        self.params = REGTEST
        self.submitted: list[Transaction] = []
        self._driver = driver
        self.refuse: Callable[[Transaction], str | None] = lambda tx: None

    @property
    def chainstate(self) -> SimpleNamespace:
        coin = lambda o: None if o not in self.coins else SimpleNamespace(  # noqa: E731
            tx_out=self.coins[o][0], height=self.coins[o][1])
        return SimpleNamespace(get_coin=coin, tip=SimpleNamespace(height=self.height))

    async def call(self, fn: Callable[..., object], *args: object) -> object:
        return fn(*args)

    def output(self, outpoint: OutPoint) -> TxOut | None:
        if outpoint.txid in self.mempool:
            return self.mempool.txs[outpoint.txid].outputs[outpoint.index]
        return self.coins[outpoint][0] if outpoint in self.coins else None

    async def submit_transaction(self, tx: Transaction) -> None:
        for txin in tx.inputs:
            if self.output(txin.prevout) is None or self.mempool.spender(txin.prevout) is not None:
                raise TxRejected("bad-txns-inputs-missingorspent")
        if (reason := self.refuse(tx)) is not None:
            raise TxRejected(reason)
        self.mempool.txs[tx.hash] = tx
        self.submitted.append(tx)
        self._driver().on_transaction(tx, mined=False)

    def mine(self) -> list[Transaction]:
        self.height += 1
        mined = list(self.mempool.txs.values())
        self.mempool.txs.clear()
        for tx in mined:
            for txin in tx.inputs:
                self.coins.pop(txin.prevout, None)
            self.coins.update({OutPoint(tx.hash, i): (out, self.height) for i, out in enumerate(tx.outputs)})
            self._driver().on_transaction(tx, mined=True)
        return mined

    def drop(self, mined: list[Transaction], spent: dict[OutPoint, TxOut]) -> None:
        """A reorganisation takes the last block away and the mempool does not take its transactions back."""
        self.height -= 1
        for tx in mined:
            for i in range(len(tx.outputs)):
                self.coins.pop(OutPoint(tx.hash, i), None)
        self.coins.update({o: (out, self.height) for o, out in spent.items()})
        self._driver().on_disconnected(mined)


class FakeWallet(Keys):
    def __init__(self) -> None:
        self.held: dict[bytes, float] = {}
        self.funded = 0

    def new_job_key(self) -> bytes:
        return FEES.public_key.to_bytes()

    def hold_job_key(self, public_key: bytes, until: float) -> None:
        self.held[public_key] = until

    def create_script_payment(self, script: bytes, value: int, job_id: bytes) -> SimpleNamespace:
        self.funded += 1
        source = OutPoint(bytes([200, self.funded]) * 16, 0)
        FAKE.chain.coins[source] = (TxOut(value + 1_000, PAY_TO), FAKE.chain.height)
        return SimpleNamespace(tx=Transaction(inputs=(TxIn(source.txid, 0),), outputs=(TxOut(value, script),)))


class FakeWallets:
    def __init__(self) -> None:
        self.wallet = FakeWallet()

    def get(self) -> FakeWallet:
        return self.wallet

    async def pay(self, wallet: FakeWallet, create: Callable[[], SimpleNamespace]) -> SimpleNamespace:
        created = create()
        await FAKE.chain.submit_transaction(created.tx)
        return created


class FakeContext(JobContext):
    """The JobContext the driver reads its chain, pool, wallet and model through (its own lookups, over fakes)."""

    def __init__(self, table: Table, path: Path) -> None:
        self.chain = FakeChain(lambda: self.driver)  # type: ignore[assignment]
        record = SimpleNamespace(params=table.terms.params, job_id=table.terms.job_id)
        self.pool = SimpleNamespace(get=lambda job_id: record, on_change=lambda job_id: None)  # type: ignore[assignment]
        self.wallets = FakeWallets()  # type: ignore[assignment]
        store = SimpleNamespace(get=lambda model_id: True, model_path=lambda model_id: path)
        self.models = SimpleNamespace(store=store)  # type: ignore[assignment]
        self._tasks = set()
        self.plays: dict[bytes, GamePlay] = {}
        self.ended: list[GamePlay] = []
        self.driver = GameDriver(self, self.plays.get, lambda *a: None, lambda job_id, play: self.ended.append(play))


FAKE: FakeContext


async def _until(what: Callable[[], object], seconds: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not what():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _fake(model: tuple[Model, GamePlayer], honest: bool = True) -> tuple[FakeContext, Table, Transaction, Challenge]:
    """A driver over a chain that holds move 0 of a game, mined."""
    global FAKE
    dispute = honest_dispute(model[0]) if honest else cheating_dispute(model[0])
    table = _table(*model, dispute.output, dispute.token)
    opening, challenge = table.open()
    FAKE = FakeContext(table, model[1].path)
    FAKE.chain.coins.update({OutPoint(opening.hash, i): (o, 100) for i, o in enumerate(opening.outputs)})
    return FAKE, table, opening, challenge


def _sweeps(ctx: FakeContext) -> list[Transaction]:
    """What went back to the wallet: spends of a p2pk fee or bond coin alone to a P2PKH output."""
    return [tx for tx in ctx.chain.submitted
            if len(tx.inputs) == 1 and len(tx.outputs) == 1 and match_game(tx.outputs[0].script_pubkey) is None
            and tx.outputs[0].script_pubkey.startswith(b"\x76\xa9")
            and ctx.chain.output(tx.inputs[0].prevout) is not None
            and ctx.chain.output(tx.inputs[0].prevout).script_pubkey == p2pk_script(FEES.public_key.to_bytes())]


def test_a_fee_coin_whose_move_is_refused_is_swept_back_to_the_wallet(model: tuple[Model, GamePlayer]) -> None:
    """The accused funds its move's fee, the mempool refuses the move: the coin does not stay under the job key."""

    async def run() -> None:
        ctx, _, opening, challenge = _fake(model)
        ctx.chain.refuse = lambda tx: "bad-job-game-move" if match_game(tx.outputs[0].script_pubkey) else None
        play = GamePlay(Side.ACCUSED, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode())
        ctx.plays[opening.job_id] = play
        ctx.driver.play(opening.job_id)
        await _until(lambda: _sweeps(ctx))
        assert play.conceded and len(play.fees) == 1
        sweep = _sweeps(ctx)[0]
        assert sweep.inputs[0].prevout == play.fees[0].coin.outpoint
        ctx.chain.mine()
        await asyncio.sleep(1.5)  # a look or two more: the coin is spent, nothing else is sent
        assert ctx.chain.submitted[-1] == sweep
        await ctx.close()

    asyncio.run(run())


def test_a_move_a_reorganisation_drops_is_made_again_and_its_fee_coin_reused(model: tuple[Model, GamePlayer]) -> None:
    """The accused's answer is mined, then its block leaves the chain and the mempool drops it: the driver goes back
    to the GAME the chain still holds and answers again, with the fee coin the dropped move had spent."""

    async def run() -> None:
        ctx, _, opening, challenge = _fake(model)
        play = GamePlay(Side.ACCUSED, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode())
        ctx.plays[opening.job_id] = play
        ctx.driver.play(opening.job_id)
        await _until(lambda: play.state.stage is GameStage.ANSWERED)
        answer = ctx.chain.mempool.txs[play.game.txid]
        spent = {txin.prevout: ctx.chain.output(txin.prevout) for txin in answer.inputs}
        mined = ctx.chain.mine()
        assert answer in mined and play.state.stage is GameStage.ANSWERED
        assert ctx.wallets.wallet.held[NODE.public_key.to_bytes()] > time.time()  # our key, held for the game
        ctx.chain.drop(mined, spent)
        await _until(lambda: play.state.stage is GameStage.ANSWERED and play.game.txid in ctx.chain.mempool)
        again = ctx.chain.mempool.txs[play.game.txid]
        assert again.inputs[0].prevout == OutPoint(opening.hash, 0) and ctx.wallets.wallet.funded == 1
        assert not _sweeps(ctx)
        await ctx.close()

    asyncio.run(run())


def test_an_opening_a_reorganisation_drops_voids_the_game_and_the_bond_goes_back(
    model: tuple[Model, GamePlayer],
) -> None:
    """The client's move 0 leaves the chain and the mempool: no GAME remains, the play ends void (not slashed),
    and the bond coin, unspent again, is swept back to the wallet; the game key is let go."""

    async def run() -> None:
        ctx, table, opening, challenge = _fake(model)
        bond = next(txin.prevout for txin in opening.inputs if txin.prevout.txid == bytes([3]) * 32)
        fee = FeeCoin(Spent(bond, table.coins[bond]), FEES.public_key.to_bytes())
        play = GamePlay(Side.CHALLENGER, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode(),
                        fees=[fee])
        ctx.plays[opening.job_id] = play
        ctx.driver.play(opening.job_id)
        await asyncio.sleep(0.2)
        assert play.outcome is None and not _sweeps(ctx)  # the bond is in the GAME
        spent = {txin.prevout: table.coins[txin.prevout] for txin in opening.inputs}
        ctx.chain.drop([opening], spent)
        await _until(lambda: _sweeps(ctx))
        assert play.outcome is Outcome.VOID and ctx.ended == [play]
        assert _sweeps(ctx)[0].inputs[0].prevout == bond
        await _until(lambda: ctx.wallets.wallet.held[CLIENT.public_key.to_bytes()] <= time.time())
        await ctx.close()

    asyncio.run(run())


def test_a_bond_no_opening_took_is_swept_back(model: tuple[Model, GamePlayer]) -> None:
    """What the client leaves when no move 0 it built was taken: a void play holding the bond coin. The driver sends
    the coin back to the wallet and then lets the play go."""

    async def run() -> None:
        ctx, table, opening, challenge = _fake(model)
        bond = next(txin.prevout for txin in opening.inputs if txin.prevout.txid == bytes([3]) * 32)
        ctx.chain.coins = {bond: (table.coins[bond], 100)}  # move 0 never made it
        fee = FeeCoin(Spent(bond, table.coins[bond]), FEES.public_key.to_bytes())
        play = GamePlay(Side.CHALLENGER, OutPoint(opening.hash, 0), opening.outputs[0], challenge.encode(),
                        outcome=Outcome.VOID, fees=[fee])
        ctx.plays[opening.job_id] = play
        ctx.driver.play(opening.job_id)
        await _until(lambda: _sweeps(ctx))
        assert _sweeps(ctx)[0].inputs[0].prevout == bond
        ctx.chain.mine()
        await _until(lambda: not play.fees)  # spent in a block, the game over: nothing left to watch
        await ctx.close()

    asyncio.run(run())
