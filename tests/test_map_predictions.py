"""mapPredictionsToInstances as KServe's router does it (cmd/router/main.go): the step's
request goes through Go's json.Unmarshal into
    struct { Predictions, Instances []interface{} `json:"...,omitempty"` }
and, when Predictions is not empty, json.Marshal of it moved to Instances; on any
Unmarshal error, or with no predictions, the body is sent as it came.

Every expected body in CASES is derived by hand from Go's encoding/json rules (Go 1.25,
KServe's go.mod; \\b and \\f short escapes since Go 1.22); None means Go sends the body
unchanged. A Python model of the same rules (go_reference) checks the compiled
round trip on generated documents too.
"""
from __future__ import annotations

import decimal
import json
import random
import struct

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _core
from routerkit import ModelServer, running_router, static

mapped = _core.map_predictions_to_instances


def inst(payload: bytes) -> bytes:
    return b'{"instances":' + payload + b'}'


CASES = [
    # ---- the output holds only "instances": the struct has two fields, Predictions is
    # emptied (omitempty drops it) and every other key has nowhere to go
    ("other keys are dropped", b'{"predictions":[1],"model_name":"m","id":"x"}', inst(b'[1]')),
    ("instances are replaced", b'{"instances":[9,9],"predictions":[1]}', inst(b'[1]')),
    ("no whitespace in Marshal output", b' {\n "predictions" : [ 1 ,\t2 ] } \r\n', inst(b'[1,2]')),
    # ---- keys: exact match, else a case-folded one (bytes.EqualFold); each matching
    # key decodes into the same field again, so the last one wins
    ("Title case matches", b'{"Predictions":[1]}', inst(b'[1]')),
    ("upper case matches", b'{"PREDICTIONS":[1]}', inst(b'[1]')),
    ("U+017F long s folds onto s", '{"predictionſ":[1]}'.encode(), inst(b'[1]')),
    ("keys are unquoted before matching", b'{"pred\\u0069ctions":[1]}', inst(b'[1]')),
    ("a longer key is another key", b'{"predictionss":[1]}', None),
    ("a shorter key is another key", b'{"prediction":[1]}', None),
    ("last duplicate wins", b'{"predictions":[1],"predictions":[2,3]}', inst(b'[2,3]')),
    ("shorter duplicate replaces, not merges", b'{"predictions":[1,2,3],"predictions":[4]}', inst(b'[4]')),
    ("last folded duplicate wins", b'{"Predictions":[1],"predictions":[2],"PREDICTIONS":[3]}',
     inst(b'[3]')),
    ("a later null empties the field", b'{"predictions":[1],"predictions":null}', None),
    ("a later [] empties the field", b'{"predictions":[1],"Predictions":[]}', None),
    ("null then an array", b'{"predictions":null,"predictions":[1]}', inst(b'[1]')),
    # ---- nothing to move (len(Predictions) == 0): unchanged
    ("no predictions key", b'{"instances":[1]}', None),
    ("empty predictions", b'{"predictions":[]}', None),
    ("empty predictions with spaces", b'{"predictions":[ \n ]}', None),
    ("null predictions", b'{"predictions":null}', None),
    ("empty object", b'{}', None),
    ("top-level null decodes to nothing, no error", b'null', None),
    ("nested predictions are not the field", b'{"x":{"predictions":[1]}}', None),
    # ---- Unmarshal errors: unchanged
    ("object into []interface{}", b'{"predictions":{"a":1}}', None),
    ("string into []interface{}", b'{"predictions":"x"}', None),
    ("number into []interface{}", b'{"predictions":1}', None),
    ("bool into []interface{}", b'{"predictions":true}', None),
    # the type error is saved, decoding goes on, and Unmarshal returns it at the end
    ("instances of the wrong type after", b'{"predictions":[1],"instances":"x"}', None),
    ("instances of the wrong type before", b'{"instances":5,"predictions":[1]}', None),
    ("top-level array", b'[{"predictions":[1]}]', None),
    ("top-level string", b'"predictions"', None),
    ("top-level number", b'1', None),
    ("top-level bool", b'true', None),
    ("empty body", b'', None),
    ("whitespace only", b' \n', None),
    # checkValid scans the whole document before decoding anything
    ("trailing comma", b'{"predictions":[1,]}', None),
    ("truncated", b'{"predictions":[1]', None),
    ("data after the value", b'{"predictions":[1]} x', None),
    ("two values", b'{"predictions":[1]}{}', None),
    ("leading zero in an ignored key", b'{"predictions":[1],"x":[01]}', None),
    ("bad escape", b'{"predictions":["\\x"]}', None),
    ("short \\u escape", b'{"predictions":["\\u12"]}', None),
    ("raw control character in a string", b'{"predictions":["a\nb"]}', None),
    ("NaN is no JSON", b'{"predictions":[NaN]}', None),
    ("single quotes are no JSON", b"{'predictions':[1]}", None),
    ("a byte-order mark is no JSON", b'\xef\xbb\xbf{"predictions":[1]}', None),
    ("bare minus", b'{"predictions":[-]}', None),
    ("fraction without digits", b'{"predictions":[1.]}', None),
    ("exponent without digits", b'{"predictions":[1e]}', None),
    # strconv.ParseFloat's range error becomes an UnmarshalTypeError
    ("number above float64", b'{"predictions":[1e400]}', None),
    ("nested number above float64", b'{"predictions":[{"a":[-1e309]}]}', None),
    ("instances are decoded too", b'{"predictions":[1],"instances":[1e400]}', None),
    # a key that selects no field is skipped by the decoder: its numbers are never parsed
    ("huge number in an ignored key", b'{"predictions":[1],"x":1e400}', inst(b'[1]')),
    # ---- numbers: float64, written back by Go's floatEncoder (strconv 'f' with the
    # shortest digits; 'e' below 1e-6 and from 1e21 on, e-07 cleaned to e-7)
    ("1.0", b'{"predictions":[1.0]}', inst(b'[1]')),
    ("1e2", b'{"predictions":[1e2]}', inst(b'[100]')),
    ("1E+2", b'{"predictions":[1E+2]}', inst(b'[100]')),
    ("0.1e1", b'{"predictions":[0.1e1]}', inst(b'[1]')),
    ("-0 keeps its sign", b'{"predictions":[-0]}', inst(b'[-0]')),
    ("-0.0", b'{"predictions":[-0.0]}', inst(b'[-0]')),
    ("0.0", b'{"predictions":[0.0]}', inst(b'[0]')),
    ("0e10", b'{"predictions":[0e10]}', inst(b'[0]')),
    ("trailing fraction zeros", b'{"predictions":[1.50,123.456000]}', inst(b'[1.5,123.456]')),
    ("plain decimals stay", b'{"predictions":[0.1,-2.5,3.14159,12]}', inst(b'[0.1,-2.5,3.14159,12]')),
    ("1e-6 is not below 1e-6", b'{"predictions":[0.000001]}', inst(b'[0.000001]')),
    ("below 1e-6: exponent, e-07 cleaned", b'{"predictions":[0.0000001]}', inst(b'[1e-7]')),
    ("1.5e-7", b'{"predictions":[1.5e-7]}', inst(b'[1.5e-7]')),
    ("two-digit negative exponent", b'{"predictions":[1e-10]}', inst(b'[1e-10]')),
    ("positional down to 1e-6", b'{"predictions":[2.5e-5]}', inst(b'[0.000025]')),
    ("1e20 is positional", b'{"predictions":[1e20]}', inst(b'[100000000000000000000]')),
    ("1e21 is exponent", b'{"predictions":[1e21]}', inst(b'[1e+21]')),
    ("1.5e300", b'{"predictions":[1.5e300]}', inst(b'[1.5e+300]')),
    ("largest float64", b'{"predictions":[1.7976931348623157e308]}', inst(b'[1.7976931348623157e+308]')),
    ("smallest denormal", b'{"predictions":[5e-324]}', inst(b'[5e-324]')),
    ("underflow is 0, no error", b'{"predictions":[1e-400]}', inst(b'[0]')),
    ("negative underflow is -0", b'{"predictions":[-1e-400]}', inst(b'[-0]')),
    ("a 20-digit integer loses precision", b'{"predictions":[12345678901234567890]}',
     inst(b'[12345678901234567000]')),
    ("2**53 + 1 rounds to even", b'{"predictions":[9007199254740993]}', inst(b'[9007199254740992]')),
    ("shortest digits of 0.1 + 0.2", b'{"predictions":[0.30000000000000004]}', inst(b'[0.30000000000000004]')),
    ("extra digits collapse to the shortest", b'{"predictions":[0.1000000000000000055511151231257827]}',
     inst(b'[0.1]')),
    ("15 significant digits stay", b'{"predictions":[0.000001234567890123]}', inst(b'[0.000001234567890123]')),
    ("float32 value printed by Python", b'{"predictions":[0.8999999761581421]}', inst(b'[0.8999999761581421]')),
    # ---- strings: unquoted (invalid UTF-8 and lone surrogates become U+FFFD), then
    # Go's HTML-safe encoder
    ("<, >, & are escaped", b'{"predictions":["<a href=\\"x\\">&</a>"]}',
     inst(b'["\\u003ca href=\\"x\\"\\u003e\\u0026\\u003c/a\\u003e"]')),
    ("raw U+2028 and U+2029 are escaped", '{"predictions":["\u2028\u2029"]}'.encode(),
     inst(b'["\\u2028\\u2029"]')),
    ("escaped U+2028 stays escaped", b'{"predictions":["\\u2028"]}', inst(b'["\\u2028"]')),
    ("short escapes, \\b and \\f since Go 1.22", b'{"predictions":["\\b\\f\\n\\r\\t"]}',
     inst(b'["\\b\\f\\n\\r\\t"]')),
    ("other control characters as \\u00XX", b'{"predictions":["\\u0001\\u001F\\u0000\\u000b"]}',
     inst(b'["\\u0001\\u001f\\u0000\\u000b"]')),
    ("\\/ is written as /", b'{"predictions":["\\/"]}', inst(b'["/"]')),
    ("quote and backslash", b'{"predictions":["a\\"b\\\\c"]}', inst(b'["a\\"b\\\\c"]')),
    ("escaped letters come back raw", b'{"predictions":["\\u0041\\u00e9\\u4e2d"]}',
     inst('["Aé中"]'.encode())),
    ("a surrogate pair is one rune", b'{"predictions":["\\ud83d\\ude00"]}', inst('["😀"]'.encode())),
    ("a lone high surrogate", b'{"predictions":["\\ud83dx"]}', inst('["\ufffdx"]'.encode())),
    ("a lone low surrogate", b'{"predictions":["\\ude00"]}', inst('["\ufffd"]'.encode())),
    ("a high surrogate before a pair", b'{"predictions":["\\ud800\\ud83d\\ude00"]}',
     inst('["\ufffd😀"]'.encode())),
    ("a high surrogate before a plain escape", b'{"predictions":["\\ud800\\u0041"]}',
     inst('["\ufffdA"]'.encode())),
    ("an invalid byte", b'{"predictions":["\xff"]}', inst('["\ufffd"]'.encode())),
    ("a cut sequence: one U+FFFD per byte", b'{"predictions":["\xe2\x82a"]}',
     inst('["\ufffd\ufffda"]'.encode())),
    ("UTF-8 of a surrogate is invalid", b'{"predictions":["\xed\xa0\x80"]}',
     inst('["\ufffd\ufffd\ufffd"]'.encode())),
    ("an overlong encoding", b'{"predictions":["\xc0\xaf"]}', inst('["\ufffd\ufffd"]'.encode())),
    ("above U+10FFFF", b'{"predictions":["\xf4\x90\x80\x80"]}', inst('["\ufffd\ufffd\ufffd\ufffd"]'.encode())),
    ("DEL is not escaped", b'{"predictions":["\x7f"]}', inst(b'["\x7f"]')),
    ("raw multi-byte runes stay", '{"predictions":["é中😀"]}'.encode(), inst('["é中😀"]'.encode())),
    # ---- objects become map[string]interface{}: keys sorted bytewise, the last
    # duplicate kept; literals and empty containers as they are
    ("keys sorted at every level", b'{"predictions":[{"b":1,"a":2,"c":{"z":1,"y":2}}]}',
     inst(b'[{"a":2,"b":1,"c":{"y":2,"z":1}}]')),
    ("duplicate keys collapse, last wins", b'{"predictions":[{"a":1,"b":2,"a":3}]}',
     inst(b'[{"a":3,"b":2}]')),
    ("sorted by the decoded key", b'{"predictions":[{"\\u0062":1,"a":2}]}', inst(b'[{"a":2,"b":1}]')),
    # '"' (0x22) sorts before '#' (0x23); its escaped form \" would sort after
    ("sorted before escaping", b'{"predictions":[{"#":2,"\\"":1}]}', inst(b'[{"\\"":1,"#":2}]')),
    ("bytewise: upper case, lower case, then non-ASCII", '{"predictions":[{"é":1,"z":2,"Z":3}]}'.encode(),
     inst('[{"Z":3,"z":2,"é":1}]'.encode())),
    ("keys are escaped like strings", b'{"predictions":[{"<k>":1}]}', inst(b'[{"\\u003ck\\u003e":1}]')),
    ("empty containers and literals", b'{"predictions":[{},[],[{}],true,false,null,""]}',
     inst(b'[{},[],[{}],true,false,null,""]')),
    ("only nulls is not empty", b'{"predictions":[null]}', inst(b'[null]')),
]

