# The compiled plan's types: the tables the compiler builds (PlanStep, PlanNode,
# CompiledPlan), the Backend seam every step target implements, and what a step and a
# request answer (StepResult, Response). No execution here: core/execute.pyx.
cimport cython

import orjson as _orjson

from engine.errors import InternalEngineError as _InternalEngineError

cdef object _json_loads = _orjson.loads

class RouteFailure(Exception):
    """A step or node failed: KServe answers 500 (404 for a Switch miss at the root)
    with {"error": "Failed to process request", "cause": <cause>}."""

    def __init__(self, str cause, int status=500):
        Exception.__init__(self, cause)
        self.cause = cause
        self.status = status


@cython.freelist(32)
@cython.final
cdef class StepResult:
    """One answer of a step: status code, body (any bytes-like object, or an OIP
    message) and, from transports that have them, the answer's headers."""

    def __cinit__(self, int status, object body, list headers=None):
        self.status = status
        self.body = body
        self.headers = headers

    def __repr__(self):
        return f"StepResult({self.status}, {self.body if is_oip(self.body) else bytes(self.body)[:60]!r})"


@cython.final
cdef class RequestStats:
    """A front end's request counters, kept by execute() alone, and its request
    durations and bytes, recorded by the front end (``observe``) once it answered."""

    cdef void observe(self, int protocol, int status, str code, double seconds,
                      Py_ssize_t bytes_in, Py_ssize_t bytes_out):
        """One answered request: HTTP (``protocol`` 0, ``status``) or gRPC (1, the
        status name ``code``). Nothing before the front end made its histograms."""
        cdef Histogram h
        if self.http_ok is None:
            return
        self.bytes_in[protocol] += bytes_in
        self.bytes_out[protocol] += bytes_out
        if protocol == 0 and status == 200:
            self.http_ok.observe(seconds)
            return
        if protocol == 1 and code == "OK":
            self.grpc_ok.observe(seconds)
            return
        key = (protocol, code if code is not None else str(status))
        h = self.other.get(key)
        if h is None:
            h = self.other[key] = Histogram(self.http_ok_bounds())
        h.observe(seconds)

    cdef tuple http_ok_bounds(self):
        cdef Py_ssize_t i
        return tuple(self.http_ok.bounds[i] for i in range(self.http_ok.n))

    def __repr__(self):
        return (f"RequestStats(total={self.total}, failed={self.failed}, "
                f"cancelled={self.cancelled}, in_flight={self.in_flight})")


cdef class FrontEnd:
    """What a front end makes of the graph's Response: execute() hands it over with
    the request's context and returns what ``finish`` returns (for HTTP, the
    HttpResponse), so that the conversion costs no coroutine of its own."""

    cdef object finish(self, RunContext ctx, Response r):
        return r


@cython.freelist(32)
@cython.final
cdef class RunContext:
    """Per-request state shared by every step: the headers to forward, the
    per-call timeout, and whether bytes may be bridged to v2 steps (``v2_bridge``: set
    by execute() when the request entered as an OIP message). A front end may add its
    counters (``stats``) and its adapter (``front``, with its own ``request``)."""

    def __cinit__(self, list headers, double timeout):
        self.headers = headers
        self.timeout = timeout


cdef class Backend:
    """The one seam between the executor and a step's model target (HTTP, v2, gRPC,
    in-process). ``call`` starts the call and returns its StepResult when it is
    already known, else a StepCall (base/flow.pyx) or another awaitable that settles
    with one; a transport failure raises UpstreamError (at once or when awaited).
    The executor knows nothing else of a backend."""

    cdef object call(self, object body, RunContext ctx):
        raise _InternalEngineError(f"{type(self).__name__} does not implement call()")

    def __repr__(self):
        return f"<{type(self).__name__} {self.description}>"

    def invoke(self, body, RunContext ctx):
        """Python entry to ``call`` (tests, tools)."""
        return self.call(body, ctx)


@cython.final
cdef class PlanStep:
    def __init__(self, int index, str name, int target, int node_index, Backend backend,
                 Path condition, str condition_text, bint use_response, bint map_predictions,
                 bint hard, int weight_end, object policy=None, Path data_path=None,
                 str data_text=""):
        self.index = index
        self.name = name
        key = name if name else str(index)
        self.ensemble_key = go_quote(key) + b":"     # json/go_json.pyx: Go's escaping
        self.target = target
        self.node_index = node_index
        self.backend = backend
        self.condition = condition
        self.condition_text = condition_text
        self.use_response = use_response
        self.map_predictions = map_predictions
        self.hard = hard
        self.weight_end = weight_end
        self.policy = policy
        self.data_path = data_path
        self.data_text = data_text


