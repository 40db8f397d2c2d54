"""Script opcode numbers.

The numbering is Bitcoin's so that tools and test vectors carry over, but only
the opcodes listed in `Opcode` exist on CamelidCoin. Every other byte (Bitcoin's
disabled splice/bitwise opcodes, OP_CODESEPARATOR, OP_CHECKMULTISIG, OP_SHA1,
0xba-0xff, ...) is undefined and fails a script wherever it appears, even in an
unexecuted IF branch, so giving one a meaning later cannot change how an
existing output's script is read.

Bytes 0x01-0x4b are not opcodes at all: they push that many following bytes.
"""

from __future__ import annotations

from enum import IntEnum

MAX_DIRECT_PUSH = 0x4B
"""Largest length a single-byte push (opcode == length) can carry."""


class Opcode(IntEnum):
    """Every defined opcode; aliases (OP_FALSE, OP_TRUE, OP_NOP2..OP_NOP5, OP_NOP8) share a value."""

    # Constants.
    OP_0 = 0x00
    OP_FALSE = 0x00
    OP_PUSHDATA1 = 0x4C
    OP_PUSHDATA2 = 0x4D
    OP_PUSHDATA4 = 0x4E
    OP_1NEGATE = 0x4F
    OP_1 = 0x51
    OP_TRUE = 0x51
    OP_2 = 0x52
    OP_3 = 0x53
    OP_4 = 0x54
    OP_5 = 0x55
    OP_6 = 0x56
    OP_7 = 0x57
    OP_8 = 0x58
    OP_9 = 0x59
    OP_10 = 0x5A
    OP_11 = 0x5B
    OP_12 = 0x5C
    OP_13 = 0x5D
    OP_14 = 0x5E
    OP_15 = 0x5F
    OP_16 = 0x60

    # Flow control.
    OP_NOP = 0x61
    OP_IF = 0x63
    OP_NOTIF = 0x64
    OP_ELSE = 0x67
    OP_ENDIF = 0x68
    OP_VERIFY = 0x69
    OP_RETURN = 0x6A

    # Stack.
    OP_TOALTSTACK = 0x6B
    OP_FROMALTSTACK = 0x6C
    OP_2DROP = 0x6D
    OP_2DUP = 0x6E
    OP_3DUP = 0x6F
    OP_2OVER = 0x70
    OP_2ROT = 0x71
    OP_2SWAP = 0x72
    OP_IFDUP = 0x73
    OP_DEPTH = 0x74
    OP_DROP = 0x75
    OP_DUP = 0x76
    OP_NIP = 0x77
    OP_OVER = 0x78
    OP_PICK = 0x79
    OP_ROLL = 0x7A
    OP_ROT = 0x7B
    OP_SWAP = 0x7C
    OP_TUCK = 0x7D

    # Splice and comparison.
    OP_SIZE = 0x82
    OP_EQUAL = 0x87
    OP_EQUALVERIFY = 0x88

    # Arithmetic on script numbers (at most 4-byte operands).
    OP_1ADD = 0x8B
    OP_1SUB = 0x8C
    OP_NEGATE = 0x8F
    OP_ABS = 0x90
    OP_NOT = 0x91
    OP_0NOTEQUAL = 0x92
    OP_ADD = 0x93
    OP_SUB = 0x94
    OP_BOOLAND = 0x9A
    OP_BOOLOR = 0x9B
    OP_NUMEQUAL = 0x9C
    OP_NUMEQUALVERIFY = 0x9D
    OP_NUMNOTEQUAL = 0x9E
    OP_LESSTHAN = 0x9F
    OP_GREATERTHAN = 0xA0
    OP_LESSTHANOREQUAL = 0xA1
    OP_GREATERTHANOREQUAL = 0xA2
    OP_MIN = 0xA3
    OP_MAX = 0xA4
    OP_WITHIN = 0xA5

    # Crypto.
    OP_RIPEMD160 = 0xA6
    OP_SHA256 = 0xA8
    OP_HASH160 = 0xA9
    OP_HASH256 = 0xAA
    OP_CHECKSIG = 0xAC
    OP_CHECKSIGVERIFY = 0xAD

    # Lock time, and NOPs kept free for soft-fork upgrades.
    OP_NOP1 = 0xB0
    OP_CHECKLOCKTIMEVERIFY = 0xB1
    OP_NOP2 = 0xB1
    OP_CHECKSEQUENCEVERIFY = 0xB2
    OP_NOP3 = 0xB2
    OP_CHECKJOBPROOFVERIFY = 0xB3
    OP_NOP4 = 0xB3
    OP_CHECKJOBESCROWVERIFY = 0xB4
    OP_NOP5 = 0xB4
    OP_CHECKJOBGAMEVERIFY = 0xB5
    OP_NOP6 = 0xB5
    OP_NOP7 = 0xB6
    OP_CHECKJOBDELIVERYVERIFY = 0xB7
    OP_NOP8 = 0xB7
    OP_NOP9 = 0xB8
    OP_NOP10 = 0xB9


JOB_CONTRACT_OPCODES = frozenset(Opcode(value) for value in range(Opcode.OP_NOP4, Opcode.OP_NOP10 + 1))
"""0xb3-0xb9, the range reserved for job-contract conditions (docs/jobs-design.md).

0xb3 (OP_CHECKJOBPROOFVERIFY), 0xb4 (OP_CHECKJOBESCROWVERIFY), 0xb5 (OP_CHECKJOBGAMEVERIFY, the
dispute game's moves) and 0xb7 (OP_CHECKJOBDELIVERYVERIFY) have their meaning; 0xb6, 0xb8 and 0xb9
still run as no-ops. Each took over a NOP the way OP_CHECKLOCKTIMEVERIFY took
over NOP2 in Bitcoin: it fails unless its condition holds and otherwise leaves the stack
as it was, so it only narrows what is valid (a soft fork).
"""

UPGRADABLE_NOPS = frozenset({Opcode.OP_NOP1}) | (
    JOB_CONTRACT_OPCODES
    - {
        Opcode.OP_CHECKJOBPROOFVERIFY, Opcode.OP_CHECKJOBESCROWVERIFY, Opcode.OP_CHECKJOBGAMEVERIFY,
        Opcode.OP_CHECKJOBDELIVERYVERIFY,
    }
)
"""Opcodes that currently do nothing. OP_CHECKLOCKTIMEVERIFY (NOP2) and OP_CHECKSEQUENCEVERIFY (NOP3)
have their BIP65 and BIP112 meanings."""