# encoding/json's scanner allows 10000 nested containers; the top-level object is one
DEEPEST = b'{"predictions":' + b'[' * 9999 + b']' * 9999 + b'}'
TOO_DEEP = b'{"predictions":' + b'[' * 10000 + b']' * 10000 + b'}'
TOO_DEEP_ELSEWHERE = b'{"predictions":[1],"x":' + b'[' * 10000 + b']' * 10000 + b'}'


@pytest.mark.parametrize("body, expected", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_go_round_trip(body, expected):
    out = mapped(body)
    if expected is None:
        assert out is body
    else:
        assert out == expected


def test_nesting_limit_is_go_scanners():
    assert mapped(DEEPEST) == inst(b'[' * 9999 + b']' * 9999)
    assert mapped(TOO_DEEP) is TOO_DEEP
    assert mapped(TOO_DEEP_ELSEWHERE) is TOO_DEEP_ELSEWHERE


def test_buffers_of_any_kind_and_non_buffers():
    body = b'{"predictions":[1.0]}'
    assert mapped(bytearray(body)) == inst(b'[1]')
    assert mapped(memoryview(body)) == inst(b'[1]')
    assert mapped(memoryview(b"xx" + body)[2:]) == inst(b'[1]')
    thing = object()
    assert mapped(thing) is thing


def test_large_bodies_and_long_numbers():
    rows = [[i / 7 for i in range(50)] for _ in range(200)]
    body = orjson.dumps({"predictions": rows, "x": "y"})
    assert orjson.loads(mapped(body)) == {"instances": rows}
    digits = b"1" + b"0" * 400 + b".5e-390"        # 1.0...05e10: needs the long-text path
    assert mapped(b'{"predictions":[' + digits + b']}') == inst(b'[10000000000]')


# ---- a Python model of Go's rules, for generated documents ---------------------------

class _Num(str):
    """A number's text: Go converts only the numbers it decodes into a field."""


class _Obj(list):
    """An object's members in document order, duplicates kept."""


class _GoError(Exception):
    pass


def _go_decode_utf8(data: bytes) -> str:
    """bytes -> str as Go's decoder sees it: each byte that does not start a
    well-formed sequence is one U+FFFD (Python's "replace" merges some)."""
    out, i = [], 0
    while i < len(data):
        for size in (1, 2, 3, 4):
            try:
                out.append(data[i:i + size].decode("utf-8"))
                i += size
                break
            except UnicodeDecodeError:
                continue
        else:
            out.append("\ufffd")
            i += 1
    return "".join(out)


def _no_surrogates(s: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(ch) < 0xE000 else ch for ch in s)


def _constant(name):
    raise _GoError(name)


def _fold(key: str) -> str:
    return "".join("S" if ch == "\u017f" else ch.upper() if ch.isascii() else ch for ch in key)


def _go_value(v):
    if isinstance(v, _Num):
        x = float(v)
        if x in (float("inf"), float("-inf")):
            raise _GoError("number out of range")
        return x
    if isinstance(v, str):
        return _no_surrogates(v)
    if isinstance(v, _Obj):
        return {_no_surrogates(k): _go_value(x) for k, x in v}
    if isinstance(v, list):
        return [_go_value(x) for x in v]
    return v


def _go_float(x: float) -> str:
    d = decimal.Decimal(repr(x)).normalize()
    if x != 0 and (abs(x) < 1e-6 or abs(x) >= 1e21):
        return format(d, "e").replace("E", "e")
    return format(d, "f")


def _go_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif o < 0x20 or ch in "<>&":
            out.append(f"\\u{o:04x}")
        elif ch in "\u2028\u2029":
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    return "".join(out) + '"'


def _go_encode(v) -> str:
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, float):
        return _go_float(v)
    if isinstance(v, str):
        return _go_string(v)
    if isinstance(v, list):
        return "[" + ",".join(_go_encode(x) for x in v) + "]"
    items = sorted(v.items(), key=lambda kv: kv[0].encode())
    return "{" + ",".join(_go_string(k) + ":" + _go_encode(x) for k, x in items) + "}"


