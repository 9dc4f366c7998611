"""Where the engine once differed from gjson v1.18.0 (KServe's pin): one focused case
each, with the answer the v1.18.0 oracle gave (the corpus holds many more)."""
from __future__ import annotations

import math

import pytest

from engine import gjson


def raw(doc, path):
    return gjson.get(doc, path).raw


@pytest.mark.parametrize("number,value", [
    ("1_0", 10.0), ("0x_1p0", 1.0), ("0x1_0p0", 16.0), ("1e1_0", 1e10), ("1__0", 0.0),
    ("-_1", 0.0), ("1_", 0.0), ("0x1_p0", 0.0), ("+nan", 0.0), ("-NaN", 0.0),
])
def test_numbers_parse_as_go_parse_float(number, value):
    assert gjson.get(f"[{number}]", "0").num() == value


def test_nan_without_sign_is_still_nan():
    assert math.isnan(gjson.get("[nan]", "0").num())


def test_query_values_with_digit_separators():
    assert raw(b"[1,16,9]", "#(>1_0)#") == b"[16]"
    assert raw(b"[1,0,-1]", "#(==+nan)#") == b"[0]"
