# Steps whose URL is a v2 infer path (/v2/models/<m>[/versions/<v>]/infer). Bytes go
# exactly as to any HTTP model (KServe's router sends them unchanged); an OIP message,
# or with bridging on a bytes v2 JSON response, goes with the binary tensor
# extension and its answer comes back as an InferResponse (docs/oip.md, "Bridging").
# The HTTP call and the choice are here; the two conversions between a message and
# the wire (engine/backends/v2http.py: encode, decode) are the only Python calls.

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
cdef class V2HttpBackend(Backend):
    """One v2 infer URL. ``encode(body, headers)`` gives (buffers, headers,
    binary_added) to send, a StepResult to answer at once (a body that is no v2
    message: 400), or None to send the bytes as they are; ``decode(status, headers,
    body, binary_added)`` gives the StepResult of the answer (or raises
    UpstreamError). ``bridge_bytes``: Policy.v2_bridge."""

    def __init__(self, Endpoint endpoint, HttpClient client, encode, decode, bint bridge_bytes=False):
        self.plain = HttpBackend(endpoint, client)
        self.encode = encode
        self.decode = decode
        self.bridge_bytes = bridge_bytes
        self.description = endpoint.url

    cdef object call(self, object body, RunContext ctx):
        cdef V2StepCall pending
        cdef HttpClient client = self.plain.client
        if not is_oip(body):
            if not (self.bridge_bytes or ctx.v2_bridge) or not json_is_v2_response(body):
                return self.plain.call(body, ctx)
        out = self.encode(body, ctx.headers)
        if out is None:
            return self.plain.call(body, ctx)
        if type(out) is StepResult:
            return out
        buffers, headers, added = out
        pending = V2StepCall.__new__(V2StepCall)
        if client.loop is None:
            client.loop = _running_loop()
        pending.loop = client.loop
        pending.decode = self.decode
        pending.binary_added = added
        # the client writes the header and the tensors' own buffers (writelines): no join
        pending.call = client.c_request_to(self.plain.endpoint, buffers, headers, ctx.timeout, pending)
        return pending


@cython.final
cdef class V2StepCall(ResponseSink):
    """A v2 message call in flight: the pool's delivery is decoded into the step's
    StepResult, and the StepCall settles with it (no coroutine of its own)."""

    cdef on_response(self, ClientResponse resp):
        self.call = None
        try:
            result = self.decode(resp.status, resp.headers, resp.body, self.binary_added)
        except BaseException as e:
            self.settle(e, True)
            return
        self.settle(result, False)
