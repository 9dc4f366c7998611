"""Where the engine once differed from gjson v1.18.0 (KServe's pin): one focused case
each, with the answer the v1.18.0 oracle gave (the corpus holds many more)."""
from __future__ import annotations

import math

import pytest

from engine import gjson


def raw(doc, path):
    return gjson.get(doc, path).raw


def test_tostr_writes_backspace_and_form_feed_as_short_escapes():
    assert raw(b'"\x08\x0c\x01"', "@tostr") == b'"\\"\\b\\f\\u0001\\""'


@pytest.mark.parametrize("doc,path,expected", [
    # a simple modifier argument runs to the first '|' outside (), [], {} and quotes
    (b'{"f":[{"l":"M|x"}]}', '@dig:#(l=="M|x")#.l', b'[["M|x"]]'),
    (b'{"f":[{"l":"M"}]}', '@dig:#(l=="M|x")', b"[]"),
    (b'{"SYN":1}', "@this:x(|)|SYN", b"1"),
    (b"[1,2]", "@reverse:[1|2]|0", b"2"),
    (b'{"a":1}', "@this:(|", b'{"a":1}'),
])
def test_simple_modifier_argument_keeps_bars_inside_brackets(doc, path, expected):
    assert raw(doc, path) == expected


def test_pretty_copies_nan_and_inf_like_numbers():
    assert raw(b"[NaN, 1, Inf]", "@pretty") == b"[NaN, 1, Inf]\n"
    assert raw(b'{"a":nan,"b":+Inf,"c":n}', "@pretty") == \
        b'{\n  "a": nan,\n  "b": +Inf,\n  "c": n\n}\n'


def test_sort_keys_compares_keys_unescaped_then_values_by_type():
    doc = b'{"b":1,"a":2,"a":"x","a":null,"a\\u0000":0,"\\u0061":3}'
    assert raw(doc, '@pretty:{"sortKeys":true}') == (
        b'{\n  "a": null,\n  "a": 2,\n  "\\u0061": 3,\n  "a": "x",\n  "a\\u0000": 0,\n'
        b'  "b": 1\n}\n')


def test_sort_keys_follows_go_stable_sort_when_nan_makes_the_order_partial():
    doc = b'{"a":NaN,"a":1,"a":0,"a":NaN,"a":-1}'
    assert raw(doc, '@pretty:{"sortKeys":true}') == \
        b'{\n  "a": NaN,\n  "a": 0,\n  "a": 1,\n  "a": NaN,\n  "a": -1\n}\n'
    # more than one block of 20, so SymMerge runs as well
    values = ["NaN" if i % 7 == 3 else str((i * 11) % 9 - 4) for i in range(45)]
    doc = ("{" + ",".join(f'"k":{v}' for v in values) + "}").encode()
    got = raw(doc, '@pretty:{"sortKeys":true}|@ugly')
    assert got == ("{" + ",".join(f'"k":{v}' for v in (
        "-4 -2 0 NaN -4 -3 -3 -3 -1 -1 1 3 4 NaN -3 -1 0 1 2 4 NaN -4 0 2 4 NaN -4 -2 -2 0 1 "
        "1 2 3 NaN -4 -3 -2 -1 1 3 NaN 2 3 4").split()) + "}").encode()


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


@pytest.mark.parametrize("doc,path", [
    (b'[[{"a":1},2],3,"\\u00e9"]', "0.#(a==1)#|@join"),
    (b'[[{"a":1},2],3,"\\u00e9"]', "0.#(a==1)#|0"),
    (b'[[[{"a":1}],2],3]', "0.0.#(a==1)#|0"),
    (b'{"a":1}\n[[{"a":1}],"\\u00e9"]\n', "..1.0.#(a==1)#|0"),
])
def test_query_under_an_index_outlives_the_rest_of_the_scan(doc, path):
    # the JSON '#(...)#' built was freed when the scan went on to the next element
    assert raw(doc, path) == b'{"a":1}'


@pytest.mark.parametrize("doc,path,expected", [
    # a '{' or '[' head that never closes leaves gjson an empty path
    (b'{"a":1,"":10}', "{name", b"10"),
    (b'{"a":1,"\\x":10}', "[name", b"10"),
    # one followed by more than '.' or '|' leaves what follows
    (b'{"x":1,"[a]x":2}', "[a]x", b"1"),
])
def test_multipath_head_that_selects_nothing(doc, path, expected):
    assert raw(doc, path) == expected
