"""gjson.valid against a reference, aimed at the validator's wide paths: number
arrays checked 64 bytes at a time, digit runs and string bodies 8 bytes at a time.

The reference is Python's json with gjson's differences removed: bytes are read as
Latin-1 (gjson accepts any byte >= 0x20 in a string, valid UTF-8 or not) and NaN or
Infinity are refused.  Every token is tried at every alignment, so each one crosses
8-, 16- and 64-byte boundaries somewhere.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import gjson
from test_gjson_bounds import Guarded


def _no_constants(name):
    raise ValueError(name)


def ref_valid(doc: bytes) -> bool:
    try:
        json.loads(doc.decode("latin-1"), parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return False
    return True


NUMBERS_OK = ["0", "-0", "7", "-7", "10", "0.5", "-0.5", "0.0722", "12.75", "1e5", "1E+05",
              "2e-3", "-0.0e0", "123456789012345678901234567890", "0.000000000000000001",
              "98765.4321e-12"]
NUMBERS_BAD = ["01", "-01", "00.5", "1.", ".5", "-", "--1", "1-2", "1.2.3", "1e", "1e+",
               "1ee5", "+1", "1,", "0x1", "1.e5", "-.5", "0..1", "1e5.5", "٣"]


def test_reference_agrees_with_known_cases():
    assert all(ref_valid(b"[%s]" % n.encode()) for n in NUMBERS_OK)
    assert not any(ref_valid(b"[%s]" % n.encode("utf-8")) for n in NUMBERS_BAD)
    assert ref_valid(b'["\xff\xfe"]') and not ref_valid(b"[NaN]")


@pytest.mark.parametrize("bad", NUMBERS_BAD)
def test_a_bad_number_is_found_at_every_position(bad):
    good = NUMBERS_OK * 3
    for at in range(len(good) + 1):
        items = good[:at] + [bad] + good[at:]
        doc = ("[" + ",".join(items) + "]").encode("utf-8")
        assert not gjson.valid(doc), doc
        assert gjson.valid(("[" + ",".join(good) + "]").encode())


@pytest.mark.parametrize("pad", range(0, 72))
def test_numbers_at_every_alignment(pad):
    # pad shifts every token by one byte more; a space-, string- or object-prefix
    # reaches the array from each of the validator's entry points
    for prefix in (b" " * pad, b'"%s",' % (b"x" * pad), b"0," * (pad // 2)):
        for sep in (b",", b", ", b" ,"):
            for tokens in (NUMBERS_OK, NUMBERS_OK[::-1], NUMBERS_OK + NUMBERS_BAD[:1],
                           [NUMBERS_OK[pad % len(NUMBERS_OK)]] * 40):
                body = sep.join(t.encode("utf-8") for t in tokens)
                for doc in (b"[" + prefix + body + b"]", b'{"k":[' + prefix + body + b"]}",
                            b"[[" + body + b"],[" + prefix + body + b"]]"):
                    assert gjson.valid(doc) == ref_valid(doc), doc


number_token = st.text("0123456789.-eE+", min_size=0, max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(number_token, min_size=1, max_size=40), st.integers(0, 70),
       st.sampled_from([",", ", ", ",,", "],[", "]"]))
def test_random_number_lists(tokens, pad, sep):
    doc = ("[" + " " * pad + ",".join(tokens[:-1]) + sep + tokens[-1] + "]").encode()
    assert gjson.valid(doc) == ref_valid(doc), doc


ESCAPES = [b'\\"', b"\\\\", b"\\/", b"\\b", b"\\f", b"\\n", b"\\r", b"\\t", b"\\u00e9",
           b"\\uD83D", b"\\uABCDx", b"\\x", b"\\u12G4", b"\\u12", b"\\", b"\x01", b"\x1f",
           b"\x00", b"\x7f", b"\xff\xfe", b"\xc3\xa9", b'"', b"\\\\\\"]


@pytest.mark.parametrize("esc", ESCAPES)
def test_string_escapes_near_word_boundaries(esc):
    for before in range(0, 18):
        for after in (0, 1, 7, 8, 9, 20):
            body = b"a" * before + esc + b"b" * after
            for doc in (b'["' + body + b'"]', b'{"' + body + b'":1}', b'"' + body + b'"',
                        b'{"k":"' + body + b'","z":[1,2]}', b'"' + body):
                assert gjson.valid(doc) == ref_valid(doc), doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=40), st.integers(0, 20))
def test_random_string_bodies(body, pad):
    doc = b'{"' + b"k" * pad + b'":"' + body + b'"}'
    assert gjson.valid(doc) == ref_valid(doc), doc


def _switch_like(count: int) -> bytes:
    items = ['{"modelId":"%d","features":[%s]}' % (k, ",".join("%.4f" % ((i * 7 % 97) / 97)
             for i in range(16))) for k in range(count)]
    return ('{"instances":[' + ",".join(items) + '],"note":"a\\"b\\u00e9\xff"}').encode("latin-1")


@pytest.mark.parametrize("flush_end", [True, False])
def test_documents_cut_at_every_offset_read_nothing_outside(flush_end):
    doc = _switch_like(3) + b" "
    rows = b'{"instances":[' + b",".join([b"[0.000000,0.058824,-1.5e+3,0.117647]"] * 6) + b"]}"
    for whole in (doc, rows):
        assert gjson.valid(whole)
        for cut in range(len(whole) + 1):
            part = whole[:cut]
            guarded = Guarded(part, flush_end)
            try:
                assert gjson.valid(guarded.view) == ref_valid(part), part
            finally:
                guarded.close()


def test_deep_nesting_grows_the_stack():
    for depth in (63, 64, 65, 4095, 4096, 4097, 20000):
        assert gjson.valid(b"[" * depth + b"1" + b"]" * depth)
        assert not gjson.valid(b"[" * depth + b"1" + b"]" * (depth - 1))
        assert gjson.valid(b'{"a":' * depth + b"[1,2]" + b"}" * depth)


# ------------------------------------------------ queries on a plain key (fast path)

keys = st.sampled_from(["a", "ab", "modelId", "b", ""])
flat_values = st.none() | st.booleans() | st.integers(-3, 3) | st.sampled_from(["0", "1", "2", "a"])
elements = st.dictionaries(keys, flat_values | st.lists(st.integers(0, 9), max_size=20),
                           max_size=4) | flat_values


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(elements, max_size=8), st.sampled_from(["a", "ab", "modelId", "a*", "a?"]),
       st.sampled_from(['=="2"', "==1", "!=null", '<"1"', "", '%"*"', "==~true"]),
       st.sampled_from(["", "#"]))
def test_plain_key_queries_match_the_general_path(items, key, cond, all_):
    doc = json.dumps({"instances": items}).encode()
    fast = gjson.compile(f"instances.#({key}{cond}){all_}").get(doc)
    # '\' in a path escapes the next byte: the same key, but evaluated through Get
    general = gjson.compile(f"instances.#(\\{key}{cond}){all_}").get(doc)
    assert (fast.exists, fast.raw) == (general.exists, general.raw)


@pytest.mark.parametrize("unit", [b"1,", b"0.5,", b"-7,", b"1, ", b"12]", b"3 "])
def test_number_runs_ending_flush_with_the_buffer(unit):
    # the 64-byte block may end exactly at the last byte: nothing past it is read
    for count in range(1, 80):
        part = b"[" + unit * count
        guarded = Guarded(part, True)
        try:
            assert gjson.valid(guarded.view) == ref_valid(part), part
        finally:
            guarded.close()


@pytest.mark.parametrize("path", ['instances.#(modelId=="2")', 'instances.#(modelId=="1")#',
                                  "instances.2", "instances.#.features.1", 'instances.#(\\modelId=="2")'])
def test_queries_on_cut_documents_read_nothing_outside(path):
    # elements are skipped 32 bytes at a time: every cut puts the end somewhere new
    whole = _switch_like(3)
    compiled = gjson.compile(path)
    assert compiled.get(whole).exists
    for cut in range(len(whole) + 1):
        part = whole[:cut]
        guarded = Guarded(part, True)
        try:
            res, plain = compiled.get(guarded.view), compiled.get(part)
            assert (res.exists, res.raw) == (plain.exists, plain.raw)
            assert not res.exists or res.raw in part or path.endswith("#") or ".#." in path
        finally:
            guarded.close()
