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


# A SwitchTable's literals (ext/gjson/switch.pyx) while one evaluation runs: the
# query at the end of the shared path looks each element's value up here instead of
# comparing it with one literal; best is the lowest condition index matched so far.
cdef struct QTable:
    const unsigned char** str_p      # string literals sorted by (length, bytes)
    Py_ssize_t* str_n
    int* str_first                   # the lowest condition index with that literal
    Py_ssize_t n_str
    double* num_v                    # number values of the literals, sorted, no NaN
    int* num_first
    Py_ssize_t n_num
    int true_first                   # lowest index whose literal is "true", or -1
    int false_first
    int best
    bint bail                        # the walk met a case the table cannot decide


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


# Consecutive Switch conditions '<P>.#(<K>==<literal>)' with the same P and K,
# evaluated in one walk of the document: the index of the first condition (in
# their order) whose path exists, as each Path.c_exists would decide, or -1.
@cython.final
cdef class SwitchTable:
    cdef QTable t
    cdef readonly tuple paths          # of Path, in condition order
    cdef readonly int size
    cdef bytes _walk                   # the path walked: the first condition's
    cdef bint _this                    # P is '[@this]' (KServe's own idiom)
    cdef object _keep                  # owns the memory QTable points into
    cdef int c_first(self, const char* doc, Py_ssize_t n) except -2


cdef bint c_valid(const char* doc, Py_ssize_t n) noexcept nogil
cdef void arena_release(Arena* arena) noexcept
