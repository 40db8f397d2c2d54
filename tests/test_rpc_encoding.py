"""Reply encoding: amounts with exactly 8 decimals, and the pretty form camelid-cli prints."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from camelid.rpc.jsonenc import amount, dumps


@pytest.mark.parametrize(
    ("units", "text"),
    [(0, "0.00000000"), (1, "0.00000001"), (5_000_000_000, "50.00000000"), (123_456_789, "1.23456789"),
     (-1, "-0.00000001")],
)
def test_amount_keeps_eight_decimals(units, text):
    assert amount(units) == Decimal(units) / 100_000_000
    assert dumps(amount(units)) == text


def test_amounts_encode_as_json_numbers_with_eight_decimals():
    encoded = dumps({"value": amount(5_000_000_000), "n": 0, "ok": True, "none": None, "s": "a\"b"})
    assert encoded == '{"value":50.00000000,"n":0,"ok":true,"none":null,"s":"a\\"b"}'
    assert json.loads(encoded, parse_float=Decimal)["value"] == Decimal("50.00000000")


def test_indented_output_round_trips():
    value = {"a": [1, {"b": amount(1)}], "empty": [], "obj": {}}
    pretty = dumps(value, indent=2)
    assert pretty.startswith('{\n  "a": [\n    1,')
    assert json.loads(pretty, parse_float=Decimal) == json.loads(dumps(value), parse_float=Decimal)
