# The executor: runs one request through a CompiledPlan with exactly the
# semantics of KServe's Go router (cmd/router/main.go), reading JSON only where those
# semantics need it and forwarding every other body as the same buffer.
cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from engine._gjson cimport Arena, Path, Res, SwitchTable, arena_release, c_valid, cstr

import asyncio as _asyncio
import logging as _logging
import orjson as _orjson

from engine.errors import UpstreamError as _UpstreamError, InternalEngineError as _InternalEngineError

cdef object _json_dumps = _orjson.dumps
cdef object _running_loop = _asyncio.get_running_loop
cdef object _CancelledError = _asyncio.CancelledError

cdef bytes _SWITCH_MISS = b"None of the routes matched with the switch condition"

# Per-step DEBUG records: off unless the engine logger is at DEBUG (checked once per
# step as a C flag, so a release router pays nothing for it).
cdef bint _trace_steps = False
cdef object _step_log = None


def set_step_tracing(logger):
    """Log every step (node, step, status, bytes) to ``logger`` at DEBUG; None: off."""
    global _trace_steps, _step_log
    _step_log = logger
    _trace_steps = logger is not None


cdef void trace_step(PlanNode node, PlanStep step, StepResult result):
    _step_log.debug("step", extra={"node": node.name, "step": step.name or str(step.index),
                                   "status": result.status,
                                   "bytes": None if is_oip(result.body) else len(result.body)})


# One record per failed model call: a non-2xx answer, or a transport failure (refused,
# reset, timeout, TLS, an unusable URL). Node steps are not model calls (the steps
# inside them are), and a Switch miss or an invalid response fails a node, not a call.
# While on, each step notes on its RunContext which step runs and since when (a
# clock read): a transport failure is logged where the request's failure is caught
# anyway, so a successful step pays no exception handling, only that note.
cdef bint _log_failures = True
cdef object _failure_log = _logging.getLogger("engine.steps")
cdef object _WARNING = _logging.WARNING
cdef object _INFO = _logging.INFO


def set_step_failure_log(logger):
    """Log every failed step call to ``logger``: WARNING for transport failures and
    5xx answers, INFO for other non-2xx answers; None: off. On by default, to
    logging.getLogger("engine.steps")."""
    global _log_failures, _failure_log
    _failure_log = logger
    _log_failures = logger is not None


cdef int log_step_failure(str graph, tuple site, int status, object error, double started,
                          TraceContext trace) except -1:
    """A failed call of the step at ``site`` (PlanStep.site): ``status`` of its answer,
    or the transport ``error``; ``trace``: the request's, when traced. Node steps (no
    target) are not logged."""
    if site is None or site[2] is None or _failure_log is None:
        return 0
    fields = {"graph": graph, "node": site[0], "step": site[1], "target": site[2],
              "ms": round((mono_now() - started) * 1000.0, 3)}
    if error is not None:
        fields["error"] = str(error)
    else:
        fields["status"] = status
    if trace is not None:
        fields["trace_id"] = trace.trace_id_hex()
    _failure_log.log(_WARNING if error is not None or status >= 500 else _INFO, "step failed", extra=fields)
    return 0


cdef int log_request_failure(CompiledPlan plan, RunContext ctx, BaseException e) except -1:
    """A transport failure that ended the request came from the step the context
    noted last: Ensembles, the only concurrent steps, log their own and turn them into
    node failures."""
    if _log_failures and isinstance(e, _UpstreamError) and ctx.step is not None:
        log_step_failure(plan.name, ctx.step.site, 0, e, ctx.started, ctx.trace)
    return 0


cdef int step_error_kind(BaseException e) except -2:
    """The StepErrorKind (core/metrics.pyx) of a failure a step call raised, or -1
    when it is not a model call's failure (a node's: Switch miss, invalid response).
    The policy runtime refuses with RouteFailure (backends/policy.pyx), the HTTP
    client times out with Go's Client.Timeout texts (http/client.pyx)."""
    cdef str text
    if isinstance(e, _UpstreamError):
        text = str(e)
        if "context deadline exceeded" in text:
            return ERR_TIMEOUT
        return ERR_TRANSPORT
    if isinstance(e, RouteFailure):
        text = (<object>e).cause
        if text.startswith("circuit open:"):
            return ERR_CIRCUIT_OPEN
        if text == "overloaded":
            return ERR_OVERLOADED
    return -1


