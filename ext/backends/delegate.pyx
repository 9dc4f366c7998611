# Steps whose backend is written in Python (gRPC, HTTP v2 messages).

# top-level keys, so a tensor or parameter named "inputs" does not count
cdef Path _V2_INPUTS = Path("inputs")
cdef Path _V2_OUTPUTS = Path("outputs")


cdef bint json_is_v2_response(object body) except -1:
    """Whether a bytes body holds a v2 JSON response (top-level "outputs" and no
    "inputs"): the only bytes a v2 step converts, and only when bridging is on.
    memmem (http/common.pyx) runs at memory speed and rejects most other bodies; the
    GJSON paths then look at top-level keys only."""
    cdef Py_buffer view
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        if memmem(view.buf, view.len, b'"outputs"', 9) == NULL:
            return False
        return (not _V2_INPUTS.c_exists(<const char*>view.buf, view.len)
                and _V2_OUTPUTS.c_exists(<const char*>view.buf, view.len))
    finally:
        PyBuffer_Release(&view)


@cython.final
cdef class DelegateBackend(Backend):
    """A backend implemented in Python (gRPC, HTTP v2): ``impl(body, ctx)`` returns a
    StepResult or an awaitable of one. These protocols carry tensors, where the
    Python call is small next to the payload.

    With ``plain`` (an HTTP v2 URL), bytes bodies go to that backend unchanged,
    unlooked at, as KServe's router sends them; only with bridging on (``bridge_bytes``,
    Policy.v2_bridge, or a request that entered as a message) does a bytes v2 response
    go to ``impl`` instead, whose outputs become the step's inputs."""

    def __init__(self, impl, str description, Backend plain=None, bint bridge_bytes=False):
        self.impl = impl
        self.description = description
        self.plain = plain
        self.bridge_bytes = bridge_bytes

    cdef object call(self, object body, RunContext ctx):
        if self.plain is not None and not is_oip(body):
            if not (self.bridge_bytes or ctx.v2_bridge) or not json_is_v2_response(body):
                return self.plain.call(body, ctx)
        return self.impl(body, ctx)