def go_reference(body: bytes):
    """What KServe's router sends, modelled with Python's json; None: ``body``."""
    try:
        doc = json.loads(_go_decode_utf8(body), object_pairs_hook=_Obj, parse_float=_Num,
                         parse_int=_Num, parse_constant=_constant)
    except (ValueError, _GoError, RecursionError):
        return None
    if not isinstance(doc, _Obj):
        return None
    predictions = None
    try:
        for key, value in doc:
            field = _fold(_no_surrogates(key))
            if field not in ("PREDICTIONS", "INSTANCES"):
                continue
            if value is not None and (not isinstance(value, list) or isinstance(value, _Obj)):
                return None
            decoded = _go_value(value)
            if field == "PREDICTIONS":
                predictions = decoded
    except _GoError:
        return None
    if not predictions:
        return None
    return ('{"instances":' + _go_encode(predictions) + "}").encode()


def test_reference_agrees_with_the_table():
    for name, body, expected in CASES:
        assert go_reference(body) == expected, name


# ---- float64 both ways, against Python's float() and repr (the same shortest digits) ----

EDGE_FLOATS = [5e-324, 1e-323, 2.2250738585072014e-308, 2.225073858507201e-308, 1.7976931348623157e308,
               0.1, 0.3, 1.0, 1e-6, 9.999999999999999e-7, 1e21, 9.999999999999999e20, 1e22, 1e23,
               2.0 ** 53, 2.0 ** 53 + 2, 2.0 ** 63, 123.456, 1e-7, 1.5e-7]