cdef int record_step_failure(PlanStep step, BaseException e, double started) except -1:
    """Count the failure ``e`` of ``step``'s call (started at ``started``) in its slots."""
    cdef int kind
    if step is None or step.stats is None:
        return 0
    kind = step_error_kind(e)
    if kind >= 0:
        step.stats.fail(kind, mono_now() - started)
    return 0


cdef RunContext branch_context(RunContext ctx):
    """A copy of ``ctx`` (every field a step reads) for one concurrent Ensemble step
    that runs a node: its steps note themselves on it, not on the context shared with
    their siblings."""
    cdef RunContext copy = RunContext(ctx.headers, ctx.timeout)
    copy.v2_bridge = ctx.v2_bridge
    copy.trace = ctx.trace
    return copy


cdef RunContext traced_context(RunContext ctx, SpanRecord span):
    """What a backend gets for a traced call: ``ctx``'s headers with the call's own
    `traceparent` (core/trace.pyx), its timeout and bridging."""
    cdef RunContext copy = RunContext(ctx.trace.step_headers(ctx.headers, span.span_id), ctx.timeout)
    copy.v2_bridge = ctx.v2_bridge
    copy.trace = ctx.trace
    copy.span = span
    return copy


cdef str span_error_type(BaseException e):
    """error.type of a span a failure ended: the step error kind when it is a model
    call's, else the exception's class."""
    cdef int kind = step_error_kind(e)
    if kind >= 0:
        return STEP_ERROR_KINDS[kind]       # core/metrics.pyx
    return type(e).__name__


# ---- JSON checks on raw bytes ---------------------------------------------------

cdef bint body_is_valid_json(object body) except -1:
    cdef Py_buffer view
    cdef bint ok
    if body is None:
        return False
    if type(body) is not bytes and is_oip(body):
        return True     # a message's JSON header is an object (core/bridge.pyx)
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        ok = c_valid(<const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)
    return ok


