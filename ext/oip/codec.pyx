# Open Inference Protocol v2: a protobuf wire codec for ModelInferRequest and
# ModelInferResponse that never copies tensor payload (docs/oip.md).
#
# Parsing walks the wire bytes once over a const pointer and hands raw tensor
# contents out as memoryview slices of the received buffer. Encoding writes the small
# header fields into one C buffer and returns it with references to the tensors'
# own buffers, to be joined (or written with writelines) only by the transport.
cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.mem cimport PyMem_Free
from cpython.unicode cimport PyUnicode_DecodeUTF8, PyUnicode_AsUTF8AndSize
from libc.stdint cimport (uint64_t, int64_t, uint32_t, int32_t, uint16_t, int16_t,
                          uint8_t, int8_t)
from libc.string cimport memcpy

import numpy as _np
from engine.errors import BadRequestError as _OipBadRequest

cdef object _np_frombuffer = _np.frombuffer
cdef object _np_empty = _np.empty

cdef class Message:
    """Base of engine.oip's InferRequest and InferResponse: what makes a step body an
    OIP message rather than bytes (is_oip), with no registration."""


cdef bint is_oip(object body):
    return isinstance(body, Message)


def body_is_oip(body):
    """Whether ``body`` is an InferRequest/InferResponse (not a bytes-like body)."""
    return isinstance(body, Message)


# Datatype codes; the order matches OIP_DATATYPES.
cdef enum OipDtype:
    OIP_DT_BOOL, OIP_DT_UINT8, OIP_DT_UINT16, OIP_DT_UINT32, OIP_DT_UINT64, OIP_DT_INT8,
    OIP_DT_INT16, OIP_DT_INT32, OIP_DT_INT64, OIP_DT_FP16, OIP_DT_FP32, OIP_DT_FP64,
    OIP_DT_BYTES, OIP_DT_BF16

OIP_DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16",
                 "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16")
cdef dict _OIP_DT_CODE = {name: i for i, name in enumerate(OIP_DATATYPES)}
# Element size in raw form; 0 for BYTES (length-prefixed elements).
cdef int[14] _OIP_ITEMSIZE = [1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 0, 2]
# BF16 has no numpy dtype: its elements are exposed as little-endian uint16.
cdef tuple _OIP_NP_DTYPES = tuple(_np.dtype(s) for s in (
    "?", "<u1", "<u2", "<u4", "<u8", "<i1", "<i2", "<i4", "<i8", "<f2", "<f4", "<f8",
    "O", "<u2"))
# InferTensorContents field for each datatype (0: none, raw contents only).
cdef int[14] _OIP_CONTENTS_FIELD = [1, 4, 4, 4, 5, 2, 2, 2, 3, 0, 6, 7, 8, 0]
# A raw tensor this small is copied into the header rather than referenced: one
# more chunk costs more than copying a few hundred bytes.
cdef Py_ssize_t _OIP_INLINE_MAX = 512


cdef inline int _oip_dtype_code(str datatype) except -1:
    code = _OIP_DT_CODE.get(datatype)
    if code is None:
        raise _OipBadRequest(f"unsupported tensor datatype {datatype!r}")
    return <int>code


def oip_itemsize(str datatype):
    """Bytes per element in raw form (0 for BYTES, whose elements vary in size)."""
    return _OIP_ITEMSIZE[_oip_dtype_code(datatype)]


def oip_numpy_dtype(str datatype):
    """The numpy dtype of a datatype's raw elements (uint16 for BF16, object for BYTES)."""
    return _OIP_NP_DTYPES[_oip_dtype_code(datatype)]


cdef extern from *:
    """
    static inline int ige_mul_overflow_i64(int64_t a, int64_t b, int64_t *out) {
        return __builtin_mul_overflow(a, b, out);
    }
    """
    bint _mul_overflow "ige_mul_overflow_i64" (int64_t a, int64_t b, int64_t* out) noexcept nogil

# A shape in an error message shows this many leading and trailing dimensions: a
# message must stay small enough for a gRPC client's metadata limit.
cdef Py_ssize_t _OIP_SHAPE_SHOWN = 8


cdef str _oip_dim_text(object dim):
    # str() of a huge int is slow (and refused past a few thousand digits)
    if -0x8000000000000000 <= dim <= 0xFFFFFFFFFFFFFFFF:
        return str(dim)
    return f"<{dim.bit_length()}-bit integer>"


cdef str _oip_shape_text(tuple shape):
    """``shape`` for an error message, its middle elided when it is long."""
    cdef Py_ssize_t n = len(shape), k = _OIP_SHAPE_SHOWN
    if n <= 2 * k:
        return "[" + ", ".join([_oip_dim_text(d) for d in shape]) + "]"
    return ("[" + ", ".join([_oip_dim_text(d) for d in shape[:k]])
            + f", ... {n - 2 * k} more ..., "
            + ", ".join([_oip_dim_text(d) for d in shape[n - k:]]) + f"] ({n} dimensions)")