def _random_doubles(count, seed):
    rng = random.Random(seed)
    while count:
        bits = rng.getrandbits(64)
        if (bits >> 52) & 0x7FF != 0x7FF:
            count -= 1
            yield struct.unpack("<d", struct.pack("<Q", bits))[0]


def test_float64_is_written_as_go_writes_it():
    powers_of_two = [2.0 ** e for e in range(-1074, 1024)]
    neighbours = [y for x in powers_of_two for y in (x * (1 + 2 ** -52), x * (1 - 2 ** -53)) if y]
    subnormals = [m * 5e-324 for m in range(1, 300)]
    for x in EDGE_FLOATS + powers_of_two + neighbours + subnormals + list(_random_doubles(20000, 7)):
        for y in (x, -x):
            assert _core.go_format_float(y) == _go_float(y).encode(), repr(y)
    assert _core.go_format_float(0.0) == b"0" and _core.go_format_float(-0.0) == b"-0"


def test_numbers_are_parsed_as_strconv_parses_them():
    rng = random.Random(3)
    texts = ["9007199254740993", "9007199254740995", "2.2250738585072011e-308", "2.4703282292062327e-324",
             "2.4703282292062328e-324", "1e23", "8.98846567431158e307", "1.7976931348623158e308",
             "0.1" + "0" * 30 + "1", "0.5", "-0.0", "1e-400", "4.9406564584124654e-324"]
    for _ in range(20000):
        digits = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 24)))
        cut = rng.randint(1, len(digits))
        text = digits[:cut] + ("." + digits[cut:] if cut < len(digits) else "")
        if rng.random() < 0.7:
            text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 340))
        texts.append(("-" if rng.random() < 0.5 else "") + text)
    for text in texts:
        got, want = _core.go_parse_float(text.encode()), float(text)
        assert repr(got) == repr(want), text
    assert _core.go_parse_float(b"1e400") == float("inf")
    assert _core.go_parse_float(b"-1e309") == float("-inf")