cdef bint path_exists(CompiledPlan plan, Path path, object body) except -1:
    cdef Py_buffer view
    if type(body) is not bytes and is_oip(body):
        body = need_bridge(plan.bridge, body).header_json(body)    # the message's JSON header
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        return path.c_exists(<const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


cdef str go_unmarshal_map_error(object body):
    """The text of Go's json.Unmarshal(body, &map[string]interface{}) error, for a body
    that is not a JSON object (Ensemble steps must answer objects)."""
    cdef bytes data = bytes(body)
    cdef Py_ssize_t i = 0, n = len(data)
    while i < n and data[i] in b" \t\r\n":
        i += 1
    if i == n:
        return "unexpected end of JSON input"
    c = data[i]
    kind = {ord("["): "array", ord('"'): "string", ord("t"): "bool", ord("f"): "bool"}.get(c)
    if kind is None and (c == ord("-") or ord("0") <= c <= ord("9")):
        kind = "number"
    if kind is not None and body_is_valid_json(data):
        return f"json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
    if c in b'{["tfn-0123456789':
        return "unexpected end of JSON input" if _truncated(data) else "invalid character in JSON input"
    return f"invalid character {_go_quote_char(c)} looking for beginning of value"


cdef bint _truncated(bytes data):
    try:
        _json_loads(data)
    except _orjson.JSONDecodeError as e:
        return "unexpected end" in str(e).lower() or "eof" in str(e).lower()
    return False


cdef str _go_quote_char(int c):
    if c == ord("'"):
        return "'\\''"
    if c == ord('"'):
        return "'\"'"
    if 32 <= c < 127:
        return f"'{chr(c)}'"
    return f"'\\x{c:02x}'"


# ---- execution ---------------------------------------------------------------------

cdef inline StepResult step_result(object r):
    """What an awaited step gave, which the Backend seam makes a StepResult."""
    if type(r) is StepResult:
        return <StepResult>r
    raise _InternalEngineError(f"a step answered {type(r).__name__}, not a StepResult")


cdef inline object call_step(CompiledPlan plan, PlanStep step, object body, RunContext ctx):
    """Start a step: a StepResult when it finished synchronously, else an awaitable.
    A traced model call carries the span step_starts noted."""
    if step.target == TARGET_NODE:
        return run_node(plan, <PlanNode>plan.nodes[step.node_index], body, ctx, False)
    if ctx.trace is not None and ctx.span is not None:
        return step.backend.call(body, traced_context(ctx, ctx.span))
    return step.backend.call(body, ctx)


cdef inline void step_starts(CompiledPlan plan, PlanStep step, RunContext ctx):
    """Note the step that runs and since when, for its failure record and metrics,
    and, when the request is traced, start its call's span."""
    if _log_failures or plan.step_metrics:
        ctx.step = step
        ctx.started = mono_now()
    if ctx.trace is not None:
        ctx.span = start_client_span(ctx.trace, step) if step.target == TARGET_BACKEND else None


cdef inline int step_settled(CompiledPlan plan, PlanNode node, PlanStep step, StepResult result,
                      RunContext ctx) except -1:
    """What every settled step records: its duration, its DEBUG record and a failed
    status."""
    if plan.step_metrics and step.stats is not None:
        step.stats.observe(result.status, mono_now() - ctx.started)
    if _trace_steps:
        trace_step(node, step, result)
    if _log_failures and not (200 <= result.status <= 299):
        log_step_failure(plan.name, step.site, result.status, None, ctx.started, ctx.trace)
    if ctx.trace is not None and ctx.span is not None and step.target == TARGET_BACKEND:
        end_span(ctx.span, result.status)
    return 0


async def run_node(CompiledPlan plan, PlanNode node, object body, RunContext ctx, bint is_root):
    cdef int rt = node.router_type
    if rt == ROUTER_SEQUENCE:
        return await run_sequence(plan, node, body, ctx)
    if rt == ROUTER_SWITCH:
        return await run_switch(plan, node, body, ctx, is_root)
    if rt == ROUTER_SPLITTER:
        return await run_splitter(plan, node, body, ctx)
    if rt == ROUTER_ENSEMBLE:
        return await run_ensemble(plan, node, body, ctx)
    raise RouteFailure(f"invalid route type: {node.router_type}")


async def run_sequence(CompiledPlan plan, PlanNode node, object request, RunContext ctx):
    cdef PlanStep step
    cdef object response = None
    cdef object body
    cdef StepResult result = None
    cdef int i
    if node.merge_outputs:
        return await run_sequence_merged(plan, node, request, ctx)
    for i in range(len(node.steps)):
        step = <PlanStep>node.steps[i]
        body = response if step.use_response else request
        if step.condition is not None:
            # KServe checks the previous response (nothing before the first step)
            if response is None or not body_is_valid_json(response):
                raise RouteFailure("invalid response")
            if not path_exists(plan, step.condition, response):
                return StepResult(200, response)
        if step.data_path is not None:
            body = select_data(step, body)
            if type(body) is StepResult:
                # the step answers the 400 itself, so that Soft and Hard apply as to a model's
                result = <StepResult>body
                if _trace_steps:
                    trace_step(node, step, result)
                response = result.body
                if step.hard:
                    return result
                continue
        if step.map_predictions:
            body = go_map_predictions(body)     # json/go_json.pyx
        step_starts(plan, step, ctx)
        r = call_step(plan, step, body, ctx)
        if type(r) is not StepResult:
            r = await r
        result = step_result(r)
        step_settled(plan, node, step, result, ctx)
        response = result.body
        if step.hard and not (200 <= result.status <= 299):
            return result
    return result


async def run_sequence_merged(CompiledPlan plan, PlanNode node, object request, RunContext ctx):
    """A Sequence with ``outputs: all``: its steps chain, stop and fail exactly as in
    run_sequence, and it answers 200 with every answered step's answer (merge_sequence);
    a Hard step that fails still answers for the node, as in an Ensemble."""
    cdef PlanStep step
    cdef object response = None
    cdef object body
    cdef StepResult result
    cdef list answered = []
    cdef int i
    for i in range(len(node.steps)):
        step = <PlanStep>node.steps[i]
        body = response if step.use_response else request
        if step.condition is not None:
            if response is None or not body_is_valid_json(response):
                raise RouteFailure("invalid response")
            if not path_exists(plan, step.condition, response):
                break       # this step and the later ones never ran: absent from the answer
        result = None
        if step.data_path is not None:
            body = select_data(step, body)
            if type(body) is StepResult:
                result = <StepResult>body
                if _trace_steps:
                    trace_step(node, step, result)
        if result is None:
            if step.map_predictions:
                body = go_map_predictions(body)
            step_starts(plan, step, ctx)
            r = call_step(plan, step, body, ctx)
            if type(r) is not StepResult:
                r = await r
            result = step_result(r)
            step_settled(plan, node, step, result, ctx)
        response = result.body
        if step.hard and not (200 <= result.status <= 299):
            return result
        answered.append(result)
    return StepResult(200, merge_sequence(plan, node, answered))


cdef object merge_sequence(CompiledPlan plan, PlanNode node, list answered):
    """{"<key>": <answer>, ...} of the first ``len(answered)`` steps, in step order,
    joined from the raw answers (Ensemble's keys, core/plan.pyx ensemble_key). Any
    JSON value is taken; an answer that is not JSON fails the node, since it cannot be
    put into one. Any OIP message among them: one InferResponse (core/bridge.pyx)."""
    cdef PlanStep step
    cdef StepResult res
    cdef Py_ssize_t i
    if ensemble_has_oip(answered):
        return oip_merge_sequence(plan.bridge, node, answered)
    parts = [b"{"]
    for i in range(len(answered)):
        step = <PlanStep>node.steps[i]
        res = <StepResult>answered[i]
        if not body_is_valid_json(res.body):
            raise RouteFailure(f"sequence step {step.name or step.index}: the answer is not JSON, "
                               "so it cannot be merged (outputs: all)")
        if i:
            parts.append(b",")
        parts.append(step.ensemble_key)
        parts.append(res.body)
    parts.append(b"}")
    return b"".join(parts)


cdef object select_data(PlanStep step, object body):
    """The step's body under its data path (``$request.<path>``, ``$response.<path>``):
    the raw JSON of the path's match in ``body``, copied out without decoding, or, when
    the path selects nothing or ``body`` is not JSON, the StepResult(400) the step
    answers instead of calling its target. A message body is read in its v2 JSON form
    (tensor data included)."""
    cdef Py_buffer view
    cdef Arena arena
    cdef Res r
    cdef object selected = None
    cdef bint valid
    if type(body) is not bytes and is_oip(body):
        body = body.to_json()
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    arena.items = NULL
    try:
        valid = c_valid(<const char*>view.buf, view.len)
        if valid:
            step.data_path.c_get(<cstr>view.buf, view.len, &r, &arena)
            if r.rawlen > 0:
                selected = PyBytes_FromStringAndSize(<const char*>r.raw, r.rawlen)
    finally:
        arena_release(&arena)
        PyBuffer_Release(&view)
    if selected is not None:
        return selected
    source = "the request" if step.data_text.startswith("$request") else "the previous response"
    cause = (f"data {step.data_text}: the path selects nothing in {source}" if valid
             else f"data {step.data_text}: {source} is not JSON")
    return StepResult(400, _json_dumps({"error": "Failed to process request",
                                        "cause": _bound_message(cause)}))


cdef int table_first(CompiledPlan plan, SwitchTable table, object body) except -2:
    """path_exists for a run of conditions at once: the index of the first that exists."""
    cdef Py_buffer view
    if type(body) is not bytes and is_oip(body):
        body = need_bridge(plan.bridge, body).header_json(body)
    PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
    try:
        return table.c_first(<const char*>view.buf, view.len)
    finally:
        PyBuffer_Release(&view)


cdef PlanStep switch_pick(CompiledPlan plan, PlanNode node, object request):
    """The first step whose condition exists in the request, or None; runs of
    equality routes on one key (node.switch_groups) are decided in one walk each."""
    cdef tuple steps = node.steps
    cdef tuple groups = node.switch_groups
    cdef Py_ssize_t i = 0, g = 0, n = len(steps), ng = 0, start = -1
    cdef SwitchTable table = None
    cdef PlanStep step
    cdef int k
    if groups is not None:
        ng = len(groups)
        start, table = groups[0]
    while i < n:
        if i == start:
            k = table_first(plan, table, request)
            if k >= 0:
                return <PlanStep>steps[i + k]
            i += table.size
            g += 1
            if g < ng:
                start, table = groups[g]
            continue
        step = <PlanStep>steps[i]
        if step.condition is not None and path_exists(plan, step.condition, request):
            return step
        i += 1
    return None


async def run_switch(CompiledPlan plan, PlanNode node, object request, RunContext ctx, bint is_root):
    # KServe validates the request, then takes the first step whose path exists.
    # Finding the step first gives the same answer (an invalid request is a miss
    # either way) and spares the validation scan when nothing matches.
    cdef PlanStep taken = switch_pick(plan, node, request)
    if taken is None or not body_is_valid_json(request):
        raise RouteFailure(_SWITCH_MISS.decode(), 404 if is_root else 500)
    step_starts(plan, taken, ctx)
    r = call_step(plan, taken, request, ctx)
    if type(r) is not StepResult:
        r = step_result(await r)
    step_settled(plan, node, taken, <StepResult>r, ctx)
    return r


async def run_splitter(CompiledPlan plan, PlanNode node, object request, RunContext ctx):
    cdef PlanStep step
    # as KServe (since kserve#5489): a point in [0, 100), the first step whose running
    # weight sum exceeds it
    cdef int point = rng_below(100)
    for s in node.steps:
        step = <PlanStep>s
        if point < step.weight_end:
            step_starts(plan, step, ctx)
            r = call_step(plan, step, request, ctx)
            if type(r) is not StepResult:
                r = step_result(await r)
            step_settled(plan, node, step, <StepResult>r, ctx)
            return r
    raise RouteFailure("no Splitter step was picked: weights do not sum to 100")


@cython.final
cdef class EnsembleJoin:
    """Collects an Ensemble's concurrent steps the way KServe's router reads its
    channels: in step order, except that any failed step ends the node at once."""
    # outcomes: per step a StepResult, an exception, or None while pending;
    # waiter: a Future set to None (all succeeded), the deciding StepResult, or the failure

    def __cinit__(self, CompiledPlan plan, PlanNode node, object waiter, TraceContext trace):
        self.plan = plan
        self.node = node
        self.outcomes = [None] * len(node.steps)
        self.cursor = 0
        self.waiter = waiter
        if _log_failures or plan.step_metrics or trace is not None:
            self.started = mono_now()
            self.contexts = [None] * len(node.steps)
        self.trace = trace
        if trace is not None:
            self.spans = [None] * len(node.steps)

    cdef void settle(self, int i, object outcome):
        cdef RunContext branch
        cdef PlanStep step = <PlanStep>self.node.steps[i]
        self.outcomes[i] = outcome
        if self.trace is not None:
            self.end_spans(i, outcome)
        if self.plan.step_metrics:
            if type(outcome) is StepResult:
                if step.stats is not None:
                    step.stats.observe((<StepResult>outcome).status, mono_now() - self.started)
            elif isinstance(outcome, BaseException):
                branch = self.contexts[i]
                if branch is None:
                    record_step_failure(step, outcome, self.started)
                else:       # from a step inside the node this step runs
                    record_step_failure(branch.step, outcome, branch.started)
        if _log_failures:
            # steps that finish after the node is decided failed all the same
            if type(outcome) is StepResult:
                if not (200 <= (<StepResult>outcome).status <= 299):
                    log_step_failure(self.plan.name, (<PlanStep>self.node.steps[i]).site,
                                     (<StepResult>outcome).status, None, self.started, self.trace)
            elif isinstance(outcome, _UpstreamError):
                branch = self.contexts[i]
                if branch is None:
                    log_step_failure(self.plan.name, (<PlanStep>self.node.steps[i]).site, 0, outcome,
                                     self.started, self.trace)
                elif branch.step is not None:       # from a step inside the node this step runs
                    log_step_failure(self.plan.name, branch.step.site, 0, outcome, branch.started,
                                     self.trace)
        if self.waiter.done():
            return
        if not isinstance(outcome, StepResult):
            self.waiter.set_result(outcome)
            return
        cdef StepResult res = <StepResult>outcome
        if _trace_steps:
            trace_step(self.node, <PlanStep>self.node.steps[i], res)
        if not body_is_valid_json(res.body) or not _is_object_or_null(res.body):
            self.waiter.set_result(RouteFailure(go_unmarshal_map_error(res.body)))
            return
        self.advance()

    cdef void end_spans(self, int i, object outcome):
        """End the span of step ``i``'s call, or, for a node step that failed, the
        span its failing inner call left running."""
        cdef SpanRecord span = self.spans[i]
        cdef RunContext branch
        if span is None:
            branch = self.contexts[i]
            if branch is None or branch.span is None or type(outcome) is StepResult:
                return
            span = branch.span
        if type(outcome) is StepResult:
            end_span(span, (<StepResult>outcome).status)
        elif isinstance(outcome, BaseException):
            fail_span(span, outcome, span_error_type(outcome))

    cdef void advance(self):
        cdef int n = len(self.outcomes)
        cdef StepResult res
        if ENGINE_DEBUG and self.cursor > n:
            raise _InternalEngineError(f"ensemble cursor {self.cursor} past {n} steps")
        while self.cursor < n:
            o = self.outcomes[self.cursor]
            if o is None:
                return
            res = <StepResult>o
            if (<PlanStep>self.node.steps[self.cursor]).hard and not (200 <= res.status <= 299):
                self.waiter.set_result(res)
                return
            self.cursor += 1
        self.waiter.set_result(None)

    def on_done(self, int i, fut):
        if fut.cancelled():
            self.settle(i, RouteFailure("context canceled"))
            return
        exc = fut.exception()
        self.settle(i, exc if exc is not None else step_result(fut.result()))


cdef bint _is_object_or_null(object body) except -1:
    if type(body) is not bytes and is_oip(body):
        return True
    cdef bytes head = bytes(memoryview(body)[:16]).lstrip()
    return head[:1] == b"{" or head[:4] == b"null"


async def run_ensemble(CompiledPlan plan, PlanNode node, object request, RunContext ctx):
    cdef PlanStep step
    cdef RunContext branch
    cdef int i, n = len(node.steps)
    loop = _running_loop()
    waiter = loop.create_future()
    join = EnsembleJoin(plan, node, waiter, ctx.trace)
    pending = []
    for i in range(n):
        step = <PlanStep>node.steps[i]
        branch = ctx
        if join.contexts is not None and step.target == TARGET_NODE:
            branch = branch_context(ctx)
            join.contexts[i] = branch
        try:
            if join.spans is not None and step.target == TARGET_BACKEND:
                span = start_client_span(ctx.trace, step)
                join.spans[i] = span
                r = step.backend.call(request, traced_context(ctx, span) if span is not None else ctx)
            else:
                r = call_step(plan, step, request, branch)
        except BaseException as e:
            if isinstance(e, (RouteFailure, _UpstreamError)):
                join.settle(i, e)
                continue
            raise
        if type(r) is StepResult:
            join.settle(i, r)
        else:
            fut = start_flow(r, loop)
            pending.append(fut)
            fut.add_done_callback(_bind_index(join, i))
    try:
        decided = await waiter
    except BaseException:
        for fut in pending:
            fut.cancel()
        raise
    if decided is None:
        return StepResult(200, merge_ensemble(plan, node, join.outcomes))
    if isinstance(decided, StepResult):
        return decided
    for fut in pending:
        if not fut.done():
            fut.cancel()
    if isinstance(decided, RouteFailure):
        raise RouteFailure((<object>decided).cause, (<object>decided).status)
    if isinstance(decided, _UpstreamError):
        raise RouteFailure(str(decided))
    raise decided


cdef object _bind_index(EnsembleJoin join, int i):
    def done(fut):
        join.on_done(i, fut)
    return done


cdef object merge_ensemble(CompiledPlan plan, PlanNode node, list outcomes):
    """{"<key>": <step body>, ...} in Go's sorted key order, joined from the raw bodies."""
    if ensemble_has_oip(outcomes):
        return oip_merge_ensemble(plan.bridge, node, outcomes)     # core/bridge.pyx
    parts = [b"{"]
    cdef PlanStep step
    for i in node.ensemble_order:
        step = <PlanStep>node.steps[i]
        if len(parts) > 1:
            parts.append(b",")
        parts.append(step.ensemble_key)
        parts.append((<StepResult>outcomes[i]).body)
    parts.append(b"}")
    return b"".join(parts)


# ---- one request, start to answer ---------------------------------------------------

cdef bytes CT_JSON = b"application/json"
cdef bytes CT_TEXT = b"text/plain; charset=utf-8"
cdef bytes CT_BINARY = b"application/octet-stream"


cdef Response error_response(int status, str cause):
    return Response(status, _json_dumps({"error": "Failed to process request",
                                         "cause": _bound_message(cause)}), CT_JSON)


cdef bytes sniff_content_type(object body):
    """Go's http.DetectContentType for the bodies a model answers: text or binary."""
    cdef bytes head = bytes(memoryview(body)[:512])
    if not head:
        return None
    for c in head:
        if c < 0x20 and c not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B):
            return CT_BINARY
    return CT_TEXT


