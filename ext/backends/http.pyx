# Steps whose target is a URL.

@cython.final
cdef class HttpBackend(Backend):
    """POSTs the step's body to one URL through the shared connection pool."""

    def __init__(self, Endpoint endpoint, HttpClient client, MessageBridge bridge=None):
        self.endpoint = endpoint
        self.client = client
        self.bridge = bridge
        self.description = endpoint.url

    cdef object call(self, object body, RunContext ctx):
        cdef HttpStepCall pending = HttpStepCall.__new__(HttpStepCall)
        if type(body) is not bytes and is_oip(body):
            body = need_bridge(self.bridge, body).json_body(body)    # a v1 JSON model gets the v2 JSON request
        if self.client.loop is None:
            self.client.loop = _running_loop()
        pending.loop = self.client.loop
        pending.call = self.client.c_request_to(self.endpoint, body, ctx.headers, ctx.timeout, pending)
        return pending

    def request(self, object body, list headers, double timeout=0.0):
        """POST ``body`` with exactly ``headers`` (none added, none propagated) and
        return the step call, whose StepResult carries the answer's headers: for
        backends written in Python that read them (HTTP v2).
        Awaited by a request's Flow it resumes it without a loop turn, and
        cancelling it cancels the HTTP call, as for any HTTP step."""
        cdef HttpStepCall pending = HttpStepCall.__new__(HttpStepCall)
        if self.client.loop is None:
            self.client.loop = _running_loop()
        pending.loop = self.client.loop
        pending.call = self.client.c_request_to(self.endpoint, body, headers, timeout, pending)
        return pending


@cython.final
cdef class HttpStepCall(ResponseSink):
    """An HTTP step in flight: the connection pool delivers its outcome here directly
    (no future), settling the StepCall with the answer's status, headers and body."""

    cdef on_response(self, ClientResponse resp):
        self.call = None
        self.settle(StepResult(resp.status, resp.body, resp.headers), False)


@cython.final
cdef class IstioMeshBackend(Backend):
    """An https step under KServe's Istio rule (#4031): inside an Istio mesh the router
    calls it over plain HTTP, same host, port and path, and lets the sidecar do TLS.
    ``probe`` (engine.backends.mesh.MeshProbe) finds out once per process, at the
    first https call; until then calls wait for it, afterwards they go straight to
    the chosen backend."""

    def __init__(self, Backend tls, Backend plain, object probe):
        self.tls = tls
        self.plain = plain
        self.probe = probe
        self.description = tls.description

    cdef object call(self, object body, RunContext ctx):
        if self.chosen is not None:
            return self.chosen.call(body, ctx)
        in_mesh = self.probe.in_mesh
        if in_mesh is not None:
            self.chosen = self.plain if in_mesh else self.tls
            return self.chosen.call(body, ctx)
        return self.call_after_probe(body, ctx)

    async def call_after_probe(self, object body, RunContext ctx):
        # the probe's own failure fails this call (KServe: 500 with its error)
        in_mesh = await self.probe.check()
        self.chosen = self.plain if in_mesh else self.tls
        r = self.chosen.call(body, ctx)
        if type(r) is not StepResult:
            r = await r
        return r


@cython.final
cdef class FailingBackend(Backend):
    """A target Go's client would refuse (bad URL, unsupported scheme): every call
    fails with Go's error text, so the graph answers 500 exactly as under KServe."""

    def __init__(self, str url, str cause):
        self.cause = cause
        self.description = f"{url} (unusable: {cause})"

    cdef object call(self, object body, RunContext ctx):
        raise _UpstreamError(self.cause)
