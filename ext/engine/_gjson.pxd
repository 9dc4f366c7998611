# Declarations of engine._gjson shared with other extension modules (engine._core
# cimports Path and c_valid to evaluate Switch and Sequence conditions on raw bytes).
cimport cython

include "base/hex.pxd"

ctypedef const unsigned char* cstr

cdef struct Span:
    cstr p
    Py_ssize_t n

# gjson's Result: type, raw slice, unescaped string slice (String only), number.
cdef struct Res:
    int type
    cstr raw
    Py_ssize_t rawlen
    cstr s
    Py_ssize_t slen
    double num

# Keeps Python bytes alive while an evaluation holds pointers into them (unescaped
# keys, modifier output).  items stays NULL on the common path, so no object is made.
cdef struct Arena:
    void* items


@cython.final
cdef class Path:
    cdef bytes _pathb
    cdef cstr _p
    cdef Py_ssize_t _n
    cdef readonly str source
    cdef bint c_exists(self, const char* doc, Py_ssize_t n) except -1
    # c_exists for a document the caller has already checked with c_valid: skips the
    # shape check that '[@this].' paths otherwise need (KServe validates first)
    cdef bint c_exists_valid(self, const char* doc, Py_ssize_t n) except -1
    # gjson.ValidBytes(doc) && gjson.GetBytes(doc, path).Exists(): a KServe condition
    cdef bint c_match(self, const char* doc, Py_ssize_t n) except -1
    cdef int c_get(self, cstr doc, Py_ssize_t n, Res* out, Arena* arena) except -1


cdef bint c_valid(const char* doc, Py_ssize_t n) noexcept nogil
cdef void arena_release(Arena* arena) noexcept
