"""Every block rule, broken one at a time: the block is refused with Core's reason and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from chain_helpers import (
    REGTEST_NOW,
    Spendable,
    build_block,
    coinbase_spendable,
    make_key,
    mine,
    outputs_of,
    p2pkh_for,
    pay,
    spend,
)

from camelid.chain.chainstate import ChainState
from camelid.chain.errors import BlockRejected
from camelid.chain.template import make_coinbase
from camelid.chain.validation import script_sigops
from camelid.core.block import Block
from camelid.core.consensus import MAX_BLOCK_SIGOPS, MAX_FUTURE_BLOCK_TIME, MAX_MONEY, block_subsidy
from camelid.core.opcodes import Opcode
from camelid.core.params import REGTEST
from camelid.core.script import ScriptError, null_data_script, p2pkh_script_sig, parse_script
from camelid.core.transaction import NULL_HASH, NULL_INDEX, OutPoint, Transaction, TxIn, TxOut

KEY = make_key(1)
OTHER = make_key(2)


class Funded:
    """A regtest chain of 101 blocks whose first two coinbases (heights 1 and 2) are mature at height 102."""

    def __init__(self, path: Path) -> None:
        self.chain = ChainState.open(path, REGTEST)
        self.blocks = mine(self.chain, 101, key=KEY)
        self.coin = coinbase_spendable(self.blocks[0], KEY)
        self.coin2 = coinbase_spendable(self.blocks[1], KEY)

    def block(self, txs: list[Transaction] = (), **overrides: object) -> Block:
        return build_block(self.chain, txs, **overrides)


@pytest.fixture
def funded(tmp_path: Path) -> Funded:
    f = Funded(tmp_path / "chain")
    yield f
    f.chain.close()


def _dummy_tx(*, inputs: list[TxIn] | None = None, outputs: list[TxOut] | None = None) -> Transaction:
    """Structurally fine unless overridden; spends an output nobody has."""
    return Transaction(
        inputs=inputs if inputs is not None else [TxIn(b"\x11" * 32, 0, b"\x00")],
        outputs=outputs if outputs is not None else [TxOut(1, p2pkh_for(KEY))],
    )


def _failing_pow(f: Funded) -> Block:
    block = f.block(solved=False)
    header = block.header
    while header.check_pow(REGTEST.pow_limit):
        header = header.with_nonce(header.nonce + 1)
    return Block(header, block.transactions)


def _mutated_merkle(f: Funded) -> Block:
    a = pay(f.coin, OTHER)
    b = pay(f.coin2, OTHER)
    honest = f.block([a, b])
    return Block(honest.header, (*honest.transactions, b))  # [cb, a, b, b] has the root of [cb, a, b]


def _oversized_block(f: Funded) -> Block:
    big = [_dummy_tx(outputs=[TxOut(0, null_data_script(bytes([n])) + bytes(900_000))]) for n in range(5)]
    return f.block(big)


def _second_coinbase(f: Funded) -> Block:
    return f.block([make_coinbase(102, 7, p2pkh_for(KEY), 1)])


def _long_coinbase_script(f: Funded) -> Block:
    coinbase = make_coinbase(102, 0, p2pkh_for(KEY), 1)
    script_sig = coinbase.inputs[0].script_sig + bytes(101)
    return f.block(coinbase=replace(coinbase, inputs=(replace(coinbase.inputs[0], script_sig=script_sig),)))


def _double_spend_in_block(f: Funded) -> Block:
    return f.block([pay(f.coin, OTHER), pay(f.coin, OTHER, fee=2_000)], fees=3_000)


def _spend_immature(f: Funded) -> Block:
    young = coinbase_spendable(f.blocks[2], KEY)  # height 3, needs height 103
    return f.block([pay(young, OTHER)], fees=1_000)


def _nonfinal(f: Funded) -> Block:
    tx = spend([f.coin], [TxOut(f.coin.value - 1_000, p2pkh_for(OTHER))], lock_time=102, sequence=0)
    return f.block([tx], fees=1_000)


def _too_many_sigops(f: Funded) -> Block:
    heavy = bytes([Opcode.OP_CHECKSIG]) * 10_000
    count = MAX_BLOCK_SIGOPS // 10_000 + 1
    return f.block([_dummy_tx(outputs=[TxOut(0, heavy)] * count)])


def _bad_signature(f: Funded) -> Block:
    honest = pay(f.coin, OTHER)
    wrong_amount = Spendable(f.coin.outpoint, f.coin.value + 1, KEY)  # signs over the wrong amount
    forged = spend([wrong_amount], honest.outputs)
    return f.block([forged], fees=1_000)


CASES: dict[str, Callable[[Funded], Block]] = {
    "high-hash": _failing_pow,
    "bad-diffbits": lambda f: f.block(bits=0x207FFFFE),
    "time-too-old": lambda f: f.block(time=f.chain.median_time_past(f.chain.tip)),
    "time-too-new": lambda f: f.block(time=REGTEST_NOW + MAX_FUTURE_BLOCK_TIME + 1),
    "bad-txnmrklroot": lambda f: f.block(merkle=bytes(32)),
    "bad-txns-duplicate": _mutated_merkle,
    "bad-blk-length": _oversized_block,
    "bad-cb-missing": lambda f: f.block(coinbase=pay(f.coin, KEY)),
    "bad-cb-multiple": _second_coinbase,
    "bad-cb-length": _long_coinbase_script,
    "bad-cb-height": lambda f: f.block(coinbase=make_coinbase(103, 0, p2pkh_for(KEY), 1)),
    "bad-cb-amount": lambda f: f.block(fees=1),
    "bad-txns-vin-empty": lambda f: f.block([_dummy_tx(inputs=[])]),
    "bad-txns-vout-empty": lambda f: f.block([_dummy_tx(outputs=[])]),
    "bad-txns-vout-negative": lambda f: f.block([_dummy_tx(outputs=[TxOut(-1, b"")])]),
    "bad-txns-vout-toolarge": lambda f: f.block([_dummy_tx(outputs=[TxOut(MAX_MONEY + 1, b"")])]),
    "bad-txns-txouttotal-toolarge": lambda f: f.block([_dummy_tx(outputs=[TxOut(MAX_MONEY, b"")] * 2)]),
    "bad-txns-inputs-duplicate": lambda f: f.block([_dummy_tx(inputs=[TxIn(b"\x11" * 32, 0)] * 2)]),
    "bad-txns-prevout-null": lambda f: f.block(
        [_dummy_tx(inputs=[TxIn(b"\x11" * 32, 0), TxIn(NULL_HASH, NULL_INDEX)])]
    ),
    "bad-txns-oversize": lambda f: f.block([_dummy_tx(outputs=[TxOut(0, null_data_script(b"") + bytes(1_000_001))])]),
    "bad-txns-inputs-missingorspent": lambda f: f.block([pay(Spendable(OutPoint(b"\x22" * 32, 0), 10**8, KEY), OTHER)]),
    "bad-txns-premature-spend-of-coinbase": _spend_immature,
    "bad-txns-in-belowout": lambda f: f.block([spend([f.coin], [TxOut(f.coin.value + 1, p2pkh_for(OTHER))])]),
    "bad-txns-nonfinal": _nonfinal,
    "bad-blk-sigops": _too_many_sigops,
    "mandatory-script-verify-flag-failed (NULLFAIL)": _bad_signature,
}


@pytest.mark.parametrize("reason", list(CASES))
def test_invalid_block_is_rejected_with_its_reason(funded: Funded, reason: str) -> None:
    tip, utxo = funded.chain.tip, funded.chain.utxo_set_stats()
    block = CASES[reason](funded)
    with pytest.raises(BlockRejected) as caught:
        funded.chain.process_block(block, now=REGTEST_NOW)
    assert caught.value.reason == reason
    assert funded.chain.tip is tip
    assert funded.chain.utxo_set_stats() == utxo


def test_double_spend_inside_a_block_names_the_missing_input(funded: Funded) -> None:
    with pytest.raises(BlockRejected, match="bad-txns-inputs-missingorspent"):
        funded.chain.process_block(_double_spend_in_block(funded), now=REGTEST_NOW)


def test_spend_of_a_coin_created_earlier_in_the_same_block_is_valid(funded: Funded) -> None:
    first = pay(funded.coin, OTHER)
    second = pay(outputs_of(first, OTHER)[0], KEY)
    result = funded.chain.process_block(funded.block([first, second], fees=2_000), now=REGTEST_NOW)
    assert result.status == "connected"
    assert funded.chain.get_coin(OutPoint(second.hash, 0)) is not None
    assert funded.chain.get_coin(OutPoint(first.hash, 0)) is None


def test_coinbase_may_claim_subsidy_plus_fees_exactly(funded: Funded) -> None:
    tx = pay(funded.coin, OTHER, fee=5_000)
    block = funded.block([tx], fees=5_000)
    assert block.transactions[0].outputs[0].value == block_subsidy(102) + 5_000
    assert funded.chain.process_block(block, now=REGTEST_NOW).status == "connected"


def test_block_with_locktime_reached_is_final(funded: Funded) -> None:
    tx = spend([funded.coin], [TxOut(funded.coin.value - 1_000, p2pkh_for(OTHER))], lock_time=101, sequence=0)
    assert funded.chain.process_block(funded.block([tx], fees=1_000), now=REGTEST_NOW).status == "connected"


def test_child_of_an_invalid_block_is_rejected_as_bad_prevblk(funded: Funded) -> None:
    bad = _bad_signature(funded)
    with pytest.raises(BlockRejected):
        funded.chain.process_block(bad, now=REGTEST_NOW)
    assert funded.chain.get_entry(bad.hash_bytes).status.failed
    child = build_block(funded.chain, parent=bad.hash_bytes)
    with pytest.raises(BlockRejected, match="bad-prevblk"):
        funded.chain.process_block(child, now=REGTEST_NOW)
    with pytest.raises(BlockRejected, match="duplicate-invalid"):
        funded.chain.process_block(bad, now=REGTEST_NOW)


def test_op_return_outputs_never_enter_the_utxo_set(funded: Funded) -> None:
    tx = spend([funded.coin], [TxOut(funded.coin.value - 1_000, null_data_script(b"memo"))])
    funded.chain.process_block(funded.block([tx], fees=1_000), now=REGTEST_NOW)
    assert funded.chain.find_transaction(tx.hash) is not None
    assert funded.chain.get_coin(OutPoint(tx.hash, 0)) is None


def test_genesis_coinbase_is_not_spendable(tmp_path: Path) -> None:
    chain = ChainState.open(tmp_path / "chain", REGTEST)
    genesis_coinbase = REGTEST.genesis.transactions[0]
    assert chain.get_coin(OutPoint(genesis_coinbase.hash, 0)) is None
    assert chain.utxo_set_stats().count == 0
    chain.close()



def _parsed_sigops(script: bytes) -> int:
    """The definition script_sigops shortcuts: CHECKSIG and CHECKSIGVERIFY opcodes, 0 if the script does not parse."""
    try:
        ops = parse_script(script)
    except ScriptError:
        return 0
    return sum(op.opcode in (Opcode.OP_CHECKSIG, Opcode.OP_CHECKSIGVERIFY) for op in ops)


def test_sigop_shortcuts_count_as_the_parse_does() -> None:
    sig = bytes([Opcode.OP_CHECKSIG, Opcode.OP_CHECKSIGVERIFY]) * 36  # signature bytes that look like sigops
    pub = KEY.public_key.to_bytes()
    scripts = [
        b"",
        p2pkh_for(KEY),
        p2pkh_script_sig(sig, pub),
        p2pkh_script_sig(sig, pub) + bytes([Opcode.OP_CHECKSIG]),
        p2pkh_script_sig(sig, pub)[:-1],  # truncated push: does not parse
        b"\x4c" + bytes([len(sig)]) + sig,  # PUSHDATA1 of sigop-looking bytes
        bytes([Opcode.OP_CHECKSIG, Opcode.OP_CHECKSIGVERIFY, Opcode.OP_CHECKSIG]),
        b"\x01\xac\x00\xac",  # OP_0 between pushes is not a direct push of 1..75 bytes
        p2pkh_for(KEY)[:-1] + bytes([Opcode.OP_CHECKSIGVERIFY]),
    ]
    for script in scripts:
        assert script_sigops(script) == _parsed_sigops(script), script.hex()
