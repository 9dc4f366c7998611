# Protocol bridging (docs/oip.md, "Bridging"): a step body is either a bytes-like
# object (JSON or any payload, the KServe v1 path, untouched here) or an
# engine.oip.InferRequest / InferResponse. The executor only needs to know which one it
# holds, so these hooks are two type-pointer compares on the bytes path; everything
# that converts between protocols lives in engine/bridge.py, bound here once by
# engine.oip at import (before it, no OIP object can exist).

cdef object _oip_request_type = None
cdef object _oip_response_type = None
cdef object _oip_header_json = None     # message -> JSON header bytes (no tensor data)
cdef object _oip_merge = None           # (keys, bodies) -> InferResponse
cdef object _oip_json_body = None       # message -> v2 JSON request bytes (v1 backends)
cdef object _oip_local_call = None      # (fn, wants_headers, message, ctx) -> result
cdef object _oip_v2_front = None        # (app, request, model) -> awaitable of HttpResponse
cdef object _oip_http_answer = None     # message -> bytes (v2 JSON) for a plain HTTP answer


def bridge_register(request_type, response_type, *, header_json, merge, json_body,
                    local_call, v2_front, http_answer):
    """Bind engine.bridge's converters (called once by engine.oip at import)."""
    global _oip_request_type, _oip_response_type, _oip_header_json, _oip_merge
    global _oip_json_body, _oip_local_call, _oip_v2_front, _oip_http_answer
    _oip_request_type = request_type
    _oip_response_type = response_type
    _oip_header_json = header_json
    _oip_merge = merge
    _oip_json_body = json_body
    _oip_local_call = local_call
    _oip_v2_front = v2_front
    _oip_http_answer = http_answer


cdef bint is_oip(object body):
    cdef object t = type(body)
    return t is _oip_request_type or t is _oip_response_type


def body_is_oip(body):
    """Whether ``body`` is an InferRequest/InferResponse (not a bytes-like body)."""
    return is_oip(body)


cdef object oip_condition_body(object body):
    """The bytes a condition is evaluated on: the message's JSON header."""
    return _oip_header_json(body)


cdef bint ensemble_has_oip(list outcomes):
    for o in outcomes:
        if type(o) is StepResult and is_oip((<StepResult>o).body):
            return True
    return False


cdef object oip_merge_ensemble(PlanNode node, list outcomes):
    """An Ensemble in which some step answered an OIP message: one InferResponse with
    every step's outputs named ``<key>.<output>``, steps in Go's key order."""
    cdef PlanStep step
    keys, bodies = [], []
    for i in node.ensemble_order:
        step = <PlanStep>node.steps[i]
        keys.append(step.name if step.name else str(step.index))
        bodies.append((<StepResult>outcomes[i]).body)
    return _oip_merge(keys, bodies)


cdef object oip_json_body(object body):
    return _oip_json_body(body)


cdef bint json_has_inputs(object body) except -1:
    """Whether a bytes body mentions "inputs" (a v2 request; a v2 response has none).
    memmem (declared in http_common.pyx) runs at memory speed and the key is usually
    near the start."""
    cdef Py_buffer view
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        return memmem(view.buf, view.len, b'"inputs"', 8) != NULL
    finally:
        PyBuffer_Release(&view)


@cython.final
cdef class DelegateBackend(Backend):
    """A backend implemented in Python (gRPC, HTTP v2): ``impl(body, ctx)`` returns a
    StepResult or an awaitable of one. These protocols carry tensors, where the
    Python call is small next to the payload. With ``plain``, bytes bodies holding a
    v2 request go to that backend instead."""

    def __init__(self, impl, str description, Backend plain=None):
        self.impl = impl
        self.description = description
        self.plain = plain

    cdef object call(self, object body, RunContext ctx):
        # a JSON v2 request takes the plain backend's C path, as fast as without
        # bridging; a v2 JSON response (a previous step's answer) is converted by impl
        if self.plain is not None and not is_oip(body) and json_has_inputs(body):
            return self.plain.call(body, ctx)
        return self.impl(body, ctx)



async def app_execute(GraphApp app, object body, list headers, double deadline=0.0):
    """Run ``body`` (bytes or an OIP message) through ``app``'s plan for a front end
    other than the plain HTTP path (gRPC, HTTP v2), counted in the app's metrics.
    ``headers``: the request's (name, value) bytes pairs; ``deadline`` > 0: seconds
    the caller still waits (a gRPC deadline), which bounds every step's call too."""
    cdef double timeout = app.plan.service_timeout
    if deadline > 0 and (timeout <= 0 or deadline < timeout):
        timeout = deadline
    cdef RunContext ctx = RunContext(app.propagation.select(headers), timeout, headers)
    cdef Response r
    app.in_flight += 1
    try:
        r = await execute(app.plan, body, ctx)
    finally:
        app.in_flight -= 1
    app.requests_total += 1
    if r.status >= 500:
        app.requests_failed += 1
    return r
