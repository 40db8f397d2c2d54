"""The dispute game's hostile parties for functional tests: keys held here, moves built and pushed by hand.

A hostile accused (a HostileComputeNode that answers a challenge with a forged trace) and a hostile challenger
(a HostileClient that challenges an honest output) play the RASTiC dispute game against real camelidd processes.
Each builds its moves with camelid.node.jobs.contract and camelid.core.jobgame (the honest shapes) from data it
chooses, signs them with its own keys, and hands them to the miner's RPC, as a party with its own miner would;
what the nodes under test see is what a real cheater would publish. The model runs here (the reference pass) only
to forge what a cheater would forge.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camelid.compute.game_player import GamePlayer
from camelid.compute.referee import StepClaim, prove_step
from camelid.compute.reference import F32, checkpoint_leaves, checkpoint_root
from camelid.core.jobgame import (
    LEAF_VALUES,
    Answer,
    Challenge,
    Game,
    GameStage,
    LeafPick,
    LeafReveal,
    Pointer,
    Reveal,
    Step,
    match_game,
    span_below,
)
from camelid.core.transaction import OutPoint, Transaction
from camelid.crypto.hashes import sha256d
from camelid.crypto.keys import PrivateKey
from camelid.crypto.merkle import chunk_level
from camelid.node.jobs.contract import JobTerms, Spent, p2pk_script
from camelid.node.jobs.game import MOVE_FEE

from .framework import TestNode, wait_until
from .hostile import KeySigner, fund, pay_to_script
from .jobnet import mine_until

SCANNED_BLOCKS = 20


def spend_of(miner: TestNode, outpoint: OutPoint) -> Transaction | None:
    """The transaction spending `outpoint` in the miner's mempool or its last SCANNED_BLOCKS blocks."""
    txids = list(miner.getrawmempool())
    tip = miner.getblockcount()
    for height in range(tip, max(0, tip - SCANNED_BLOCKS), -1):
        txids += miner.getblock(miner.getblockhash(height), 1)["tx"][1:]
    for txid in txids:
        tx = Transaction.from_bytes(bytes.fromhex(miner.getrawtransaction(txid)))
        if any(txin.prevout == outpoint for txin in tx.inputs):
            return tx
    return None


def next_spend(miner: TestNode, outpoint: OutPoint, timeout: float = 60) -> Transaction:
    """The spend of `outpoint`, once the miner shows one."""
    wait_until(lambda: spend_of(miner, outpoint) is not None, timeout=timeout, what="the spend of a GAME")
    tx = spend_of(miner, outpoint)
    assert tx is not None
    return tx


def next_spend_mining(miner: TestNode, mine_to: str, outpoint: OutPoint) -> Transaction:
    """The spend of `outpoint`, mining now and then meanwhile (a client's payment waits for the dispute window)."""
    mine_until(miner, mine_to, lambda: spend_of(miner, outpoint) is not None, "the spend at the miner")
    tx = spend_of(miner, outpoint)
    assert tx is not None
    return tx


@dataclass
class FeeCoin:
    """A coin under a key of the party's own, funded before the game so that moves mine no extra block."""

    key: PrivateKey
    spent: Spent

    @classmethod
    def fund(cls, miner: TestNode, mine_to: str, job_id: bytes, value: int = MOVE_FEE) -> FeeCoin:
        funder, key = PrivateKey.generate(network="regtest"), PrivateKey.generate(network="regtest")
        tx = pay_to_script(fund(miner, mine_to, funder), funder, p2pk_script(key.public_key.to_bytes()), value, job_id)
        miner.sendrawtransaction(tx.to_bytes().hex())
        return cls(key, Spent(OutPoint(tx.hash, 0), tx.outputs[0]))

    @property
    def public_key(self) -> bytes:
        return self.key.public_key.to_bytes()


@dataclass
class GameAt:
    """A GAME output as the miner shows it."""

    spent: Spent
    game: Game

    @classmethod
    def of(cls, tx: Transaction) -> GameAt:
        game = match_game(tx.outputs[0].script_pubkey)
        assert game is not None, f"{tx.txid()} made no GAME"
        return cls(Spent(OutPoint(tx.hash, 0), tx.outputs[0]), game)


