"""The evaluator never reads outside the document: documents are placed flush
against PROT_NONE guard pages, so a read one byte before or after them crashes."""
from __future__ import annotations

import ctypes
import json
import mmap
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import gjson

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="uses mprotect guard pages")

PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]


class Guarded:
    """A mapping with an unreadable page on each side of the document."""

    def __init__(self, doc: bytes, flush_end: bool):
        pages = (len(doc) + PAGE - 1) // PAGE + 2
        self.map = mmap.mmap(-1, pages * PAGE)
        start = (pages - 1) * PAGE - len(doc) if flush_end else PAGE
        self.map[start:start + len(doc)] = doc
        anchor = ctypes.c_char.from_buffer(self.map)
        base = ctypes.addressof(anchor)
        del anchor
        for page in (0, pages - 1):
            assert _libc.mprotect(base + page * PAGE, PAGE, 0) == 0
        self.view = memoryview(self.map)[start:start + len(doc)]

    def close(self):
        self.view.release()
        self.map.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)
components = st.sampled_from(
    ["a", "0", "#", "*", "?", "#(a)", "#(==1)#", "#(a%\"*\")", "@reverse", "@pretty", "@this",
     "[a,b]", "{a}", "!true", "#.a", "a\\", "\"", "\\\"", "..0", "@dig:a", "@keys", "@ugly"])
paths = st.lists(components, min_size=1, max_size=4).map(".".join)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values, st.integers(0, 40), paths, st.booleans())
def test_reads_stay_inside_the_document(value, cut, path, flush_end):
    doc = json.dumps(value).encode()
    doc = doc[: max(0, len(doc) - cut)]   # truncated documents end mid-token
    guarded = Guarded(doc, flush_end)
    try:
        compiled = gjson.compile(path)
        res = compiled.get(guarded.view)
        assert res.raw == compiled.get(doc).raw
        assert gjson.valid(guarded.view) == gjson.valid(doc)
        compiled.match(guarded.view)
    finally:
        guarded.close()


@pytest.mark.parametrize("doc", [
    b'"', b'"\\', b'{"a', b'{"a\\"', b'["\\\\\\"', b"[1", b"{", b"[", b'{"a":"x\\u12', b"n",
    b"t", b"-", b'{"a":[{"b":"c', b"[[[[", b'{"a":1,"b":tr', b'["\\ud83d', b"",
])
@pytest.mark.parametrize("path", ["a", "a.b", "0", "#", "#(b==\"c\")", "..#", "[@this].#(a)",
                                  "@pretty", "*", "a\\", "#.b", "@dig:b"])
def test_truncated_tokens_at_the_end_of_the_buffer(doc, path):
    guarded = Guarded(doc, flush_end=True)
    try:
        assert gjson.get(guarded.view, path).raw == gjson.get(doc, path).raw
        assert not gjson.valid(guarded.view)
    finally:
        guarded.close()
