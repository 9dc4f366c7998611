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


# top-level keys, so a tensor or parameter named "inputs" does not count
cdef Path _V2_INPUTS = Path("inputs")
cdef Path _V2_OUTPUTS = Path("outputs")


cdef bint json_is_v2_response(object body) except -1:
    """Whether a bytes body holds a v2 JSON response (top-level "outputs" and no
    "inputs"): the only bytes a v2 step converts, and only when bridging is on.
    memmem (http_common.pyx) runs at memory speed and rejects most other bodies; the
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


async def app_execute(GraphApp app, object body, list headers, double deadline=0.0):
    """Run ``body`` (bytes or an OIP message) through ``app``'s plan for a front end
    other than the plain HTTP path (gRPC, HTTP v2), counted in the app's metrics.
    ``headers``: the request's (name, value) bytes pairs; ``deadline`` > 0: seconds
    the caller still waits (a gRPC deadline), which bounds every step's call too."""
    cdef double timeout = app.plan.service_timeout
    if deadline > 0 and (timeout <= 0 or deadline < timeout):
        timeout = deadline
    cdef RunContext ctx = RunContext(app.propagation.select(headers), timeout)
    cdef Response r
    app.in_flight += 1
    try:
        r = await execute(app.plan, body, ctx)
    except _CancelledError:
        app.requests_cancelled += 1     # a cancelled gRPC call, a v2 client gone
        raise
    finally:
        app.in_flight -= 1
    app.requests_total += 1
    if r.status >= 500:
        app.requests_failed += 1
    return r
