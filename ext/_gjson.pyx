# cython: language_level=3
"""engine._gjson: GJSON paths (tidwall/gjson v1.18.0 semantics) evaluated on raw bytes.

The evaluator follows gjson's own algorithm over (pointer, length) slices of the
document, so results carry the same Raw bytes gjson gives and malformed paths or
documents fail the same way (they simply do not exist).  Pointers in a result point
into the document or into an Arena that keeps generated JSON alive.
"""
cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.ref cimport Py_INCREF, Py_DECREF
from libc.stdlib cimport malloc, realloc, free, strtod
from libc.string cimport memchr, memcmp, memcpy, memset, strlen

cdef extern from *:
    Py_ssize_t PY_SSIZE_T_MAX

include "gjson/scan.pyx"
include "gjson/valid.pyx"
include "gjson/eval.pyx"
include "gjson/mods.pyx"
include "gjson/diag.pyx"

TYPE_NAMES = ("Null", "False", "Number", "String", "True", "JSON")


cdef class _Doc:
    """A read-only view of a document: bytes as is, str as UTF-8, else a buffer."""
    cdef Py_buffer view
    cdef bint has_view
    cdef bytes keep
    cdef cstr p
    cdef Py_ssize_t n

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)


cdef _Doc _doc_of(object doc):
    cdef _Doc d = _Doc.__new__(_Doc)
    if isinstance(doc, bytes):
        d.keep = <bytes>doc
    elif isinstance(doc, str):
        d.keep = (<str>doc).encode("utf-8", "surrogatepass")
    else:
        PyObject_GetBuffer(doc, &d.view, PyBUF_SIMPLE)
        d.has_view = True
        d.p = <cstr>d.view.buf
        d.n = d.view.len
        return d
    d.p = <cstr>PyBytes_AS_STRING(d.keep)
    d.n = len(d.keep)
    return d


@cython.final
cdef class Result:
    """One gjson Result: ``exists``, ``raw`` (gjson's Result.Raw), ``type``."""
    cdef int _type
    cdef bytes _raw
    cdef bytes _str
    cdef double _num

    @property
    def exists(self):
        """True when the path matched (gjson's Result.Exists)."""
        return self._type != T_NULL or len(self._raw) != 0

    @property
    def raw(self):
        """The matched JSON exactly as gjson's Result.Raw gives it."""
        return self._raw

    @property
    def type(self):
        """One of "Null", "False", "Number", "String", "True", "JSON"."""
        return TYPE_NAMES[self._type]

    def str(self):
        """gjson's Result.String() as a Python str."""
        return held_string(self._type, self._raw, self._str, self._num).decode("utf-8", "replace")

    def num(self):
        """gjson's Result.Float(): numbers, numeric strings, true as 1, else 0."""
        if self._type == T_NUMBER:
            return self._num
        if self._type == T_TRUE:
            return 1.0
        if self._type == T_STRING:
            return go_parse_float(<cstr>PyBytes_AS_STRING(self._str), len(self._str))
        return 0.0

    def bool(self):
        """gjson's Result.Bool()."""
        return held_bool(self._type, self._str, self._num)

    def value(self):
        """gjson's Result.Value() in Python: None, bool, float, str, dict or list."""
        cdef _V v = _V.__new__(_V)
        v.type, v.raw, v.s, v.num = self._type, self._raw, self._str, self._num
        return _py_value(v)

    def get(self, path):
        """gjson's Result.Get: evaluate path on this result's raw JSON."""
        return Path(path).get(self._raw)

    def __repr__(self):
        if not self.exists:
            return "<gjson.Result missing>"
        return f"<gjson.Result {self.type} {self._raw!r}>"


cdef object _py_value(_V v, Py_ssize_t depth=0):
    # Value(): objects keep the first of duplicate keys, numbers are floats
    cdef dict d
    if v.type == T_STRING:
        return v.s.decode("utf-8", "replace")
    if v.type == T_FALSE:
        return False
    if v.type == T_TRUE:
        return True
    if v.type == T_NUMBER:
        return v.num
    if v.type == T_JSON:
        _enter(depth)
        if v.is_object():
            d = {}
            for k, item in _foreach(v):
                ks = (<_V>k).s.decode("utf-8", "replace")
                if ks not in d:
                    d[ks] = _py_value(item, depth + 1)
            return d
        if v.is_array():
            return [_py_value(item, depth + 1) for _, item in _foreach(v)]
    return None


cdef Result _result_of(const Res* r):
    cdef Result out = Result.__new__(Result)
    out._type = r.type
    out._raw = _span_bytes(r.raw, r.rawlen)
    out._str = _span_bytes(r.s, r.slen) if r.type == T_STRING else _EMPTY
    out._num = r.num
    return out


cdef inline bint _path_exists(Path path, cstr doc, Py_ssize_t n, bint valid) except -1:
    # valid: the caller has checked doc with c_valid, so eval_valid_doc may skip that
    cdef Arena arena
    cdef Res r
    arena.items = NULL
    try:
        if valid:
            eval_valid_doc(doc, n, path._p, path._n, &r, &arena)
        else:
            eval_path(doc, n, path._p, path._n, &r, &arena)
        return res_exists(&r)
    finally:
        arena_release(&arena)


cdef class Path:
    """A GJSON path, checked once; ``get`` evaluates it on a document."""

    def __cinit__(self, path):
        if isinstance(path, bytes):
            self._pathb = <bytes>path
            self.source = (<bytes>path).decode("utf-8", "replace")
        else:
            self.source = str(path)
            self._pathb = self.source.encode("utf-8", "surrogatepass")
        self._p = <cstr>PyBytes_AS_STRING(self._pathb)
        self._n = len(self._pathb)

    cdef int c_get(self, cstr doc, Py_ssize_t n, Res* out, Arena* arena) except -1:
        return eval_path(doc, n, self._p, self._n, out, arena)

    cdef bint c_exists(self, const char* doc, Py_ssize_t n) except -1:
        return _path_exists(self, <cstr>doc, n, False)

    cdef bint c_exists_valid(self, const char* doc, Py_ssize_t n) except -1:
        return _path_exists(self, <cstr>doc, n, True)

    cdef bint c_match(self, const char* doc, Py_ssize_t n) except -1:
        if not c_valid(doc, n):
            return False
        return self.c_exists_valid(doc, n)

    def match(self, doc):
        """KServe's condition test: ``valid(doc) and get(doc).exists``."""
        cdef _Doc d = _doc_of(doc)
        return self.c_match(<const char*>d.p, d.n)

    def get(self, doc):
        """Evaluate on ``doc`` (bytes, str, or any buffer); returns a Result."""
        cdef _Doc d = _doc_of(doc)
        cdef Arena arena
        cdef Res r
        arena.items = NULL
        try:
            eval_path(d.p, d.n, self._p, self._n, &r, &arena)
            return _result_of(&r)
        finally:
            arena_release(&arena)

    def exists(self, doc):
        """``get(doc).exists`` without building a Result."""
        cdef _Doc d = _doc_of(doc)
        return self.c_exists(<const char*>d.p, d.n)

    def diagnose(self):
        """Suspicious syntax as a list of PathProblem (empty when the path looks fine)."""
        return diagnose(self.source)

    def __repr__(self):
        return f"Path({self.source!r})"

    def __reduce__(self):
        return (Path, (self.source,))


def get(doc, path):
    """gjson.Get(doc, path) for one-off use."""
    return Path(path).get(doc)


def valid(doc):
    """gjson.Valid(doc)."""
    cdef _Doc d = _doc_of(doc)
    return c_valid(<const char*>d.p, d.n)


include "gjson/switch.pyx"
