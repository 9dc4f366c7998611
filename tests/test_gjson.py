"""engine.gjson: the public API, diagnostics, and property tests on random input."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import gjson
from engine.errors import GraphSpecError

DOC = b'{"instances":[{"modelId":"1"},{"modelId":"2","x":[1,2]}],"n":1.5,"s":"h\\u00e9"}'


def test_get_on_bytes_memoryview_bytearray_and_str():
    path = gjson.compile('instances.#(modelId=="2").x')
    for doc in (DOC, memoryview(DOC), bytearray(DOC), DOC.decode()):
        res = path.get(doc)
        assert res.exists and res.raw == b"[1,2]" and res.type == "JSON"
    assert path.exists(DOC) is True
    assert gjson.compile("nope").exists(DOC) is False


def test_result_conversions():
    assert gjson.get(DOC, "n").num() == 1.5
    assert gjson.get(DOC, "n").value() == 1.5
    assert gjson.get(DOC, "s").str() == "hé"
    assert gjson.get(DOC, "s").raw == b'"h\\u00e9"'
    assert gjson.get(DOC, "instances.1").value() == {"modelId": "2", "x": [1.0, 2.0]}
    assert gjson.get(DOC, "instances.#").num() == 2
    assert gjson.get(b'{"a":"TRUE","b":0}', "a").bool() is True
    assert gjson.get(b'{"a":"TRUE","b":0}', "b").bool() is False
    missing = gjson.get(DOC, "zzz")
    assert not missing.exists and missing.raw == b"" and missing.type == "Null"
    assert missing.value() is None and missing.str() == ""
    assert gjson.get(DOC, "instances").get("#.modelId").raw == b'["1","2"]'


def test_kserve_conditions():
    assert gjson.compile('[@this].#(decision_picker==ERROR)').exists(b'{"decision_picker":"ERROR"}')
    assert not gjson.compile('[@this].#(decision_picker==ERROR)').exists(b'{"decision_picker":"OK"}')
    assert gjson.compile('predictions.#(label=="dog")').exists(b'{"predictions":[{"label":"dog"}]}')


def test_valid():
    assert gjson.valid(b'{"a":[1,2,{"b":null}]}')
    assert gjson.valid("  [true,false,-1.5e3]\n")
    for bad in (b"", b"{", b'{"a":}', b"[1,]", b"01", b'"\x01"', b"{} x", b"[" * 10000):
        assert not gjson.valid(bad), bad
    deep = b"[" * 20000 + b"]" * 20000
    assert gjson.valid(deep)


def test_deep_nesting_is_scanned_iteratively_and_recursion_is_bounded():
    deep = b'{"a":' + b"[" * 200000 + b"]" * 200000 + b',"b":1}'
    assert gjson.valid(deep)
    assert gjson.get(deep, "b").raw == b"1"
    assert gjson.get(deep, "a.#").raw == b"1"
    # modifiers that walk every level hit Python's recursion limit, not the C stack
    for path in ("@pretty", "@dig:b", "a|@flatten:{\"deep\":true}"):
        with pytest.raises(RecursionError):
            gjson.get(deep, path)
    with pytest.raises(RecursionError):
        gjson.get(deep, "a").value()


@pytest.mark.parametrize("path,position,fragment", [
    ("", 0, "empty"),
    ("friends.#(age>45", 9, "never closed"),
    ("a.b)", 3, "without an opener"),
    ("a.@nosuch", 2, "unknown modifier"),
    ("friends.#(age>)", 13, "no value"),
    ("name.", 4, "ends with"),
    ('#(a=="x)', 5, "unterminated"),
])
def test_diagnose_reports_position(path, position, fragment):
    problems = gjson.compile(path).diagnose()
    assert any(p.position == position and fragment in p.message for p in problems), problems
    with pytest.raises(GraphSpecError, match="position"):
        gjson.compile(path, strict=True)


@pytest.mark.parametrize("path", [
    'instances.#(modelId=="2")', '[@this].#(decision_picker==ERROR)', "a.b.c", "@reverse|0",
    "friends.#(nets.#(==\"fb\"))#.first", "{a,\"b\":c}", "..#", "!true", "fav\\.movie",
    "@pretty:{\"indent\":\"\\t\"}", "vals.#(b==~true)#.a",
])
def test_diagnose_accepts_good_paths(path):
    assert gjson.compile(path).diagnose() == []
    assert gjson.compile(path, strict=True).source == path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)
path_alphabet = st.sampled_from(list("ab01#.*?|@!\\[]{}()=<>%~\", ") + ["@reverse", "@this", "a", "#(a==1)"])
paths = st.lists(path_alphabet, max_size=10).map("".join)
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(json_values, paths)
def test_random_documents_and_paths_never_crash(value, path):
    doc = json.dumps(value).encode()
    res = gjson.compile(path).get(doc)
    assert isinstance(res.raw, bytes)
    assert gjson.valid(doc)


@PROPS
@given(json_values, st.data())
def test_truncated_documents_are_invalid_and_values_stay_in_bounds(value, data):
    doc = json.dumps({"k": value, "z": 1}).encode()
    cut = data.draw(st.integers(0, len(doc) - 1))
    part = doc[:cut]
    assert not gjson.valid(part)
    # gjson is lenient: only a complete member can be found in a truncated object,
    # so KServe's check (ValidBytes, then Exists) never matches
    z = gjson.compile("z").get(part)
    assert not z.exists or z.raw == b"1"
    # results are slices of the document (or built from it): never past its end
    for p in ("k", "k.0", "k.#", "*", "k|@reverse"):
        res = gjson.compile(p).get(memoryview(part))
        assert len(res.raw) <= max(len(part), 2) * 2 + 2


@PROPS
@given(st.binary(max_size=64), paths)
def test_random_bytes_never_crash(doc, path):
    gjson.compile(path).get(doc)
    gjson.valid(doc)


this_rests = st.lists(st.sampled_from(
    ["#", "0", "1", "#(a)", "#(a==1)#", "#(k)", ".", "|", "a", "k", "#.a", "*", "@this",
     "#(==0)#", "#(!=null)#", "#(%\"*\")"]),
    min_size=1, max_size=3).map(".".join)


@PROPS
@given(json_values, st.sampled_from(["", " ", "\n", " x", "]", "}", " {}", " n", "[", " \"", " [1"]),
       this_rests,
       st.integers(0, 3))
def test_this_array_fast_path_equals_materialized_array(value, tail, rest, cut):
    # '[@this].REST' is evaluated in place; '[@this,!nope]' builds the same array
    doc = json.dumps(value).encode() + tail.encode()
    doc = doc[:len(doc) - cut] if cut < len(doc) else doc
    for sep in ".|":
        fast = gjson.compile("[@this]" + sep + rest).get(doc)
        slow = gjson.compile("[@this,!nope]" + sep + rest).get(doc)
        assert (fast.exists, fast.raw, fast.type) == (slow.exists, slow.raw, slow.type)


@PROPS
@given(json_values, st.sampled_from(["", " ", "\n", " x", "]", "}"]), this_rests,
       st.sampled_from(["[@this].", "[@this]|", "", "k."]), st.integers(0, 2))
def test_match_is_valid_and_exists(value, tail, rest, prefix, cut):
    doc = (json.dumps({"k": value, "a": 1}) + tail).encode()
    doc = doc[:len(doc) - cut]
    path = gjson.compile(prefix + rest)
    assert path.match(doc) == (gjson.valid(doc) and path.exists(doc))


def _reference_squash(doc: bytes, i: int) -> bytes:
    """gjson's parseSquash, transcribed byte for byte (slow, obviously correct)."""
    s, depth, n = i, 1, len(doc)
    i += 1
    while i < n:
        c = doc[i]
        if c == 0x22:
            i += 1
            s2 = i
            while i < n:
                if doc[i] > 0x5C:
                    i += 1
                    continue
                if doc[i] == 0x22:
                    if doc[i - 1] == 0x5C:
                        run, j = 0, i - 2
                        while j > s2 - 1 and doc[j] == 0x5C:
                            run, j = run + 1, j - 1
                        if run % 2 == 0:
                            i += 1
                            continue
                    break
                i += 1
        elif c in b"{[(":
            depth += 1
        elif c in b"}])":
            depth -= 1
            if depth == 0:
                return doc[s:i + 1]
        i += 1
    return doc[s:]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b"(", b")", b'"', b"\\", b"\\\"",
                                 b"a", b" ", b"12345678901234567", b"\\\\"]),
                max_size=60).map(b"".join))
def test_nested_value_skipping_matches_gjson(body):
    doc = b'{"a":[' + body
    assert gjson.get(doc, "a").raw == _reference_squash(doc, 5)


def test_scratch_memory_does_not_grow_with_the_document():
    import tracemalloc
    doc = b'{"rows":[' + b",".join([b'{"t\\u0041":"a\\"b","k":1}'] * 20000) + b"]}"
    for path in ('rows.#(t\\u0041=="zz")', 'rows.#(tA=="zz")#.k', "rows.#.tA", "rows.#.k"):
        compiled = gjson.compile(path)
        result = len(compiled.get(doc).raw)
        tracemalloc.start()
        try:
            compiled.exists(doc)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # every key and value here is escaped; only the result may take memory
        assert peak < 3 * result + 50_000, (path, peak, result, len(doc))