cdef int64_t _oip_extent(tuple shape, str name, int64_t unit) except -1:
    """``unit`` * prod(shape), exactly. Every dimension must be in [0, 2**63) and, as
    numpy requires of an array's shape even when a dimension is 0, ``unit`` times the
    product of the nonzero dimensions must stay below 2**63: every tensor accepted
    has a numpy view."""
    cdef int64_t n = unit, d
    cdef int overflow = 0
    cdef bint zero = False
    for dim in shape:
        d = PyLong_AsLongLongAndOverflow(dim, &overflow)
        if overflow or d < 0:
            what = "too large a" if overflow > 0 else "negative"
            raise _OipBadRequest(f"tensor {name!r}: {what} dimension {_oip_dim_text(dim)} "
                                 f"in shape {_oip_shape_text(shape)}")
        if d == 0:
            zero = True
        elif _mul_overflow(n, d, &n):
            what = "element count" if unit == 1 else "size in bytes"
            raise _OipBadRequest(f"tensor {name!r}: shape {_oip_shape_text(shape)} is too "
                                 f"large (its {what} exceeds 2**63-1)")
    return 0 if zero else n


cdef inline int64_t _oip_numel(tuple shape, str name) except -1:
    return _oip_extent(shape, name, 1)


cdef int64_t _oip_nbytes(Tensor t, int code) except -1:
    """Raw bytes of a fixed-size tensor; for BYTES the least a valid buffer holds (a
    4-byte length per element), its shape checked as numpy's object array of the
    elements (8 bytes each)."""
    if code == OIP_DT_BYTES:
        return _oip_extent(t._shape, t.name, 8) // 2
    return _oip_extent(t._shape, t.name, _OIP_ITEMSIZE[code])


def oip_numel(shape):
    """Elements of a tensor of ``shape`` (``[]``: a scalar, 1). BadRequestError for a
    dimension outside [0, 2**63) (the protocol's int64) or a count past it, counting
    only the nonzero dimensions, as numpy does."""
    return _oip_numel(tuple(shape), "")


def oip_nbytes(str datatype, shape):
    """Bytes of the raw data of a ``datatype`` tensor of ``shape`` (BYTES: the least
    a buffer can hold, a 4-byte length per element); BadRequestError as for
    ``oip_numel`` when the size passes 2**63-1."""
    cdef Tensor t = Tensor.__new__(Tensor)
    t.name = ""
    t.datatype = datatype
    t._shape = tuple(shape)
    return _oip_nbytes(t, _oip_dtype_code(datatype))


cdef Py_ssize_t _oip_bytes_count(const unsigned char* p, Py_ssize_t size) except -2:
    """Elements in a length-prefixed BYTES buffer, -1 if the prefixes do not fit."""
    cdef Py_ssize_t pos = 0, count = 0
    cdef uint32_t k
    while pos < size:
        if size - pos < 4:
            return -1
        k = (<uint32_t>p[pos] | (<uint32_t>p[pos + 1] << 8) | (<uint32_t>p[pos + 2] << 16)
             | (<uint32_t>p[pos + 3] << 24))
        pos += 4
        if <Py_ssize_t>k > size - pos:
            return -1
        pos += k
        count += 1
    return count


cdef int _oip_check_data(Tensor t, int code, const unsigned char* p, Py_ssize_t size,
                         bint walk_bytes) except -1:
    """Size of fixed-size data against the shape; BYTES prefixes when ``walk_bytes``.

    The expected size is exact (checked arithmetic), so a shape claiming more than
    the buffer holds is refused here, before anything is allocated for it."""
    cdef int64_t nbytes = _oip_nbytes(t, code)
    cdef Py_ssize_t count
    if code != OIP_DT_BYTES:
        if size != nbytes:
            raise _OipBadRequest(
                f"tensor {t.name!r}: {size} bytes of data for {t.datatype} "
                f"shape {_oip_shape_text(t._shape)} (expected {nbytes})")
        return 0
    if size < nbytes:
        # each element has its 4-byte length: this many elements cannot fit
        raise _OipBadRequest(f"tensor {t.name!r}: {size} bytes of BYTES data cannot hold "
                             f"the elements of shape {_oip_shape_text(t._shape)}")
    if walk_bytes:
        count = _oip_bytes_count(p, size)
        if count < 0:
            raise _OipBadRequest(f"tensor {t.name!r}: malformed BYTES data "
                                 "(4-byte length prefixes do not match its size)")
        if count != nbytes // 4:
            raise _OipBadRequest(f"tensor {t.name!r}: {count} BYTES elements "
                                 f"for shape {_oip_shape_text(t._shape)}")
    return 0


