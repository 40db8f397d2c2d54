"""Records to plain maps and back: the job store's encoding, checked against the real record types."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import msgpack
import pytest
from prompt_support import hidden

from camelid.chain.recordcodec import decode_record, encode_record
from camelid.core.job import JobParams
from camelid.core.transaction import OutPoint, Transaction, TxIn, TxOut

PARAMS = JobParams(b"\x01" * 32, *hidden("llamas hum"), 8, 3, 700, 1_700_000_000, 600, b"\x02" + b"\x11" * 32, "", 1)
TX = Transaction(inputs=(TxIn(b"\x05" * 32, 1, b"\x51"),), outputs=(TxOut(5000, b"\x76\xa9"),), job_id=b"\x07" * 32)


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    node: bytes
    weight: float


@dataclass
class Outer:
    params: JobParams
    escrow: OutPoint
    locked: TxOut
    payment: Transaction | None = None
    history: list[tuple[Colour, float]] = field(default_factory=list)
    inners: dict[bytes, Inner] = field(default_factory=dict)
    tokens: tuple[int, ...] = ()
    note: str | None = None
    done: bool = False


def round_trip(record: Outer) -> Outer:
    packed = msgpack.packb(encode_record(record), use_bin_type=True)
    return decode_record(Outer, msgpack.unpackb(packed, raw=False, strict_map_key=False))


def test_every_kind_of_field_survives_msgpack():
    record = Outer(
        PARAMS,
        OutPoint(b"\x09" * 32, 2),
        TxOut(10**8, b"\xac"),
        TX,
        [(Colour.RED, 1.5), (Colour.BLUE, 2.0)],
        {b"\xaa" * 33: Inner(b"\xbb", 0.25)},
        (1, 2, 3),
        "ok",
        True,
    )
    assert round_trip(record) == record
    assert round_trip(Outer(PARAMS, OutPoint(b"\x09" * 32, 0), TxOut(1, b""))).payment is None


def test_canonical_encodings_are_stored_for_types_that_have_them():
    plain = encode_record(Outer(PARAMS, OutPoint(b"\x09" * 32, 2), TxOut(1, b""), TX))
    assert plain["params"] == PARAMS.to_bytes() and plain["payment"] == TX.to_bytes()
    assert plain["escrow"] == {"txid": b"\x09" * 32, "index": 2}


def test_a_field_added_later_takes_its_default_and_a_missing_required_one_is_named():
    plain = encode_record(Outer(PARAMS, OutPoint(b"\x09" * 32, 2), TxOut(1, b"")))
    del plain["note"], plain["done"]
    assert decode_record(Outer, plain).note is None
    del plain["escrow"]
    with pytest.raises(ValueError, match="field 'escrow' is missing"):
        decode_record(Outer, plain)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"params": b"\x00"}, r"Outer\.params: "),
        ({"payment": "not bytes"}, r"Outer\.payment: expected the bytes of a Transaction"),
        ({"history": [["green", 1.0]]}, r"'green' is not a Colour"),
        ({"history": "x"}, r"Outer\.history: expected a list"),
        ({"tokens": [1, True]}, r"Outer\.tokens\[1\]: expected int, got bool"),
        ({"inners": [[b"k", {"node": b"n"}]]}, r"field 'weight' is missing"),
        ({"inners": [[b"k"]]}, r"expected a list of key-value pairs"),
        ({"escrow": {"txid": b"\x09" * 32, "index": "2"}}, r"Outer\.escrow\.index: expected int, got str"),
    ],
)
def test_damaged_maps_raise_value_error_naming_the_field(change, message):
    plain = encode_record(Outer(PARAMS, OutPoint(b"\x09" * 32, 2), TxOut(1, b"")))
    plain.update(change)
    with pytest.raises(ValueError, match=message):
        decode_record(Outer, plain)


def test_only_dataclass_records_are_encoded_and_maps_are_expected():
    with pytest.raises(TypeError):
        encode_record({"a": 1})
    with pytest.raises(ValueError, match="Outer: expected a map, got list"):
        decode_record(Outer, [1, 2])


def test_a_fixed_tuple_must_have_its_length():
    plain = encode_record(Outer(PARAMS, OutPoint(b"\x09" * 32, 2), TxOut(1, b""), history=[(Colour.RED, 1.0)]))
    plain["history"] = [["red", 1.0, 2.0]]
    with pytest.raises(ValueError, match=r"history\[0\]: expected 2 items, got 3"):
        decode_record(Outer, plain)