cdef Response answer(StepResult result):
    """The graph's answer for the root node's result, typed as KServe's router types it."""
    if body_is_valid_json(result.body):
        return Response(result.status, result.body, CT_JSON)
    return Response(result.status, result.body, sniff_content_type(result.body))


cdef Response failure_answer(BaseException e):
    """The graph's answer for a failure that left the root node (None: not ours)."""
    if isinstance(e, RouteFailure):
        return error_response((<object>e).status, (<object>e).cause)
    if isinstance(e, _UpstreamError):
        return error_response(500, str(e))
    return None


async def execute(CompiledPlan plan, object body, RunContext ctx):
    """Run ``body`` through the plan from its root: the one entry of every front end
    (HTTP, HTTP v2, gRPC, embedded Plan.infer). Always answers the graph's Response,
    or, when the context names a front end (``ctx.front``), what that front end makes
    of it (FrontEnd.finish). Counts the request in ``ctx.stats`` when set: answered,
    failed (5xx), cancelled, in flight."""
    cdef PlanNode root = <PlanNode>plan.nodes[0]
    cdef RequestStats stats = ctx.stats
    cdef Response r
    if type(body) is not bytes and is_oip(body):
        # no bytes KServe would have sent exist for this request: core/bridge.pyx
        ctx.v2_bridge = True
    if stats is not None:
        stats.in_flight += 1
    try:
        if root.router_type == ROUTER_SEQUENCE:
            # the usual root: one coroutine level less on the request path
            r = answer(await run_sequence(plan, root, body, ctx))
        else:
            r = answer(step_result(await run_node(plan, root, body, ctx, True)))
    except (RouteFailure, _UpstreamError) as e:
        log_request_failure(plan, ctx, e)
        if plan.step_metrics:
            record_step_failure(ctx.step, e, ctx.started)
        r = failure_answer(e)
        if ctx.trace is not None:
            fail_span(ctx.span, e, span_error_type(e))
            if not ctx.trace.front_ends:
                end_server_span(ctx.trace, r.status, None, (<object>e).cause if isinstance(e, RouteFailure)
                                else str(e), type(e).__name__)
    except BaseException as e:
        if isinstance(e, _CancelledError):
            # the client hung up (or a timeout or drain aborted its connection, or a
            # gRPC call was cancelled): the step calls were cancelled, nothing is answered
            if stats is not None:
                stats.cancelled += 1
        if ctx.trace is not None:
            fail_span(ctx.span, e, type(e).__name__)
            end_server_span(ctx.trace, 0, None, str(e) or type(e).__name__, type(e).__name__)
        raise
    else:
        if ctx.trace is not None and not ctx.trace.front_ends:
            end_server_span(ctx.trace, r.status, None, None, None)
    finally:
        if stats is not None:
            stats.in_flight -= 1
    if stats is not None:
        stats.total += 1
        if r.status >= 500:
            stats.failed += 1
    if ctx.front is not None:
        return ctx.front.finish(ctx, r)
    return r
