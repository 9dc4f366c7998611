# Declarations of ext/front/app.pyx.
cdef class GraphApp(FrontEnd):
    cdef readonly CompiledPlan plan
    cdef readonly HeaderPropagation propagation
    cdef readonly bint draining
    cdef public long long reloads           # plans swapped in (reloads that took)
    cdef public long long reload_errors     # reloads refused: the new graph or policy was invalid
    cdef readonly RequestStats stats
    cdef readonly object v2_front       # (app, request, path) -> answer or None: /v2/models/...
    cdef readonly object access_log
    cdef public object http_client      # the plan's HttpClient: its pools on /metrics, or None
    cdef public object graph_page       # bytes answered at GET /graph, or None: the path runs the graph
    cdef readonly bint kserve_paths     # only /readyz is special; every other path runs the graph
    cdef public object authorizer       # (Authorization value or None) -> None, refusal, or awaitable of one; None: off
    cdef object run_graph(self, HttpRequest request)
    cdef object route(self, HttpRequest request, bytes path)
    cdef object guarded(self, HttpRequest request, bytes path)
    cpdef bytes metrics_text(self)