def test_number_texts_through_the_round_trip():
    for x in list(_random_doubles(3000, 5)) + EDGE_FLOATS:
        for text in (repr(x), "%.17g" % x, "%.16e" % x, "%.3f" % x if abs(x) < 1e15 else repr(x)):
            body = b'{"predictions":[' + text.encode() + b"]}"
            assert mapped(body) == go_reference(body), text


# ---- generated documents --------------------------------------------------------------

KEYS = ["predictions", "Predictions", "PREDICTIONs", "predictionſ", "instances", "Instances",
        "x", "a", "b", "B", "é", "<", '"', "\u2028", "pred\\u0069ctions", "\\ud800"]
NUMBERS = ["0", "-0", "1", "1.0", "-2.5", "1e2", "1E-7", "0.000001", "1e21", "1e20", "1e400",
           "-1e-400", "12345678901234567890", "0.30000000000000004", "5e-324", "0.1e1", "123.4500",
           "9007199254740993", "1.7976931348623157e308", "2.5e-5"]
STRING_PARTS = ["a", "é", "中", "😀", "<", ">", "&", "\\\"", "\\\\", "\\/", "\\b", "\\f", "\\n",
                "\\u0000", "\\u001f", "\\u2028", "\u2029", "\\ud83d\\ude00", "\\ud83d", "\\ude00",
                "\x7f", " "]
