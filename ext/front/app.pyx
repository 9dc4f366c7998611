# The router's HTTP application: what each request path means. Any path that is not
# one of the router's own endpoints runs the graph, whatever the method, as in
# KServe's router (its handler is registered on "/", and only /readyz is its own).
# The engine's further endpoints (health, metrics, /v2/models/...) can be switched off
# (kserve_paths) so that the router is path-for-path KServe's.

cdef bytes _READYZ = b"/readyz"
cdef bytes _HEALTHZ = b"/healthz"
cdef bytes _METRICS = b"/metrics"
cdef bytes _GRAPH = b"/graph"
cdef bytes _V2_LIVE = b"/v2/health/live"
cdef bytes _V2_READY = b"/v2/health/ready"
# shared and never mutated: render_response only reads header lists
cdef list _JSON_CONTENT = [(b"Content-Type", b"application/json")]
cdef list _TEXT_HEADERS = [(b"Content-Type", b"text/plain; charset=utf-8"),
                           (b"X-Content-Type-Options", b"nosniff")]
cdef list _HTML_HEADERS = [(b"Content-Type", b"text/html; charset=utf-8"),
                           (b"X-Content-Type-Options", b"nosniff")]


@cython.final
cdef class GraphApp(FrontEnd):
    """Maps HttpRequest -> HttpResponse (or an awaitable of one) for one plan: the
    HTTP front end. A graph request goes to execute() (core/execute.pyx) with this
    app as its FrontEnd, which turns the graph's Response into the HttpResponse.
    ``v2_front(app, request, path)``: the /v2/models/... endpoints (engine.bridge's),
    None where a path is not one of them; without it those paths run the graph.
    ``graph_page``: the HTML answered at GET /graph (engine.server.graph_page), made
    once; None: that path runs the graph."""

    def __init__(self, CompiledPlan plan, HeaderPropagation propagation, *,
                 bint kserve_paths=False, v2_front=None):
        self.plan = plan
        self.propagation = propagation
        self.kserve_paths = kserve_paths
        self.v2_front = v2_front
        self.draining = False
        self.stats = RequestStats.__new__(RequestStats)
        self.stats.http_ok = Histogram(plan.buckets)
        self.stats.grpc_ok = Histogram(plan.buckets)
        self.stats.other = {}
        self.access_log = None
        self.http_client = None
        self.graph_page = None
        self.authorizer = None

    @property
    def requests_total(self):
        return self.stats.total

    @property
    def requests_failed(self):
        return self.stats.failed

    @property
    def requests_cancelled(self):
        return self.stats.cancelled

    @property
    def in_flight(self):
        return self.stats.in_flight

    def enable_access_log(self, logger):
        """One log record per graph request (method, path, status, duration); None: off."""
        self.access_log = logger

    def observe_request(self, str protocol, code, double seconds, Py_ssize_t bytes_in=0,
                        Py_ssize_t bytes_out=0, RunContext ctx=None):
        """Count one request a front end other than this app's answered (gRPC, HTTP
        v2): ``protocol`` "http" with the HTTP status ``code``, or "grpc" with the
        status name; ``seconds`` it took, its body bytes in and out. One call per
        request, once it is answered. ``ctx``: the request's context (None when it
        failed before it had one): a gRPC request's server span ends here with the
        status name, and the access log gets the request's line."""
        if protocol == "grpc":
            self.stats.observe(1, 0, str(code), seconds, bytes_in, bytes_out)
        elif protocol == "http":
            self.stats.observe(0, int(code), None, seconds, bytes_in, bytes_out)
        else:
            raise ValueError(f"protocol must be http or grpc, not {protocol!r}")
        if ctx is not None and ctx.trace is not None and ctx.trace.front_ends:
            end_server_span(ctx.trace, 0, str(code), None, None)
        if self.access_log is not None:
            fields = {"graph": self.plan.name, "protocol": protocol, "status": code,
                      "ms": round(seconds * 1000.0, 3), "bytes_in": bytes_in, "bytes_out": bytes_out}
            if ctx is not None and ctx.trace is not None:
                fields["trace_id"] = ctx.trace.trace_id_hex()
            self.access_log.info("request", extra=fields)

    def swap(self, CompiledPlan plan, HeaderPropagation propagation, object graph_page=None):
        """Serve new requests with ``plan`` (a reload): a request already running
        finishes on the plan it started with, which execute() holds. The request
        counters and histograms go on; a step's metrics are the new plan's (its
        PlanStep slots)."""
        if tuple(plan.buckets) != tuple(self.plan.buckets):
            raise ValueError("a swapped plan must keep the metrics buckets")
        self.plan = plan
        self.propagation = propagation
        self.graph_page = graph_page
        self.reloads += 1

    def start_draining(self):
        """Readiness answers 503 from now on; requests are still served."""
        self.draining = True

    def context(self, list headers, double deadline=0.0, str protocol="http", HttpRequest request=None):
        """The RunContext of a request another front end (gRPC, HTTP v2) hands to
        execute(), counted in this app's metrics: ``headers`` the request's (name,
        value) bytes pairs; ``deadline`` > 0: seconds the caller still waits (a gRPC
        deadline), which bounds every step's call too. With tracing on, the
        request's trace begins here (``request``: the HTTP request, whose method and
        path its server span records); a "grpc" ``protocol`` request's server span
        ends in observe_request, with the status the client got."""
        cdef double timeout = self.plan.service_timeout
        if deadline > 0 and (timeout <= 0 or deadline < timeout):
            timeout = deadline
        cdef RunContext ctx = RunContext(self.propagation.select(headers), timeout)
        ctx.stats = self.stats
        if _tracer is not None:
            if protocol == "grpc":
                ctx.trace = begin_request(self.plan, headers, TRACE_GRPC)
                ctx.trace.front_ends = True
            else:
                ctx.trace = begin_request(self.plan, headers, TRACE_HTTP)
                if request is not None and ctx.trace.server is not None:
                    ctx.trace.server.method = request.method
                    ctx.trace.server.path = request.path
        return ctx

    def __call__(self, HttpRequest request):
        cdef bytes path = request.path
        cdef Py_ssize_t q = path.find(b"?")
        if q >= 0:
            path = path[:q]
        if path == _READYZ:
            # Go's http.Error: text body with a newline, nosniff
            if self.draining:
                return HttpResponse(503, b"shutting down\n", _TEXT_HEADERS)
            return HttpResponse(200, b"")
        if self.kserve_paths:
            if self.authorizer is not None:
                return self.guarded(request, path)
            return self.run_graph(request)
        if path == _HEALTHZ or path == _V2_LIVE:
            return HttpResponse(200, b"")
        if path == _V2_READY:
            return HttpResponse(503 if self.draining else 200, b"")
        if path == _METRICS and request.method == b"GET":
            if wants_openmetrics(request.headers):      # core/metrics.pyx
                return HttpResponse(200, self.metrics_openmetrics(), OPENMETRICS_HEADERS)
            return HttpResponse(200, self.metrics_text(), _TEXT_HEADERS[:1])
        if self.authorizer is not None:
            return self.guarded(request, path)
        return self.route(request, path)

    cdef object route(self, HttpRequest request, bytes path):
        """The answer of a path that is not a probe or /metrics: the graph page, the
        /v2/models/... endpoints, else the graph."""
        if self.kserve_paths:
            return self.run_graph(request)
        if path == _GRAPH and request.method == b"GET" and self.graph_page is not None:
            return HttpResponse(200, self.graph_page, _HTML_HEADERS)
        if self.v2_front is not None and path.startswith(b"/v2/models/"):
            v2 = self.v2_front(self, request, path)
            if v2 is not None:
                return v2
        return self.run_graph(request)

    cdef object guarded(self, HttpRequest request, bytes path):
        """route() once ``authorizer`` allows the request's Authorization header (the
        first one, as Go's Header.Get): a decision it has cached comes back at once,
        else an awaitable of it."""
        cdef object value = None
        cdef tuple pair
        for item in request.headers:
            pair = <tuple>item
            if header_is(<bytes>pair[0], b"authorization", 13):
                value = pair[1]
                break
        decision = self.authorizer(value)
        if decision is None:
            return self.route(request, path)
        if type(decision) is tuple:
            return _refusal(<tuple>decision)
        return _route_when_allowed(self, decision, request, path)

    cdef object run_graph(self, HttpRequest request):
        cdef RunContext ctx = RunContext(self.propagation.select(request.headers),
                                         self.plan.service_timeout)
        ctx.stats = self.stats
        ctx.front = self
        ctx.request = request
        ctx.received = mono_now()
        if _tracer is not None:
            ctx.trace = begin_request(self.plan, request.headers, TRACE_HTTP)
            if ctx.trace.server is not None:
                ctx.trace.server.method = request.method
                ctx.trace.server.path = request.path
        return execute(self.plan, request.body, ctx)

    cdef object finish(self, RunContext ctx, Response r):
        """The HttpResponse for the graph's answer to ``ctx.request``."""
        cdef HttpRequest request = <HttpRequest>ctx.request
        if type(r.body) is not bytes and is_oip(r.body):
            # a message answered on a plain HTTP path: v2 JSON
            r = Response(r.status, need_bridge(self.plan.bridge, r.body).http_answer(r.body), CT_JSON)
        self.stats.observe(0, r.status, None, mono_now() - ctx.received, len(request.body), len(r.body))
        if self.access_log is not None:
            fields = {"graph": self.plan.name, "protocol": "http",
                      "method": request.method.decode("latin-1"), "path": request.path.decode("latin-1"),
                      "status": r.status, "ms": round((mono_now() - ctx.received) * 1000.0, 3),
                      "bytes_in": len(request.body), "bytes_out": len(r.body)}
            if ctx.trace is not None:
                fields["trace_id"] = ctx.trace.trace_id_hex()
            self.access_log.info("request", extra=fields)
        if r.content_type is None:
            return make_response(r.status, r.body, None)
        if r.content_type is CT_JSON:
            return make_response(r.status, r.body, _JSON_CONTENT)
        return make_response(r.status, r.body, [(b"Content-Type", r.content_type)])

    cpdef bytes metrics_text(self):
        name = label_value(self.plan.name or "graph")
        return (
            "# HELP ige_requests_total Graph requests answered.\n"
            "# TYPE ige_requests_total counter\n"
            f'ige_requests_total{{graph="{name}"}} {self.stats.total}\n'
            "# HELP ige_requests_failed_total Graph requests answered with a 5xx status.\n"
            "# TYPE ige_requests_failed_total counter\n"
            f'ige_requests_failed_total{{graph="{name}"}} {self.stats.failed}\n'
            "# HELP ige_requests_cancelled_total Graph requests cancelled before their answer: the client hung up (or its connection was aborted).\n"
            "# TYPE ige_requests_cancelled_total counter\n"
            f'ige_requests_cancelled_total{{graph="{name}"}} {self.stats.cancelled}\n'
            "# HELP ige_requests_in_flight Graph requests being processed.\n"
            "# TYPE ige_requests_in_flight gauge\n"
            f'ige_requests_in_flight{{graph="{name}"}} {self.stats.in_flight}\n'
            "# HELP ige_draining 1 once the router is draining after SIGTERM.\n"
            "# TYPE ige_draining gauge\n"
            f"ige_draining {int(self.draining)}\n"
            "# HELP ige_graph_reloads_total Graph reloads (SIGHUP, --watch, swap), by result: ok (the new plan serves) or error (invalid, the old plan serves on).\n"
            "# TYPE ige_graph_reloads_total counter\n"
            f'ige_graph_reloads_total{{result="ok"}} {self.reloads}\n'
            f'ige_graph_reloads_total{{result="error"}} {self.reload_errors}\n'
            + headers_dropped_metrics()     # core/headers.pyx
            + policy_metrics(self.plan)     # backends/policy.pyx
            + render_request_metrics(self.plan, self.stats)
            + render_step_metrics(self.plan)
            + render_pool_metrics(self.http_client)
            + trace_metrics()               # core/trace.pyx
        ).encode()

    def metrics_openmetrics(self):
        """metrics_text() as OpenMetrics 1.0 (openmetrics_text, core/metrics.pyx): what
        GET /metrics answers a scrape whose Accept lists application/openmetrics-text."""
        return openmetrics_text(self.metrics_text())