class ForgingAccused:
    """A cheater's side of the game: it answers with the reference trace whose j* logit it lowered until the gap is
    under EPS_SLASH (the cheapest forgery that passes move 1) and, to explain it, ONE element in the middle of an
    early checkpoint changed (not its last: "Still open" 11's guess would miss it). It plays the descent from its
    forged trace, each reveal a valid move, then tries to prove the element the challenger names anyway."""

    FORGED = "blk.0.q"

    def __init__(self, model: Path, terms: JobTerms, node_key: PrivateKey) -> None:
        self.player = GamePlayer(model)
        self.terms, self.node_key = terms, node_key
        self.trace: dict | None = None
        self.element = -1  # the forged element of FORGED

    def answer(self, opened: GameAt, challenge: Challenge, fee: FeeCoin) -> Transaction:
        trace = {name: values.copy() for name, values in self.player.reference.trace(challenge.tokens,
                                                                                      challenge.rows).items()}
        forged = trace[self.FORGED].reshape(-1)
        self.element = forged.size // 2 + 3
        forged[self.element] += F32(0.5)
        trace["logits"][0] = trace["logits"][1] - F32(10)
        self.trace = trace
        roots = self._roots()
        logits = trace["logits"]
        answer = Answer(challenge, self.player.header_proof, roots, (float(logits[0]), float(logits[1])))
        signer = KeySigner(self.node_key, fee.key)
        return self.terms.game_move(
            opened.spent, opened.game, answer.encode(), opened.game.answered(roots), fee.spent, fee.public_key, signer
        )

    def reveal(self, at: GameAt, fee: FeeCoin) -> Transaction:
        """The descent's reveal under the cursor, from the forged trace's tree."""
        assert self.trace is not None and at.game.stage is GameStage.DESCENDING
        cursor = at.game.cursor
        values = np.ascontiguousarray(self.trace[self.player.names[cursor.checkpoint]], dtype="<f4").reshape(-1)
        if cursor.depth:
            leaves = checkpoint_leaves(values)
            level, first, count = span_below(len(leaves), cursor.depth, cursor.index)
            reveal = Reveal(tuple(chunk_level(leaves, level)[first : first + count]))
            data, after = reveal.encode(), at.game.revealed(sha256d(b"".join(reveal.children)))
        else:
            leaf = LeafReveal(values[cursor.index * LEAF_VALUES : (cursor.index + 1) * LEAF_VALUES].tobytes())
            data, after = leaf.encode(), at.game.revealed(sha256d(leaf.values))
        signer = KeySigner(self.node_key, fee.key)
        return self.terms.game_move(at.spent, at.game, data, after, fee.spent, fee.public_key, signer)

    def step(self, pointed: GameAt, challenge: Challenge) -> Transaction:
        """Move 3 over the forged trace: the referee's recompute of the pointed element differs from it."""
        assert self.trace is not None and pointed.game.stage is GameStage.POINTED
        claim = StepClaim.decode(pointed.game.claim)
        proof = prove_step(self.player.reference, challenge.tokens, challenge.rows, self.trace,
                           self.player.names[claim.checkpoint], claim.element, self.player.manifest)
        data = Step(challenge, self._roots(), proof.encode()).encode()
        pay_to = p2pk_script(self.node_key.public_key.to_bytes())
        return self.terms.game_win(pointed.spent, pointed.game, data, pay_to, MOVE_FEE, KeySigner(self.node_key))

    def _roots(self) -> tuple[bytes, ...]:
        assert self.trace is not None
        return tuple(checkpoint_root(self.trace[name]) for name in self.player.names)


class FalseChallenger:
    """A client's false challenge of an honest output: j* the reference's runner-up (it scores below the output's
    token), then a pointer at the last checkpoint (the two logits, one leaf) and its first value, an element the
    honest accused proves."""

    def __init__(self, model: Path, terms: JobTerms, client_key: PrivateKey) -> None:
        self.player = GamePlayer(model)
        self.terms, self.client_key = terms, client_key

    def token(self, prompt: tuple[int, ...], output: tuple[int, ...], position: int) -> int:
        params = self.terms.params
        choice = self.player.choose_token(prompt, output, position, params.seed, params.temperature_milli)
        assert not choice.challengeable  # an honest output: the challenge is false
        return choice.token

    def point(self, answered: GameAt, answer: Answer, fee: FeeCoin) -> Transaction:
        checkpoint = len(self.player.names) - 1
        data = Pointer(answer.challenge, self.player.header_proof, answer.roots, checkpoint, 2).encode()
        after = answered.game.descending(checkpoint, 2, answer.roots[checkpoint])
        signer = KeySigner(self.client_key, fee.key)
        return self.terms.game_move(answered.spent, answered.game, data, after, fee.spent, fee.public_key, signer)

    def pick_first(self, revealed: GameAt, leaf: LeafReveal, fee: FeeCoin) -> Transaction:
        """The revealed leaf's first value, though it is the challenger's own."""
        data = LeafPick(leaf.values, 0).encode()
        signer = KeySigner(self.client_key, fee.key)
        return self.terms.game_move(revealed.spent, revealed.game, data, revealed.game.pointed(0), fee.spent,
                                    fee.public_key, signer)


def blocks_until(miner: TestNode, mine_to: str, done, what: str, most: int, settle: float = 5.0) -> int:  # noqa: ANN001
    """Mine one block at a time, each followed by up to `settle` seconds for the nodes to react, until `done()`;
    the blocks it took (AssertionError past `most`)."""
    for mined in range(1, most + 1):
        miner.generatetoaddress(1, mine_to)
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if done():
                return mined
            time.sleep(0.2)
    raise AssertionError(f"{what}: not within {most} blocks")


def height_of(node: TestNode, txid: str) -> int:
    """The height of the block holding `txid` (the node must have it confirmed)."""
    block = node.getrawtransaction(txid, True)["blockhash"]
    return node.getblockheader(block)["height"]
