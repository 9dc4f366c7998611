# The router's HTTP application: what each request path means. Any path that is not
# one of the router's own endpoints runs the graph, whatever the method, as in
# KServe's router (its handler is registered on "/", and only /readyz is its own).
# The engine's further endpoints (health, metrics, /v2/models/...) can be switched off
# (kserve_paths) so that the router is path-for-path KServe's.

cdef bytes _READYZ = b"/readyz"
cdef bytes _HEALTHZ = b"/healthz"
cdef bytes _METRICS = b"/metrics"
cdef bytes _V2_LIVE = b"/v2/health/live"
cdef bytes _V2_READY = b"/v2/health/ready"
# shared and never mutated: render_response only reads header lists
cdef list _JSON_CONTENT = [(b"Content-Type", b"application/json")]
cdef list _TEXT_HEADERS = [(b"Content-Type", b"text/plain; charset=utf-8"),
                           (b"X-Content-Type-Options", b"nosniff")]


@cython.final
cdef class GraphApp:
    """Maps HttpRequest -> HttpResponse (or an awaitable of one) for one plan."""

    def __init__(self, CompiledPlan plan, HeaderPropagation propagation, *,
                 bint kserve_paths=False):
        self.plan = plan
        self.propagation = propagation
        self.kserve_paths = kserve_paths
        self.draining = False
        self.requests_total = 0
        self.requests_failed = 0
        self.requests_cancelled = 0
        self.in_flight = 0
        self.access_log = None

    def enable_access_log(self, logger):
        """One log record per graph request (method, path, status, duration); None: off."""
        self.access_log = logger

    def start_draining(self):
        """Readiness answers 503 from now on; requests are still served."""
        self.draining = True

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
            return self.run_graph(request)
        if path == _HEALTHZ or path == _V2_LIVE:
            return HttpResponse(200, b"")
        if path == _V2_READY:
            return HttpResponse(503 if self.draining else 200, b"")
        if path == _METRICS and request.method == b"GET":
            return HttpResponse(200, self.metrics_text(), _TEXT_HEADERS[:1])
        if path.startswith(b"/v2/models/") and _oip_v2_front is not None:
            v2 = _oip_v2_front(self, request, path)   # bridge.pyx, engine/bridge.py
            if v2 is not None:
                return v2
        return self.run_graph(request)

    async def run_graph(self, HttpRequest request):
        cdef RunContext ctx = RunContext(self.propagation.select(request.headers),
                                         self.plan.service_timeout)
        cdef Response r
        cdef PlanNode root = <PlanNode>self.plan.nodes[0]
        cdef double started = mono_now() if self.access_log is not None else 0.0
        self.in_flight += 1
        try:
            # execute() inlined: the request path is one coroutine level shorter
            if root.router_type == ROUTER_SEQUENCE:
                r = answer(await run_sequence(self.plan, root, request.body, ctx))
            else:
                r = answer(step_result(await run_node(self.plan, root, request.body, ctx, True)))
        except (RouteFailure, _UpstreamError) as e:
            log_request_failure(self.plan, ctx, e)     # plan.pyx
            r = failure_answer(e)
        except _CancelledError:
            # the client hung up (or a timeout or drain aborted its connection): the
            # step calls were cancelled, nothing is answered
            self.requests_cancelled += 1
            raise
        finally:
            self.in_flight -= 1
        self.requests_total += 1
        if r.status >= 500:
            self.requests_failed += 1
        if type(r.body) is not bytes and is_oip(r.body):
            r = Response(r.status, _oip_http_answer(r.body), CT_JSON)   # bridge.pyx
        if self.access_log is not None:
            self.access_log.info("request", extra={
                "method": request.method.decode("latin-1"), "path": request.path.decode("latin-1"),
                "status": r.status, "ms": round((mono_now() - started) * 1000.0, 3),
                "bytes_in": len(request.body), "bytes_out": len(r.body)})
        if r.content_type is None:
            return make_response(r.status, r.body, None)
        if r.content_type is CT_JSON:
            return make_response(r.status, r.body, _JSON_CONTENT)
        return make_response(r.status, r.body, [(b"Content-Type", r.content_type)])

    cpdef bytes metrics_text(self):
        name = self.plan.name or "graph"
        return (
            "# HELP ige_requests_total Graph requests answered.\n"
            "# TYPE ige_requests_total counter\n"
            f'ige_requests_total{{graph="{name}"}} {self.requests_total}\n'
            "# HELP ige_requests_failed_total Graph requests answered with a 5xx status.\n"
            "# TYPE ige_requests_failed_total counter\n"
            f'ige_requests_failed_total{{graph="{name}"}} {self.requests_failed}\n'
            "# HELP ige_requests_cancelled_total Graph requests cancelled before their answer: the client hung up (or its connection was aborted).\n"
            "# TYPE ige_requests_cancelled_total counter\n"
            f'ige_requests_cancelled_total{{graph="{name}"}} {self.requests_cancelled}\n'
            "# HELP ige_requests_in_flight Graph requests being processed.\n"
            "# TYPE ige_requests_in_flight gauge\n"
            f'ige_requests_in_flight{{graph="{name}"}} {self.in_flight}\n'
            "# HELP ige_draining 1 once the router is draining after SIGTERM.\n"
            "# TYPE ige_draining gauge\n"
            f"ige_draining {int(self.draining)}\n"
            + headers_dropped_metrics()     # headers.pyx
        ).encode()
