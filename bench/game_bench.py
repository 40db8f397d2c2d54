"""What the dispute game costs a validating node: the referee's time per move kind, and each move's scriptSig size.

Run: .venv/bin/python bench/game_bench.py [--model NAME|PATH]   (default: gemma-3-270m Q4_K_M)

An honest game over a prompt of N_PROMPT tokens, the disputed position p = N_BEFORE (so the reference pass runs
over N_PROMPT + N_BEFORE tokens), temperature 0.8: the accused's trace is the reference pass, j* a token the
reference scores below the output's. Each move is judged RUNS times by the model-free referee alone (for move 2
and the descent: move_problem, the whole judgement but the script and signature), and its transaction (real keys)
by verify_tx_scripts, signature checks included (the median of each is printed). Move 2 names the checkpoint with
the most leaves, and the descent goes to its middle value; the widest reveal and pick (1,024 hashes, what a
checkpoint of 2^20 leaves or more opens) are measured on hashes of no trace. Move 3 is measured for every
checkpoint kind of layer 0 and embd, output_norm and logits (ELEMENTS elements each).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
from rastic_common import model_path

from camelid.chain.coins import Coin
from camelid.chain.validation import verify_tx_scripts
from camelid.compute.game_referee import ModelFreeReferee
from camelid.compute.model_id import manifest_of_file
from camelid.compute.model_proof import prove_header, verify_header
from camelid.compute.referee import StepClaim, prove_step
from camelid.compute.reference import ReferenceModel, checkpoint_leaves, checkpoint_root
from camelid.compute.sampling import canonical_gumbel
from camelid.core.jobgame import (
    LEAF_VALUES,
    SPAN,
    Answer,
    Challenge,
    Cursor,
    Game,
    GameRules,
    GameStage,
    LeafPick,
    LeafReveal,
    Pick,
    Pointer,
    Reveal,
    Step,
    game_script,
    move_problem,
    move_script_sig,
    timeout_script_sig,
)
from camelid.core.jobscripts import (
    FraudProof,
    JobLock,
    commitment_signature_digest,
    fraud_proof_script_sig,
    job_lock_script,
    output_commitment,
)
from camelid.core.transaction import SIGHASH_ALL, Transaction, TxIn, TxOut
from camelid.crypto.hashes import sha256, sha256d
from camelid.crypto.keys import PrivateKey
from camelid.crypto.merkle import chunk_level, chunk_root

N_PROMPT, N_BEFORE, N_AFTER = 24, 8, 8
TEMPERATURE_MILLI, SEED = 800, 7
RUNS, ELEMENTS = 7, 3
N_MOVE = 30
CLIENT, NODE = (PrivateKey.from_bytes(sha256(tag), network="regtest") for tag in (b"client", b"node"))
VALUE = 3_000_000


def median_ms(run: Callable[[], object]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def signed(spent: list[TxOut], unlock: Callable[[bytes], bytes], key: PrivateKey, outputs: list[TxOut],
           job_id: bytes, version: int = 1, sequence: int = 0xFFFFFFFF) -> Transaction:
    inputs = [TxIn(bytes([i + 1]) * 32, 0, sequence=sequence) for i in range(len(spent))]
    unsigned = Transaction(version=version, inputs=tuple(inputs), outputs=tuple(outputs), job_id=job_id)
    done = []
    for i, out in enumerate(spent):
        sig = key.sign(unsigned.signature_hash(i, out.script_pubkey, out.value)) + bytes([SIGHASH_ALL])
        done.append(replace(inputs[i], script_sig=unlock(sig)))
    return replace(unsigned, inputs=tuple(done))


def main() -> None:
    path = model_path()
    reference, manifest = ReferenceModel(path), manifest_of_file(path)
    header_proof = prove_header(path, manifest)
    header = verify_header(manifest.id, header_proof)
    ends = set(header.end_tokens)
    rng = np.random.default_rng(0)
    low, high = min(300, header.n_vocab // 2), min(header.n_vocab, 20_000)
    free = [int(t) for t in rng.integers(low, high, N_PROMPT + N_BEFORE + N_AFTER)]
    free = [t for t in free if t not in ends]
    prompt, before, after = free[:N_PROMPT], free[N_PROMPT : N_PROMPT + N_BEFORE], free[N_PROMPT + N_BEFORE :]
    started = time.perf_counter()
    logits = reference.logits(prompt + before, [len(prompt) + len(before) - 1])[0]
    scores = logits + TEMPERATURE_MILLI / 1000 * canonical_gumbel(SEED, N_BEFORE, header.n_vocab)
    chosen, j_star = (int(t) for t in np.argsort(scores)[[-1, -2]])
    output = tuple(before + [chosen] + after)
    max_tokens = len(output)
    commitment = output_commitment(manifest.id, prompt, output, max_tokens, SEED, TEMPERATURE_MILLI / 1000)
    job_id = bytes(range(32))
    lock = JobLock(job_id, 1_000, NODE.public_key.to_bytes(), CLIENT.public_key.to_bytes(), commitment, manifest.id,
                   2_000, 1_500)
    proof = FraudProof(tuple(prompt), output, max_tokens, SEED, TEMPERATURE_MILLI, N_BEFORE,
                       NODE.sign(commitment_signature_digest(commitment)), j_star)
    challenge = Challenge.of_proof(proof)
    trace = reference.trace(list(challenge.tokens), list(challenge.rows))
    names = reference.checkpoint_names()
    roots = tuple(checkpoint_root(trace[name]) for name in names)
    print(f"{path.name}: K = {len(names)}, pass over {len(challenge.tokens)} tokens, "
          f"{time.perf_counter() - started:.1f} s to prepare")
    referee, rules = ModelFreeReferee(), GameRules(N_MOVE, ModelFreeReferee())
    game = Game.opened(lock, challenge.hash(), N_MOVE)
    answer = Answer(challenge, header_proof, roots, tuple(float(v) for v in trace["logits"]))  # type: ignore[arg-type]
    answered = game.answered(roots)
    rows: list[tuple[str, int, float, float]] = []

    def measure(kind: str, tx: Transaction, spent: list[TxOut], judge: Callable[[], object] | None) -> None:
        coins = [Coin(out, 1, False) for out in spent]
        verify_tx_scripts(tx, coins, rules)  # valid, or this raises
        size = max(len(txin.script_sig) for txin in tx.inputs)
        rows.append((kind, size, median_ms(judge) if judge else float("nan"),
                     median_ms(lambda: verify_tx_scripts(tx, coins, rules))))

    locks = [TxOut(VALUE, job_lock_script(lock)), TxOut(VALUE, job_lock_script(replace(lock, payout=True)))]
    measure("0 opening (stake + payout)", signed(locks, lambda s: fraud_proof_script_sig(s, proof), CLIENT,
                                                  [TxOut(3 * VALUE, game_script(game))], job_id), locks, None)
    out = [TxOut(3 * VALUE, game_script(game))]
    assert referee.answer_problem(manifest.id, answer) is None
    measure("1 answer", signed(out, lambda s: move_script_sig(s, answer.encode()), NODE,
                               [TxOut(3 * VALUE, game_script(answered))], job_id),
            out, lambda: referee.answer_problem(manifest.id, answer))
    void = Challenge.of_proof(replace(proof, token=chosen))
    refutation = Answer(void, header_proof, ())
    void_out = [TxOut(3 * VALUE, game_script(Game.opened(lock, void.hash(), N_MOVE)))]
    measure("1 refutation", signed(void_out, lambda s: move_script_sig(s, refutation.encode()), NODE,
                                   [TxOut(3 * VALUE, b"\x51")], job_id),
            void_out, lambda: referee.refutation_problem(manifest.id, refutation))

    def descent_move(kind: str, before: Game, data: bytes, after: Game, key: PrivateKey) -> None:
        spent = [TxOut(3 * VALUE, game_script(before))]
        tx = signed(spent, lambda s: move_script_sig(s, data), key, [TxOut(3 * VALUE, game_script(after))], job_id)
        measure(kind, tx, spent, lambda: move_problem(before, data, job_id, tx.outputs, 3 * VALUE, referee))

    # Move 2 and the descent into the checkpoint with the most leaves, picking its middle leaf and value.
    name = max(names, key=lambda n: trace[n].size)
    pointer = Pointer(challenge, header_proof, roots, names.index(name), trace[name].size)
    game = answered.descending(pointer.checkpoint, pointer.size, roots[pointer.checkpoint])
    descent_move("2 pointer", answered, pointer.encode(), game, CLIENT)
    leaves, middle = checkpoint_leaves(trace[name]), trace[name].size // 2
    print(f"descent into {name}: {trace[name].size} values, {len(leaves)} leaves, depth {game.cursor.depth}")
    while game.cursor.depth:
        level, first, count = game.cursor.span()
        children = tuple(chunk_level(leaves, level)[first : first + count])
        revealed = game.revealed(sha256d(b"".join(children)))
        descent_move(f"reveal {count} hashes", game, Reveal(children).encode(), revealed, NODE)
        child = (middle // LEAF_VALUES >> level) - first
        game = revealed.picked(child, children[child])
        descent_move(f"pick of {count}", revealed, Pick(children, child).encode(), game, CLIENT)
    values = np.ascontiguousarray(trace[name], dtype="<f4").tobytes()[game.cursor.index * 1024 :][:1024]
    revealed = game.revealed(sha256d(values))
    descent_move(f"leaf reveal ({len(values) // 4} values)", game, LeafReveal(values).encode(), revealed, NODE)
    pointed = revealed.pointed(middle % LEAF_VALUES)
    descent_move("leaf pick", revealed, LeafPick(values, middle % LEAF_VALUES).encode(), pointed, CLIENT)
    # The widest reveal and pick (2^SPAN hashes, a checkpoint of 2^20 leaves and more), on hashes of no trace.
    wide = tuple(sha256(i.to_bytes(4, "little")) for i in range(2**SPAN))
    top = replace(game, cursor=Cursor(0, 2**20 * LEAF_VALUES, 20, 0, chunk_root(wide)))
    descent_move(f"reveal {len(wide)} hashes (widest)", top, Reveal(wide).encode(),
                 top.revealed(sha256d(b"".join(wide))), NODE)
    top = top.revealed(sha256d(b"".join(wide)))
    descent_move(f"pick of {len(wide)} (widest)", top, Pick(wide, 7).encode(), top.picked(7, wide[7]), CLIENT)

    step_times: dict[str, list[float]] = {}
    step_sizes: dict[str, list[int]] = {}
    kinds = [n for n in names if not n.startswith("blk.") or n.startswith("blk.0.")]
    for name in kinds:
        for element in sorted({0, trace[name].size - 1, *(int(e) for e in rng.integers(trace[name].size, size=1))}):
            claim = StepClaim(names.index(name), element).encode()
            pointed = replace(answered, stage=GameStage.POINTED, claim=claim)
            step = Step(challenge, roots, prove_step(reference, list(challenge.tokens), list(challenge.rows), trace,
                                                     name, element, manifest).encode())
            assert referee.step_problem(manifest.id, step, claim) is None, name
            spent = [TxOut(3 * VALUE, game_script(pointed))]
            tx = signed(spent, lambda s, data=step.encode(): move_script_sig(s, data), NODE, [TxOut(1, b"\x51")],
                        job_id)
            verify_tx_scripts(tx, [Coin(spent[0], 1, False)], rules)
            step_times.setdefault(name, []).append(
                median_ms(lambda step=step, claim=claim: referee.step_problem(manifest.id, step, claim)))
            step_sizes.setdefault(name, []).append(len(tx.inputs[0].script_sig))
    waited = [TxOut(3 * VALUE, game_script(answered))]
    measure("timeout", signed(waited, timeout_script_sig, NODE, [TxOut(1, b"\x51")], job_id, version=2,
                              sequence=N_MOVE), waited, None)
    print(f"{'move':<30}{'scriptSig bytes':>16}{'referee ms':>12}{'script ms':>11}")
    for kind, size, judge_ms, script_ms in rows:
        print(f"{kind:<30}{size:>16}{judge_ms:>12.2f}{script_ms:>11.2f}")
    medians = {name: statistics.median(times) for name, times in step_times.items()}
    slowest = max(medians, key=medians.__getitem__)
    print(f"{'3 step (median over kinds)':<30}{max(max(s) for s in step_sizes.values()):>16}"
          f"{statistics.median(medians.values()):>12.2f}{'':>11}")
    print(f"3 step by kind: {min(medians.values()):.2f} to {medians[slowest]:.2f} ms ({slowest}); "
          f"scriptSig {min(min(s) for s in step_sizes.values())} to {max(max(s) for s in step_sizes.values())} bytes")


if __name__ == "__main__":
    main()