RAW_BYTES = [b"\xff", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf"]
WS = st.sampled_from(["", "", " ", "\n\t "])


def _json_text():
    strings = st.lists(st.sampled_from(STRING_PARTS), max_size=4).map(lambda p: '"' + "".join(p) + '"')
    scalars = st.one_of(st.sampled_from(NUMBERS), strings, st.sampled_from(["true", "false", "null"]))

    def containers(children):
        arrays = st.lists(st.tuples(WS, children), max_size=4).map(
            lambda xs: "[" + ",".join(w + x for w, x in xs) + "]")
        objects = st.lists(st.tuples(st.sampled_from(KEYS), WS, children), max_size=4).map(
            lambda xs: "{" + ",".join(f'"{k}"{w}:{x}' for k, w, x in xs) + "}")
        return st.one_of(arrays, objects)

    return st.recursive(scalars, containers, max_leaves=12)


@st.composite
def documents(draw):
    members = draw(st.lists(st.tuples(st.sampled_from(KEYS), WS, _json_text()), max_size=4))
    if draw(st.integers(0, 3)):
        # mostly with an array of predictions somewhere, so that most documents map
        items = draw(st.lists(_json_text(), min_size=1, max_size=4))
        at = draw(st.integers(0, len(members)))
        members.insert(at, (draw(st.sampled_from(KEYS[:4])), "", "[" + ",".join(items) + "]"))
    text = "{" + ",".join(f'"{k}"{w}:{v}' for k, w, v in members) + "}"
    if draw(st.booleans()):
        text = draw(WS) + text + draw(WS)
    body = text.encode()
    if draw(st.integers(0, 4)) == 0 and b'"' in body:
        # raw invalid UTF-8 inside a string, or a byte flipped anywhere
        at = body.index(b'"') + 1
        body = body[:at] + draw(st.sampled_from(RAW_BYTES)) + body[at:]
    elif draw(st.integers(0, 6)) == 0 and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] + bytes([draw(st.sampled_from(b'{}[],:"\\01e.- \x00'))]) + body[at + 1:]
    return body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_generated_documents_match_the_reference(body):
    expected = go_reference(body)
    out = mapped(body)
    if expected is None:
        assert out is body
    else:
        assert out == expected


# ---- in a graph ---------------------------------------------------------------------

def test_the_model_receives_gos_bytes(loop):
    body = b'{"predictions": [{"b": 1.50, "a": "<x>"}, 1e2], "model_name": "m"}'
    unchanged = b'{"predictions": [], "other": 1.0}'

    async def go():
        m = await ModelServer(static({"predictions": [0]})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": m.url, "mapPredictionsToInstances": True}]}}}
        try:
            async with running_router(graph) as router:
                first = await router.post(body)
                second = await router.post(unchanged)
        finally:
            await m.close()
        assert first.status == second.status == 200
        return [bytes(r.body) for r in m.requests]
    sent = loop.run(go())
    assert sent == [b'{"instances":[{"a":"\\u003cx\\u003e","b":1.5},100]}', unchanged]


def test_a_response_step_maps_the_previous_answer(loop):
    async def go():
        first = await ModelServer(static(b'{"predictions":[0.10,{"k":true}],"v":"1"}')).start()
        second = await ModelServer(static({"ok": 1})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": first.url},
            {"serviceUrl": second.url, "data": "$response", "mapPredictionsToInstances": True}]}}}
        try:
            async with running_router(graph) as router:
                r = await router.post({"instances": [1]})
        finally:
            await first.close()
            await second.close()
        assert r.status == 200
        return bytes(second.requests[0].body)
    assert loop.run(go()) == b'{"instances":[0.1,{"k":true}]}'