@cython.final
cdef class PlanNode:
    def __init__(self, int index, str name, int router_type, tuple steps, bint merge_outputs=False,
                 tuple switch_groups=None):
        cdef PlanStep step
        cdef int end = 0
        if switch_groups:
            # run_switch walks the groups and the steps together: in order, disjoint
            for start, table in switch_groups:
                if not isinstance(table, SwitchTable) or not end <= start <= len(steps) - (<SwitchTable>table).size:
                    raise ValueError("switch_groups: (first step index, SwitchTable) in step order, disjoint")
                end = start + (<SwitchTable>table).size
                for k in range((<SwitchTable>table).size):
                    if (<PlanStep>steps[start + k]).condition_text != (<SwitchTable>table).paths[k].source:
                        raise ValueError("switch_groups: a table's conditions are its steps'")
        self.switch_groups = switch_groups if switch_groups and router_type == ROUTER_SWITCH else None
        self.index = index
        self.name = name
        self.router_type = router_type
        self.steps = steps
        self.merge_outputs = merge_outputs and router_type == ROUTER_SEQUENCE
        for s in steps:
            (<PlanStep>s).site = (name, (<PlanStep>s).name or str((<PlanStep>s).index),
                                  (<PlanStep>s).backend.description if (<PlanStep>s).backend is not None else None)
        # Go marshals the merged map with its keys sorted by their bytes (before
        # escaping); a later step with the same key overwrites an earlier one
        by_key = {}
        for s in steps:
            step = <PlanStep>s
            key = (step.name if step.name else str(step.index)).encode("utf-8", "surrogatepass")
            by_key[key] = step.index
        self.ensemble_order = tuple(by_key[k] for k in sorted(by_key))


@cython.final
cdef class MessageBridge:
    """The converters a plan needs for OIP messages (engine.bridge.BRIDGE)."""

    def __init__(self, *, header_json, merge, json_body, local_call, http_answer):
        self.header_json = header_json      # message -> JSON header bytes (no tensor data)
        self.merge = merge                  # (keys, bodies) -> InferResponse
        self.json_body = json_body          # message -> v2 JSON request bytes (v1 backends)
        self.local_call = local_call        # (fn, wants_headers, message, ctx) -> result
        self.http_answer = http_answer      # message -> bytes (v2 JSON) for a plain HTTP answer


@cython.final
cdef class CompiledPlan:
    """The compiler's output: node tables (root first), the serviceClient timeout, the
    graph's name, and the converters for OIP messages (``bridge``: core/bridge.pyx;
    None: the plan carries bytes only). ``buckets``: the bounds of its duration
    histograms (core/metrics.pyx, metrics_buckets); ``step_metrics`` off: no step is
    timed or counted (request metrics stay)."""

    def __init__(self, tuple nodes, double service_timeout, str name, MessageBridge bridge=None,
                 buckets=None, bint step_metrics=True):
        cdef PlanStep step
        if not nodes:
            raise _InternalEngineError("a plan needs at least its root node")
        self.nodes = nodes
        self.service_timeout = service_timeout
        self.name = name
        self.bridge = bridge
        self.buckets = metrics_buckets(buckets)
        self.step_metrics = step_metrics
        # every model call's slots exist before the first request (core/metrics.pyx)
        for node in nodes:
            for s in (<PlanNode>node).steps:
                step = <PlanStep>s
                if step.target == TARGET_BACKEND:
                    step.stats = StepStats(self.buckets)


# ---- a request's answer ------------------------------------------------------------

@cython.freelist(32)
@cython.final
cdef class Response:
    """The graph's answer: ``status``, ``body`` (bytes-like) and ``content_type``."""

    def __cinit__(self, int status, object body, bytes content_type=None):
        self.status = status
        self.body = body
        self.content_type = content_type

    @property
    def headers(self):
        return {"Content-Type": self.content_type.decode()} if self.content_type else {}

    def json(self):
        """The body decoded as JSON."""
        return _json_loads(self.body)

    def __repr__(self):
        return f"Response({self.status}, {self.body if is_oip(self.body) else bytes(self.body)[:80]!r})"