cdef HttpResponse _refusal(tuple decision):
    """An authorizer's refusal: (status, [(name, value) bytes pairs], body)."""
    return make_response(decision[0], decision[2], decision[1])


async def _route_when_allowed(GraphApp app, object decision, HttpRequest request, bytes path):
    refusal = await decision
    if refusal is not None:
        return _refusal(<tuple>refusal)
    answer = app.route(request, path)
    if type(answer) is HttpResponse:
        return answer
    return await answer


cdef str render_request_metrics(CompiledPlan plan, RequestStats stats):
    """Request durations per protocol and code, and body bytes per protocol."""
    cdef Histogram h
    graph = label_value(plan.name or "graph")
    out = ["# HELP ige_request_duration_seconds Graph requests answered, by the time from "
           "taking the request to its answer (code: the HTTP status, or the gRPC status name).\n"
           "# TYPE ige_request_duration_seconds histogram\n"]
    series = [((0, "200"), stats.http_ok), ((1, "OK"), stats.grpc_ok)]
    series += sorted(stats.other.items())
    for (protocol, code), h in series:
        if h.count:
            render_histogram(out, "ige_request_duration_seconds",
                             f'graph="{graph}",code="{label_value(code)}",protocol="{_PROTOCOLS[protocol]}"', h)
    for metric, counts, text in (("ige_request_bytes_total", (stats.bytes_in[0], stats.bytes_in[1]), "Request body bytes taken."),
                                 ("ige_response_bytes_total", (stats.bytes_out[0], stats.bytes_out[1]), "Response body bytes answered.")):
        out.append(f"# HELP {metric} {text}\n# TYPE {metric} counter\n")
        for protocol in range(2):
            out.append(f'{metric}{{graph="{graph}",protocol="{_PROTOCOLS[protocol]}"}} {counts[protocol]}\n')
    return "".join(out)