@cython.final
cdef class Tensor:
    """One OIP v2 tensor: ``data`` holds its elements in raw form.

    Raw form is the flattened row-major little-endian element bytes (BOOL one byte
    each, BYTES each element a 4-byte little-endian length then its bytes), the
    layout of gRPC ``raw_*_contents`` and of the HTTP binary tensor extension.
    ``data`` is any contiguous buffer; tensors parsed from the wire hold memoryview
    slices of the received message.
    """
    cdef public str name
    cdef public str datatype
    cdef tuple _shape
    cdef public dict parameters
    cdef public object data

    def __init__(self, str name, str datatype, shape=(), parameters=None, data=b""):
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.parameters = dict(parameters) if parameters else {}
        self.data = data
        self.validate()

    @property
    def shape(self):
        """The dimensions, a tuple of ints ([] is a scalar); any iterable may be set."""
        return self._shape

    @shape.setter
    def shape(self, value):
        self._shape = tuple([int(d) for d in value])

    def validate(self):
        """Raise BadRequestError unless ``data`` matches datatype and shape."""
        _oip_validate(self)

    def as_numpy(self):
        """The elements as a numpy array of ``shape``.

        Fixed-size datatypes give a read-only ``np.frombuffer`` view sharing memory
        with ``data`` (BF16: uint16 bit patterns, see ``engine.oip.bf16_to_float32``);
        BYTES gives a new object array of ``bytes``.
        """
        cdef int code = _oip_dtype_code(self.datatype)
        if code != OIP_DT_BYTES:
            return _np_frombuffer(self.data, _OIP_NP_DTYPES[code]).reshape(self._shape)
        _oip_validate(self)       # shape or data may have been replaced since
        elements = _oip_bytes_elements(self.data, _oip_nbytes(self, code) // 4)
        return elements.reshape(self._shape)

    def __eq__(self, other):
        if not isinstance(other, Tensor):
            return NotImplemented
        cdef Tensor o = <Tensor>other
        return (self.name == o.name and self.datatype == o.datatype and self._shape == o._shape
                and self.parameters == o.parameters and bytes(self.data) == bytes(o.data))

    __hash__ = None

    def __repr__(self):
        return (f"Tensor({self.name!r}, {self.datatype!r}, {list(self._shape)!r}, "
                f"parameters={self.parameters!r}, nbytes={len(memoryview(self.data).cast('B'))})")


cdef int _oip_validate(Tensor t) except -1:
    cdef int code = _oip_dtype_code(t.datatype)
    cdef Py_buffer view
    PyObject_GetBuffer(t.data, &view, PyBUF_SIMPLE)
    try:
        _oip_check_data(t, code, <const unsigned char*>view.buf, view.len, True)
    finally:
        PyBuffer_Release(&view)
    return 0


@cython.final
cdef class RequestedOutput:
    """An output named in a request's ``outputs``, with its parameters."""
    cdef public str name
    cdef public dict parameters

    def __init__(self, str name, parameters=None):
        self.name = name
        self.parameters = dict(parameters) if parameters else {}

    def __eq__(self, other):
        if not isinstance(other, RequestedOutput):
            return NotImplemented
        return (self.name == (<RequestedOutput>other).name
                and self.parameters == (<RequestedOutput>other).parameters)

    __hash__ = None

    def __repr__(self):
        return f"RequestedOutput({self.name!r}, parameters={self.parameters!r})"


cdef object _oip_bytes_elements(object data, Py_ssize_t numel):
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef Py_ssize_t pos = 0, i
    cdef uint32_t k
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        # counted before the array is made: the shape alone may claim any number
        if _oip_bytes_count(p, view.len) != numel:
            raise _OipBadRequest("malformed BYTES data")
        out = _np_empty(numel, dtype=object)
        for i in range(numel):
            k = (<uint32_t>p[pos] | (<uint32_t>p[pos + 1] << 8) | (<uint32_t>p[pos + 2] << 16)
                 | (<uint32_t>p[pos + 3] << 24))
            pos += 4
            out[i] = PyBytes_FromStringAndSize(<const char*>p + pos, k)
            pos += k
    finally:
        PyBuffer_Release(&view)
    return out


# ---------------------------------------------------------------- wire reading

cdef struct _OipRd:
    const unsigned char* p
    Py_ssize_t pos
    Py_ssize_t end


cdef inline int _oip_rd_varint(_OipRd* r, uint64_t* out) except -1:
    cdef uint64_t v = 0
    cdef unsigned int shift = 0
    cdef unsigned char b
    while True:
        if r.pos >= r.end:
            raise _OipBadRequest("malformed protobuf message: truncated varint")
        b = r.p[r.pos]
        r.pos += 1
        v |= (<uint64_t>(b & 0x7F)) << shift
        if b < 0x80:
            out[0] = v
            return 0
        shift += 7
        if shift >= 70:
            raise _OipBadRequest("malformed protobuf message: varint longer than 10 bytes")


cdef inline int _oip_rd_len(_OipRd* r, Py_ssize_t* start) except -1:
    """Read a length prefix; ``start`` gets the payload offset, ``r.pos`` moves past it."""
    cdef uint64_t n
    _oip_rd_varint(r, &n)
    if n > <uint64_t>(r.end - r.pos):
        raise _OipBadRequest("malformed protobuf message: length beyond end of message")
    start[0] = r.pos
    r.pos += <Py_ssize_t>n
    return 0


cdef int _oip_rd_skip(_OipRd* r, uint64_t tag, int depth) except -1:
    cdef uint64_t v, inner
    cdef Py_ssize_t start
    cdef int wt = tag & 7
    if wt == 0:
        _oip_rd_varint(r, &v)
    elif wt == 1 or wt == 5:
        if r.end - r.pos < (8 if wt == 1 else 4):
            raise _OipBadRequest("malformed protobuf message: truncated fixed-size field")
        r.pos += 8 if wt == 1 else 4
    elif wt == 2:
        _oip_rd_len(r, &start)
    elif wt == 3:
        # A group (proto2 legacy) ends at the end-group tag of the same field number.
        if depth > 64:
            raise _OipBadRequest("malformed protobuf message: groups nested too deeply")
        while True:
            _oip_rd_varint(r, &inner)
            if (inner & 7) == 4:
                if (inner >> 3) != (tag >> 3):
                    raise _OipBadRequest("malformed protobuf message: mismatched end group")
                return 0
            _oip_rd_skip(r, inner, depth + 1)
    else:
        raise _OipBadRequest(f"malformed protobuf message: wire type {wt}")
    return 0


cdef inline int _oip_rd_tag(_OipRd* r, uint64_t* tag) except -1:
    _oip_rd_varint(r, tag)
    if (tag[0] >> 3) == 0:
        raise _OipBadRequest("malformed protobuf message: field number 0")
    return 0


cdef inline str _oip_rd_str(_OipRd* r):
    cdef Py_ssize_t start
    _oip_rd_len(r, &start)
    try:
        return PyUnicode_DecodeUTF8(<const char*>r.p + start, r.pos - start, NULL)
    except UnicodeDecodeError as e:
        raise _OipBadRequest(f"protobuf string field is not valid UTF-8: {e}") from None



cdef object _oip_rd_param_value(const unsigned char* p, Py_ssize_t start, Py_ssize_t stop,
                                object value):
    """Merge one InferParameter message into ``value``: the last choice set wins."""
    cdef _OipRd s = _OipRd(p, start, stop)
    cdef uint64_t tag, v
    cdef double d = 0
    while s.pos < s.end:
        _oip_rd_tag(&s, &tag)
        if tag == (1 << 3):
            _oip_rd_varint(&s, &v)
            value = v != 0
        elif tag == (2 << 3):
            _oip_rd_varint(&s, &v)
            value = <int64_t>v
        elif tag == (3 << 3 | 2):
            value = _oip_rd_str(&s)
        elif tag == (4 << 3 | 1):
            if s.end - s.pos < 8:
                raise _OipBadRequest("malformed protobuf message: truncated double")
            memcpy(&d, s.p + s.pos, 8)
            s.pos += 8
            value = d
        elif tag == (5 << 3):
            _oip_rd_varint(&s, &v)
            value = v
        else:
            _oip_rd_skip(&s, tag, 0)
    return value


cdef object _OIP_UNSET = object()


cdef int _oip_rd_param_entry(const unsigned char* p, Py_ssize_t start, Py_ssize_t stop,
                             dict params) except -1:
    """One map<string, InferParameter> entry; a later entry for a key replaces it."""
    cdef _OipRd s = _OipRd(p, start, stop)
    cdef uint64_t tag
    cdef Py_ssize_t vstart
    key = ""
    value = _OIP_UNSET
    while s.pos < s.end:
        _oip_rd_tag(&s, &tag)
        if tag == (1 << 3 | 2):
            key = _oip_rd_str(&s)
        elif tag == (2 << 3 | 2):
            _oip_rd_len(&s, &vstart)
            value = _oip_rd_param_value(p, vstart, s.pos, value)
        else:
            _oip_rd_skip(&s, tag, 0)
    # An entry without a value is a parameter with no choice set.
    params[key] = None if value is _OIP_UNSET else value
    return 0


cdef int _oip_rd_shape(_OipRd* s, uint64_t tag, list shape) except -1:
    """repeated int64, packed (wire type 2) or one element per field (wire type 0)."""
    cdef uint64_t v
    cdef Py_ssize_t start, stop
    if (tag & 7) == 0:
        _oip_rd_varint(s, &v)
        shape.append(<int64_t>v)
        return 0
    _oip_rd_len(s, &start)
    stop = s.pos
    cdef _OipRd sub = _OipRd(s.p, start, stop)
    while sub.pos < sub.end:
        _oip_rd_varint(&sub, &v)
        shape.append(<int64_t>v)
    return 0


cdef Tensor _oip_rd_tensor(const unsigned char* p, Py_ssize_t start, Py_ssize_t stop,
                           list contents):
    """InferInputTensor / InferOutputTensor; ``contents`` gets its (start, stop) ranges."""
    cdef _OipRd s = _OipRd(p, start, stop)
    cdef uint64_t tag
    cdef Py_ssize_t sub
    cdef Tensor t = Tensor.__new__(Tensor)
    cdef list shape = []
    t.name = ""
    t.datatype = ""
    t.parameters = {}
    t.data = None
    while s.pos < s.end:
        _oip_rd_tag(&s, &tag)
        if tag == (1 << 3 | 2):
            t.name = _oip_rd_str(&s)
        elif tag == (2 << 3 | 2):
            t.datatype = _oip_rd_str(&s)
        elif tag == (3 << 3 | 2) or tag == (3 << 3):
            _oip_rd_shape(&s, tag, shape)
        elif tag == (4 << 3 | 2):
            _oip_rd_len(&s, &sub)
            _oip_rd_param_entry(p, sub, s.pos, t.parameters)
        elif tag == (5 << 3 | 2):
            # A repeated singular message merges; for all-repeated contents that is
            # concatenation, so the ranges are decoded in order later.
            _oip_rd_len(&s, &sub)
            contents.append((sub, s.pos))
        else:
            _oip_rd_skip(&s, tag, 0)
    t._shape = tuple(shape)
    return t


cdef RequestedOutput _oip_rd_requested(const unsigned char* p, Py_ssize_t start,
                                       Py_ssize_t stop):
    cdef _OipRd s = _OipRd(p, start, stop)
    cdef uint64_t tag
    cdef Py_ssize_t sub
    cdef RequestedOutput o = RequestedOutput.__new__(RequestedOutput)
    o.name = ""
    o.parameters = {}
    while s.pos < s.end:
        _oip_rd_tag(&s, &tag)
        if tag == (1 << 3 | 2):
            o.name = _oip_rd_str(&s)
        elif tag == (2 << 3 | 2):
            _oip_rd_len(&s, &sub)
            _oip_rd_param_entry(p, sub, s.pos, o.parameters)
        else:
            _oip_rd_skip(&s, tag, 0)
    return o


# ------------------------------------------------- varints into a ByteBuf

cdef inline int _oip_wb_varint(ByteBuf* w, uint64_t v) except -1:
    if w.len + 10 > w.cap:
        buf_reserve(w, 10)
    while v >= 0x80:
        w.data[w.len] = <char>((v & 0x7F) | 0x80)
        w.len += 1
        v >>= 7
    w.data[w.len] = <char>v
    w.len += 1
    return 0


cdef inline int _oip_varint_size(uint64_t v) noexcept:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


# ------------------------------------------------------------ typed contents

cdef int _oip_contents_put(ByteBuf* out, int code, uint64_t v, const char* name) except -1:
    """Append one varint-carried element in the raw form of datatype ``code``."""
    cdef int32_t i32 = <int32_t>v
    cdef uint32_t u32 = <uint32_t>v
    cdef uint8_t b
    cdef int8_t i8
    cdef int16_t i16
    cdef uint16_t u16
    if code == OIP_DT_BOOL:
        b = v != 0
        return buf_put(out, &b, 1)
    if code == OIP_DT_INT8 or code == OIP_DT_INT16:
        if (code == OIP_DT_INT8 and (i32 < -128 or i32 > 127)) or (i32 < -32768 or i32 > 32767):
            raise _OipBadRequest(f"tensor {name.decode()!r}: int_contents value {i32} "
                                 f"out of range for {OIP_DATATYPES[code]}")
        if code == OIP_DT_INT8:
            i8 = <int8_t>i32
            return buf_put(out, &i8, 1)
        i16 = <int16_t>i32
        return buf_put(out, &i16, 2)
    if code == OIP_DT_INT32:
        return buf_put(out, &i32, 4)
    if code == OIP_DT_UINT8 or code == OIP_DT_UINT16:
        if u32 > (255U if code == OIP_DT_UINT8 else 65535U):
            raise _OipBadRequest(f"tensor {name.decode()!r}: uint_contents value {u32} "
                                 f"out of range for {OIP_DATATYPES[code]}")
        if code == OIP_DT_UINT8:
            b = <uint8_t>u32
            return buf_put(out, &b, 1)
        u16 = <uint16_t>u32
        return buf_put(out, &u16, 2)
    if code == OIP_DT_UINT32:
        return buf_put(out, &u32, 4)
    return buf_put(out, &v, 8)  # INT64, UINT64: the varint is the 64-bit pattern


cdef object _oip_contents_decode(object whole, const unsigned char* p, list ranges,
                                 Tensor t, int code):
    """Raw-form data of a tensor sent with typed InferTensorContents."""
    cdef int want = _OIP_CONTENTS_FIELD[code]
    cdef int field, wt
    cdef Py_ssize_t start, stop, sub, k
    cdef uint64_t tag, v
    cdef uint32_t len32
    cdef _OipRd s
    cdef _OipRd packed
    cdef ByteBuf out = ByteBuf(NULL, 0, 0)
    cdef bytes tname = t.name.encode()
    cdef Py_ssize_t single_start = -1, single_stop = -1, pieces = 0
    try:
        for rng in ranges:
            start, stop = rng
            s = _OipRd(p, start, stop)
            while s.pos < s.end:
                _oip_rd_tag(&s, &tag)
                field = <int>(tag >> 3)
                wt = tag & 7
                if field < 1 or field > 8:
                    _oip_rd_skip(&s, tag, 0)
                    continue
                if field != want:
                    raise _OipBadRequest(
                        f"tensor {t.name!r}: contents field {field} does not match "
                        f"datatype {t.datatype}")
                if field == 8:
                    if wt != 2:
                        _oip_rd_skip(&s, tag, 0)
                        continue
                    _oip_rd_len(&s, &sub)
                    k = s.pos - sub
                    if k > 0xFFFFFFFF:
                        raise _OipBadRequest(f"tensor {t.name!r}: BYTES element over 4 GiB")
                    len32 = <uint32_t>k
                    buf_put(&out, &len32, 4)
                    buf_put(&out, p + sub, k)
                elif field == 6 or field == 7:
                    k = 4 if field == 6 else 8
                    if wt == 2:
                        _oip_rd_len(&s, &sub)
                        if (s.pos - sub) % k:
                            raise _OipBadRequest(f"tensor {t.name!r}: packed {t.datatype} "
                                                 "contents of a partial element")
                        # Packed little-endian floats already are raw form: one packed
                        # run (the usual case) is handed out as a slice, uncopied.
                        if pieces == 0:
                            single_start, single_stop = sub, s.pos
                        else:
                            if pieces == 1:
                                buf_put(&out, p + single_start, single_stop - single_start)
                            buf_put(&out, p + sub, s.pos - sub)
                        pieces += 1
                    elif wt == (5 if field == 6 else 1):
                        if s.end - s.pos < k:
                            raise _OipBadRequest("malformed protobuf message: truncated float")
                        if pieces == 1:
                            buf_put(&out, p + single_start, single_stop - single_start)
                        pieces += 2
                        buf_put(&out, p + s.pos, k)
                        s.pos += k
                    else:
                        _oip_rd_skip(&s, tag, 0)
                elif wt == 2:
                    _oip_rd_len(&s, &sub)
                    packed = _OipRd(p, sub, s.pos)
                    while packed.pos < packed.end:
                        _oip_rd_varint(&packed, &v)
                        _oip_contents_put(&out, code, v, tname)
                elif wt == 0:
                    _oip_rd_varint(&s, &v)
                    _oip_contents_put(&out, code, v, tname)
                else:
                    _oip_rd_skip(&s, tag, 0)
        if pieces == 1:
            return whole[single_start:single_stop]
        return PyBytes_FromStringAndSize(out.data, out.len) if out.len else b""
    finally:
        PyMem_Free(out.data)


cdef int _oip_contents_encode(ByteBuf* w, Tensor t, int code) except -1:
    """Append the InferTensorContents of ``t`` (field 5 of the tensor) to ``w``."""
    cdef Py_buffer view
    cdef const unsigned char* p
    cdef Py_ssize_t n, i, pos, body = 0
    cdef int item = _OIP_ITEMSIZE[code]
    cdef int field = _OIP_CONTENTS_FIELD[code]
    cdef uint64_t v
    cdef uint32_t k
    PyObject_GetBuffer(t.data, &view, PyBUF_SIMPLE)
    try:
        p = <const unsigned char*>view.buf
        n = view.len
        # Data may have been replaced since construction: the loops below trust it.
        _oip_check_data(t, code, p, n, True)
        if n == 0:
            return 0
        if code == OIP_DT_BYTES:
            pos = 0
            while pos < n:
                memcpy(&k, p + pos, 4)
                body += 1 + _oip_varint_size(k) + k
                pos += 4 + k
            _oip_wb_varint(w, 5 << 3 | 2)
            _oip_wb_varint(w, body)
            pos = 0
            while pos < n:
                memcpy(&k, p + pos, 4)
                _oip_wb_varint(w, 8 << 3 | 2)
                _oip_wb_varint(w, k)
                buf_put(w, p + pos + 4, k)
                pos += 4 + k
            return 0
        if code == OIP_DT_FP32 or code == OIP_DT_FP64:
            _oip_wb_varint(w, 5 << 3 | 2)
            _oip_wb_varint(w, 1 + _oip_varint_size(n) + n)
            _oip_wb_varint(w, field << 3 | 2)
            _oip_wb_varint(w, n)
            return buf_put(w, p, n)
        for i in range(0, n, item):
            body += _oip_varint_size(_oip_raw_as_varint(p + i, code))
        _oip_wb_varint(w, 5 << 3 | 2)
        _oip_wb_varint(w, 1 + _oip_varint_size(body) + body)
        _oip_wb_varint(w, field << 3 | 2)
        _oip_wb_varint(w, body)
        for i in range(0, n, item):
            _oip_wb_varint(w, _oip_raw_as_varint(p + i, code))
        return 0
    finally:
        PyBuffer_Release(&view)


cdef inline uint64_t _oip_raw_as_varint(const unsigned char* q, int code) noexcept:
    """The varint value protobuf writes for one raw element (signed: sign-extended)."""
    cdef int8_t i8
    cdef int16_t i16
    cdef int32_t i32
    cdef uint16_t u16
    cdef uint32_t u32
    cdef uint64_t u64
    if code == OIP_DT_BOOL:
        return q[0] != 0
    if code == OIP_DT_UINT8:
        return q[0]
    if code == OIP_DT_INT8:
        i8 = <int8_t>q[0]
        return <uint64_t><int64_t>i8
    if code == OIP_DT_INT16:
        memcpy(&i16, q, 2)
        return <uint64_t><int64_t>i16
    if code == OIP_DT_UINT16:
        memcpy(&u16, q, 2)
        return u16
    if code == OIP_DT_INT32:
        memcpy(&i32, q, 4)
        return <uint64_t><int64_t>i32
    if code == OIP_DT_UINT32:
        memcpy(&u32, q, 4)
        return u32
    memcpy(&u64, q, 8)
    return u64


# ------------------------------------------------------------ message parsing

cdef tuple _oip_parse(object buf, int tensor_field, int requested_field, int raw_field,
                      str raw_name):
    cdef Py_buffer view
    cdef _OipRd s
    cdef uint64_t tag
    cdef Py_ssize_t sub, i
    cdef Tensor t
    cdef int code
    cdef str model_name = "", model_version = "", request_id = ""
    cdef dict params = {}
    cdef list tensors = [], requested = [], raw = [], contents = []
    whole = buf if type(buf) is memoryview else memoryview(buf)
    if whole.ndim != 1 or whole.itemsize != 1:
        whole = whole.cast("B")
    PyObject_GetBuffer(whole, &view, PyBUF_SIMPLE)
    try:
        s = _OipRd(<const unsigned char*>view.buf, 0, view.len)
        while s.pos < s.end:
            _oip_rd_tag(&s, &tag)
            if tag == (1 << 3 | 2):
                model_name = _oip_rd_str(&s)
            elif tag == (2 << 3 | 2):
                model_version = _oip_rd_str(&s)
            elif tag == (3 << 3 | 2):
                request_id = _oip_rd_str(&s)
            elif tag == (4 << 3 | 2):
                _oip_rd_len(&s, &sub)
                _oip_rd_param_entry(s.p, sub, s.pos, params)
            elif tag == <uint64_t>(tensor_field << 3 | 2):
                _oip_rd_len(&s, &sub)
                ranges = []
                tensors.append(_oip_rd_tensor(s.p, sub, s.pos, ranges))
                contents.append(ranges)
            elif tag == <uint64_t>(requested_field << 3 | 2):
                _oip_rd_len(&s, &sub)
                requested.append(_oip_rd_requested(s.p, sub, s.pos))
            elif tag == <uint64_t>(raw_field << 3 | 2):
                _oip_rd_len(&s, &sub)
                raw.append(whole[sub:s.pos])
            else:
                _oip_rd_skip(&s, tag, 0)
        if raw and len(raw) != len(tensors):
            raise _OipBadRequest(f"{len(raw)} {raw_name} entries for {len(tensors)} tensors")
        for i in range(len(tensors)):
            t = <Tensor>tensors[i]
            code = _oip_dtype_code(t.datatype)
            if raw:
                if contents[i]:
                    raise _OipBadRequest(f"tensor {t.name!r} has contents although "
                                         f"{raw_name} is used")
                t.data = raw[i]
            elif contents[i]:
                t.data = _oip_contents_decode(whole, s.p, contents[i], t, code)
            else:
                t.data = b""
            _oip_validate(t)
    finally:
        PyBuffer_Release(&view)
    return model_name, model_version, request_id, params, tensors, requested


def oip_parse_request(buf):
    """Parse ModelInferRequest wire bytes (any contiguous buffer).

    Returns ``(model_name, model_version, id, parameters, inputs, outputs)``: inputs
    are ``Tensor`` whose raw data are memoryview slices of ``buf``; outputs are
    ``RequestedOutput``. Raises BadRequestError on malformed or inconsistent input.
    """
    return _oip_parse(buf, 5, 6, 7, "raw_input_contents")


def oip_parse_response(buf):
    """Parse ModelInferResponse wire bytes; like ``oip_parse_request`` without
    requested outputs: ``(model_name, model_version, id, parameters, outputs, [])``."""
    return _oip_parse(buf, 5, -1, 6, "raw_output_contents")


# ------------------------------------------------------------ message writing

cdef int _oip_wr_str(ByteBuf* w, int field, str text, bint always) except -1:
    cdef Py_ssize_t n
    cdef const char* c
    if not text and not always:
        return 0  # proto3: an empty string is not written
    c = PyUnicode_AsUTF8AndSize(text, &n)
    _oip_wb_varint(w, field << 3 | 2)
    _oip_wb_varint(w, n)
    return buf_put(w, c, n)


cdef int _oip_wr_params(ByteBuf* w, int field, dict params) except -1:
    cdef Py_ssize_t klen, slen = 0, vsize
    cdef const char* kp
    cdef const char* sp = NULL
    cdef uint64_t iv = 0
    cdef int vtag
    cdef double d = 0
    for key, value in params.items():
        if type(key) is not str:
            raise _OipBadRequest(f"parameter name {key!r} is not a string")
        kp = PyUnicode_AsUTF8AndSize(key, &klen)
        if value is None:
            vtag = 0
            vsize = 0
        elif value is True or value is False:
            vtag = 1 << 3
            iv = value is True
            vsize = 2
        elif isinstance(value, int):
            if -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
                vtag = 2 << 3
                iv = <uint64_t><int64_t>value
            elif 0 <= value <= 0xFFFFFFFFFFFFFFFF:
                vtag = 5 << 3
                iv = <uint64_t>value
            else:
                raise _OipBadRequest(f"parameter {key!r}: {value} does not fit 64 bits")
            vsize = 1 + _oip_varint_size(iv)
        elif isinstance(value, float):
            vtag = 4 << 3 | 1
            d = value
            vsize = 9
        elif isinstance(value, str):
            vtag = 3 << 3 | 2
            sp = PyUnicode_AsUTF8AndSize(value, &slen)
            vsize = 1 + _oip_varint_size(slen) + slen
        else:
            raise _OipBadRequest(f"parameter {key!r}: {type(value).__name__} is not "
                                 "a bool, int, float, string or None")
        _oip_wb_varint(w, field << 3 | 2)
        _oip_wb_varint(w, 1 + _oip_varint_size(klen) + klen + 1 + _oip_varint_size(vsize) + vsize)
        _oip_wb_varint(w, 1 << 3 | 2)
        _oip_wb_varint(w, klen)
        buf_put(w, kp, klen)
        _oip_wb_varint(w, 2 << 3 | 2)
        _oip_wb_varint(w, vsize)
        if vtag == (4 << 3 | 1):
            _oip_wb_varint(w, vtag)
            buf_put(w, &d, 8)
        elif vtag == (3 << 3 | 2):
            _oip_wb_varint(w, vtag)
            _oip_wb_varint(w, slen)
            buf_put(w, sp, slen)
        elif vtag:
            _oip_wb_varint(w, vtag)
            _oip_wb_varint(w, iv)
    return 0


cdef int _oip_wr_tensor(ByteBuf* w, ByteBuf* tb, int field, Tensor t, bint raw) except -1:
    cdef Py_ssize_t body = 0
    cdef int64_t d
    cdef int overflow = 0
    tb.len = 0
    _oip_wr_str(tb, 1, t.name, False)
    _oip_wr_str(tb, 2, t.datatype, False)
    if t._shape:
        for dim in t._shape:
            # the shape may have been set since the tensor was checked (its size is
            # checked again with the data)
            d = PyLong_AsLongLongAndOverflow(dim, &overflow)
            if overflow or d < 0:
                _oip_numel(t._shape, t.name)    # raises, naming the dimension
            body += _oip_varint_size(<uint64_t>d)
        _oip_wb_varint(tb, 3 << 3 | 2)
        _oip_wb_varint(tb, body)
        for dim in t._shape:
            d = dim
            _oip_wb_varint(tb, <uint64_t>d)
    _oip_wr_params(tb, 4, t.parameters)
    if not raw:
        _oip_contents_encode(tb, t, _oip_dtype_code(t.datatype))
    _oip_wb_varint(w, field << 3 | 2)
    _oip_wb_varint(w, tb.len)
    return buf_put(w, tb.data, tb.len)


cdef list _oip_encode(str model_name, str model_version, str request_id, dict params,
                      list tensors, list requested, int tensor_field, int requested_field,
                      int raw_field, bint raw):
    cdef ByteBuf w = ByteBuf(NULL, 0, 0)
    cdef ByteBuf tb = ByteBuf(NULL, 0, 0)
    cdef Py_buffer view
    cdef Py_ssize_t n
    cdef list chunks = []
    cdef Tensor t
    cdef RequestedOutput o
    cdef int code
    if not raw:
        # FP16 and BF16 have no typed contents field: such a message must go raw.
        for t in tensors:
            code = _oip_dtype_code(t.datatype)
            if code == OIP_DT_FP16 or code == OIP_DT_BF16:
                raw = True
                break
    try:
        _oip_wr_str(&w, 1, model_name, False)
        _oip_wr_str(&w, 2, model_version, False)
        _oip_wr_str(&w, 3, request_id, False)
        _oip_wr_params(&w, 4, params)
        for t in tensors:
            _oip_wr_tensor(&w, &tb, tensor_field, t, raw)
        for o in requested:
            tb.len = 0
            _oip_wr_str(&tb, 1, o.name, False)
            _oip_wr_params(&tb, 2, o.parameters)
            _oip_wb_varint(&w, requested_field << 3 | 2)
            _oip_wb_varint(&w, tb.len)
            buf_put(&w, tb.data, tb.len)
        if raw:
            for t in tensors:
                PyObject_GetBuffer(t.data, &view, PyBUF_SIMPLE)
                try:
                    n = view.len
                    _oip_check_data(t, _oip_dtype_code(t.datatype),
                                    <const unsigned char*>view.buf, n, False)
                    _oip_wb_varint(&w, raw_field << 3 | 2)
                    _oip_wb_varint(&w, n)
                    if n <= _OIP_INLINE_MAX:
                        buf_put(&w, view.buf, n)
                        continue
                finally:
                    PyBuffer_Release(&view)
                chunks.append(PyBytes_FromStringAndSize(w.data, w.len))
                chunks.append(t.data)
                w.len = 0
        if w.len or not chunks:
            chunks.append(PyBytes_FromStringAndSize(w.data, w.len))
    finally:
        PyMem_Free(w.data)
        PyMem_Free(tb.data)
    return chunks


def oip_encode_request(str model_name, str model_version, str id, dict parameters,
                       list inputs, list outputs, bint raw=True):
    """Encode a ModelInferRequest as a list of buffers whose concatenation is the message.

    Header fields are written into new bytes objects; each raw tensor larger than
    a few hundred bytes appears in the list as its own ``data`` object, uncopied.
    ``raw=False`` writes typed ``contents`` instead (unless a tensor is FP16/BF16,
    which only travel raw). ``inputs`` are ``Tensor``, ``outputs`` ``RequestedOutput``.
    """
    return _oip_encode(model_name, model_version, id, parameters, inputs, outputs,
                       5, 6, 7, raw)


def oip_encode_response(str model_name, str model_version, str id, dict parameters,
                        list outputs, bint raw=True):
    """Encode a ModelInferResponse; see ``oip_encode_request``."""
    return _oip_encode(model_name, model_version, id, parameters, outputs, [],
                       5, -1, 6, raw)
