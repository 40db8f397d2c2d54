"""Script bytes: parsing, minimal pushes, script numbers, builders and output templates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camelid.core.opcodes import JOB_CONTRACT_OPCODES, UPGRADABLE_NOPS, Opcode
from camelid.core.script import (
    MAX_SCRIPT_SIZE,
    ScriptError,
    ScriptErrorReason,
    ScriptOp,
    build_script,
    cast_to_bool,
    decode_script_num,
    encode_script_num,
    is_minimal_push,
    is_push_only,
    is_unspendable,
    match_p2pkh,
    null_data_script,
    p2pkh_script,
    p2pkh_script_sig,
    parse_script,
    push_data,
    push_int,
)

KEY_HASH = bytes(range(20))

# (value, encoding) pairs from Bitcoin Core's CScriptNum serialisation.
SCRIPT_NUMS = [
    (0, ""),
    (1, "01"),
    (-1, "81"),
    (127, "7f"),
    (-127, "ff"),
    (128, "8000"),
    (-128, "8080"),
    (255, "ff00"),
    (256, "0001"),
    (-255, "ff80"),
    (32767, "ff7f"),
    (-32768, "008080"),
    (2**31 - 1, "ffffff7f"),
    (-(2**31 - 1), "ffffffff"),
    (2**31, "0000008000"),
    (2**32 - 1, "ffffffff00"),
]


def test_opcode_numbers_match_bitcoin():
    assert Opcode.OP_FALSE == Opcode.OP_0 == 0
    assert Opcode.OP_TRUE == Opcode.OP_1 == 0x51
    assert Opcode.OP_16 == 0x60
    assert Opcode.OP_CHECKSIG == 0xAC
    assert Opcode.OP_CHECKLOCKTIMEVERIFY == Opcode.OP_NOP2 == 0xB1
    assert Opcode.OP_CHECKSEQUENCEVERIFY == Opcode.OP_NOP3 == 0xB2
    assert UPGRADABLE_NOPS.isdisjoint({Opcode.OP_CHECKLOCKTIMEVERIFY, Opcode.OP_CHECKSEQUENCEVERIFY})


def test_job_contract_opcodes_are_the_nops_after_csv_and_four_have_meaning():
    assert sorted(JOB_CONTRACT_OPCODES) == list(range(0xB3, 0xBA))
    assert Opcode.OP_CHECKJOBPROOFVERIFY == Opcode.OP_NOP4 == 0xB3
    assert Opcode.OP_CHECKJOBESCROWVERIFY == Opcode.OP_NOP5 == 0xB4
    assert Opcode.OP_CHECKJOBGAMEVERIFY == Opcode.OP_NOP6 == 0xB5  # 0xb6 stays free
    assert Opcode.OP_CHECKJOBDELIVERYVERIFY == Opcode.OP_NOP8 == 0xB7
    assert sorted(JOB_CONTRACT_OPCODES - UPGRADABLE_NOPS) == [0xB3, 0xB4, 0xB5, 0xB7]
    assert sorted(JOB_CONTRACT_OPCODES & UPGRADABLE_NOPS) == [0xB6, 0xB8, 0xB9]


@pytest.mark.parametrize(
    ("script", "ops"),
    [
        (b"", []),
        (b"\x00", [ScriptOp(0, b"")]),
        (b"\x02ab\x76", [ScriptOp(2, b"ab"), ScriptOp(Opcode.OP_DUP, None)]),
        (b"\x4c\x03abc", [ScriptOp(Opcode.OP_PUSHDATA1, b"abc")]),
        (b"\x4d\x02\x00ab", [ScriptOp(Opcode.OP_PUSHDATA2, b"ab")]),
        (b"\x4e\x01\x00\x00\x00a", [ScriptOp(Opcode.OP_PUSHDATA4, b"a")]),
        (b"\x51\xff", [ScriptOp(Opcode.OP_1, None), ScriptOp(0xFF, None)]),
    ],
)
def test_parse_script(script, ops):
    assert parse_script(script) == ops


@pytest.mark.parametrize(
    "script",
    [
        b"\x01",
        b"\x4bab",
        b"\x4c",
        b"\x4c\x02a",
        b"\x4d\x01",
        b"\x4d\x00\x01",
        b"\x4e\x00\x00\x00",
        b"\x4e\x05\x00\x00\x00",
    ],
)
def test_parse_rejects_truncated_pushes(script):
    with pytest.raises(ScriptError) as caught:
        parse_script(script)
    assert caught.value.reason == ScriptErrorReason.TRUNCATED_PUSHDATA
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        (b"", "00"),
        (b"\x01", "51"),
        (b"\x10", "60"),
        (b"\x81", "4f"),
        (b"\x00", "0100"),
        (b"\x11", "0111"),
        (b"\xab" * 75, "4b" + "ab" * 75),
        (b"\xab" * 76, "4c4c" + "ab" * 76),
        (b"\xab" * 255, "4cff" + "ab" * 255),
        (b"\xab" * 256, "4d0001" + "ab" * 256),
        (b"\xab" * 65536, "4e00000100" + "ab" * 65536),
    ],
)
def test_push_data_uses_the_minimal_encoding(data, encoded):
    assert push_data(data).hex() == encoded


@given(st.binary(max_size=300))
def test_push_data_round_trips_and_is_minimal(data):
    [op] = parse_script(push_data(data))
    assert is_minimal_push(op.opcode, data)
    if op.data is not None:
        assert op.data == data


@pytest.mark.parametrize(
    ("opcode", "data"),
    [
        (1, b"\x05"),
        (Opcode.OP_PUSHDATA1, b"abc"),
        (Opcode.OP_PUSHDATA2, b"\x00" * 200),
        (Opcode.OP_PUSHDATA4, b"\x00" * 300),
        (0, b"a"),
    ],
)
def test_longer_encodings_are_not_minimal(opcode, data):
    assert not is_minimal_push(opcode, data)


@pytest.mark.parametrize(("value", "encoded"), SCRIPT_NUMS)
def test_script_num_encoding_matches_bitcoin(value, encoded):
    assert encode_script_num(value).hex() == encoded
    assert decode_script_num(bytes.fromhex(encoded), max_size=5) == value


@given(st.integers(min_value=-(2**31 - 1), max_value=2**31 - 1))
def test_four_byte_numbers_round_trip(value):
    assert decode_script_num(encode_script_num(value)) == value


@pytest.mark.parametrize("encoded", ["0000008000", "ffffffff00"])
def test_decode_rejects_numbers_longer_than_max_size(encoded):
    with pytest.raises(ScriptError) as caught:
        decode_script_num(bytes.fromhex(encoded))
    assert caught.value.reason == ScriptErrorReason.SCRIPTNUM_OVERFLOW


@pytest.mark.parametrize("encoded", ["00", "80", "0100", "0180", "ff0000", "7f80"])
def test_decode_rejects_non_minimal_numbers(encoded):
    with pytest.raises(ScriptError) as caught:
        decode_script_num(bytes.fromhex(encoded), max_size=5)
    assert caught.value.reason == ScriptErrorReason.SCRIPTNUM_MINIMAL


@pytest.mark.parametrize(
    ("element", "truth"),
    [
        (b"", False),
        (b"\x00", False),
        (b"\x00\x00", False),
        (b"\x80", False),
        (b"\x00\x80", False),
        (b"\x01", True),
        (b"\x80\x00", True),
        (b"\x00\x01", True),
        (b"\x81", True),
        (b"\x00\x80\x00", True),
    ],
)
def test_cast_to_bool(element, truth):
    assert cast_to_bool(element) is truth


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(-1, "4f"), (0, "00"), (1, "51"), (16, "60"), (17, "0111"), (-2, "0182"), (1000, "02e803")],
)
def test_push_int_uses_small_integer_opcodes(value, encoded):
    assert push_int(value).hex() == encoded


def test_build_script_mixes_opcodes_data_and_numbers():
    assert build_script(Opcode.OP_DUP, b"ab", 5, -1, 300) == bytes.fromhex("7602616255" + "4f" + "022c01")


def test_build_script_rejects_other_types():
    with pytest.raises(TypeError, match="str"):
        build_script("OP_DUP")


def test_is_push_only():
    assert is_push_only(build_script(b"sig", b"key", Opcode.OP_1NEGATE, Opcode.OP_16, Opcode.OP_0))
    assert not is_push_only(build_script(b"sig", Opcode.OP_NOP))
    assert not is_push_only(bytes([0x50]))  # Bitcoin's OP_RESERVED is undefined here, not a push


def test_p2pkh_script_layout():
    script = p2pkh_script(KEY_HASH)
    assert script == bytes.fromhex("76a914") + KEY_HASH + bytes.fromhex("88ac")
    assert match_p2pkh(script) == KEY_HASH


def test_p2pkh_script_rejects_wrong_hash_length():
    with pytest.raises(ValueError, match="20-byte"):
        p2pkh_script(KEY_HASH[:19])


@pytest.mark.parametrize(
    "script",
    [
        b"",
        bytes.fromhex("76a914") + KEY_HASH + bytes.fromhex("88"),
        bytes.fromhex("76a914") + KEY_HASH + bytes.fromhex("88ac61"),
        bytes.fromhex("76a913") + KEY_HASH[:19] + bytes.fromhex("88ac"),
        bytes.fromhex("76a814") + KEY_HASH + bytes.fromhex("88ac"),
        bytes.fromhex("76a914") + KEY_HASH + bytes.fromhex("87ac"),
    ],
)
def test_match_p2pkh_rejects_near_misses(script):
    assert match_p2pkh(script) is None


def test_p2pkh_script_sig_pushes_signature_then_key():
    sig, pubkey = b"\x30" * 71, b"\x02" * 33
    assert parse_script(p2pkh_script_sig(sig, pubkey)) == [ScriptOp(71, sig), ScriptOp(33, pubkey)]


def test_null_data_script():
    assert null_data_script(b"job") == bytes.fromhex("6a03") + b"job"
    assert null_data_script(b"") == bytes.fromhex("6a00")
    assert null_data_script(b"x" * 80)[:3] == bytes.fromhex("6a4c50")


def test_is_unspendable():
    assert is_unspendable(null_data_script(b"data"))
    assert is_unspendable(b"\x51" * (MAX_SCRIPT_SIZE + 1))
    assert not is_unspendable(b"\x51" * MAX_SCRIPT_SIZE)
    assert not is_unspendable(p2pkh_script(KEY_HASH))
    assert not is_unspendable(b"")


def test_script_error_message_names_reason_and_detail():
    error = ScriptError(ScriptErrorReason.PUSH_SIZE, "521 bytes")
    assert str(error) == "PUSH_SIZE: 521 bytes"
    assert error.reason == "PUSH_SIZE"