cdef tuple _PROTOCOLS = ("http", "grpc")


cdef str render_step_metrics(CompiledPlan plan):
    """Step call durations per code and step errors per kind (core/metrics.pyx)."""
    cdef PlanStep step
    graph = label_value(plan.name or "graph")
    steps = []
    for node in plan.nodes:
        for s in (<PlanNode>node).steps:
            step = <PlanStep>s
            if step.stats is not None:
                steps.append((f'graph="{graph}",node="{label_value(step.site[0])}",'
                              f'step="{label_value(step.site[1])}"', step.stats))
    out = ["# HELP ige_step_duration_seconds Model calls of graph steps, by their duration "
           "(code: the answer's HTTP status, else the error kind: timeout, transport, "
           "circuit_open, overloaded).\n# TYPE ige_step_duration_seconds histogram\n"]
    for labels, stats in steps:
        for code, h in (<StepStats>stats).by_code():
            render_histogram(out, "ige_step_duration_seconds", f'{labels},code="{code}"', h)
    out.append("# HELP ige_step_errors_total Failed model calls of graph steps, by kind: status "
               "(a non-2xx answer), timeout, transport, circuit_open, overloaded.\n"
               "# TYPE ige_step_errors_total counter\n")
    for labels, stats in steps:
        for kind, n in (<StepStats>stats).error_counts().items():
            out.append(f'ige_step_errors_total{{{labels},kind="{kind}"}} {n}\n')
    return "".join(out)


cdef str render_pool_metrics(object client):
    """Open and idle keep-alive connections per model server host (http/client.pyx)."""
    cdef _HostPool pool
    if client is None:
        return ""
    pools = [(f"{(<_HostPool>p).host}:{(<_HostPool>p).port}", p)
             for p in (<HttpClient>client).pools.values()]
    pools.sort(key=lambda item: item[0])
    out = ["# HELP ige_client_connections_open Connections open to a model server host (in use or idle).\n"
           "# TYPE ige_client_connections_open gauge\n"]
    for host, p in pools:
        pool = <_HostPool>p
        out.append(f'ige_client_connections_open{{host="{label_value(host)}"}} {pool.nopen}\n')
    out.append("# HELP ige_client_connections_idle Keep-alive connections idle in a model server host's pool.\n"
               "# TYPE ige_client_connections_idle gauge\n")
    for host, p in pools:
        pool = <_HostPool>p
        out.append(f'ige_client_connections_idle{{host="{label_value(host)}"}} {len(pool.idle)}\n')
    return "".join(out)
