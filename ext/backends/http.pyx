# Steps whose target is a URL.

@cython.final
cdef class HttpBackend(Backend):
    """POSTs the step's body to one URL through the shared connection pool."""

    def __init__(self, Endpoint endpoint, HttpClient client):
        self.endpoint = endpoint
        self.client = client
        self.description = endpoint.url

    cdef object call(self, object body, RunContext ctx):
        cdef HttpStepCall pending = HttpStepCall.__new__(HttpStepCall)
        if type(body) is not bytes and is_oip(body):
            body = oip_json_body(body)      # bridge.pyx: a v1 JSON model gets the v2 JSON request
        if self.client.loop is None:
            self.client.loop = _running_loop()
        pending.loop = self.client.loop
        pending.call = self.client.c_request_to(self.endpoint, body, ctx.headers, ctx.timeout, pending)
        return pending

    def request(self, object body, list headers, double timeout=0.0):
        """POST ``body`` with exactly ``headers`` (none added, none propagated) and
        return a step call whose outcome is the ClientResponse, headers included:
        for backends written in Python that read the answer's headers (HTTP v2).
        Awaited by a request's Flow it resumes it without a loop turn, and
        cancelling it cancels the HTTP call, as for any HTTP step."""
        cdef HttpStepCall pending = HttpStepCall.__new__(HttpStepCall)
        if self.client.loop is None:
            self.client.loop = _running_loop()
        pending.loop = self.client.loop
        pending.raw = True
        pending.call = self.client.c_request_to(self.endpoint, body, headers, timeout, pending)
        return pending


@cython.final
cdef class HttpStepCall(ResponseSink):
    """An HTTP step in flight. The connection pool delivers its outcome here directly
    (no future), and the request's Flow resumes from that delivery (no loop turn).
    It also speaks the Future protocol, so an asyncio Task can await it too."""

    cdef on_response(self, ClientResponse resp):
        if self.raw:
            self.settle(resp, False)
        else:
            self.settle(StepResult(resp.status, resp.body), False)

    cdef on_error(self, object exc):
        self.settle(exc, True)

    cdef void settle(self, object outcome, bint failed):
        cdef Flow waiter
        if self.finished:
            return
        if ENGINE_DEBUG and self.waiter is not None and self.callbacks is not None:
            raise _InternalEngineError("an HTTP step awaited by a flow and by callbacks at once")
        self.finished = True
        self.failed = failed
        self.outcome = outcome
        self.call = None
        if self.waiter is not None:
            waiter = self.waiter
            self.waiter = None
            waiter.awaiting = None
            waiter.step()
        if self.callbacks is not None:
            for cb, context in self.callbacks:
                self.loop.call_soon(cb, self, context=context)
            self.callbacks = None

    # ---- awaiting: `await pending` yields it until the outcome is in ----

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if not self.finished:
            self._asyncio_future_blocking = True
            return self
        if self.failed:
            raise self.outcome
        raise StopIteration(self.outcome)

    # ---- the Future protocol an asyncio Task uses ----

    def get_loop(self):
        return self.loop

    def done(self):
        return self.finished

    def cancelled(self):
        return self.finished and self.failed and isinstance(self.outcome, _CancelledError)

    def result(self):
        if not self.finished:
            raise _asyncio.InvalidStateError("the step is still running")
        if self.failed:
            raise self.outcome
        return self.outcome

    def exception(self):
        if not self.finished:
            raise _asyncio.InvalidStateError("the step is still running")
        if self.failed and isinstance(self.outcome, _CancelledError):
            raise self.outcome
        return self.outcome if self.failed else None

    def add_done_callback(self, cb, *, context=None):
        if self.finished:
            self.loop.call_soon(cb, self, context=context)
        elif self.callbacks is None:
            self.callbacks = [(cb, context)]
        else:
            self.callbacks.append((cb, context))

    def remove_done_callback(self, cb):
        if not self.callbacks:
            return 0
        before = len(self.callbacks)
        self.callbacks = [(c, x) for c, x in self.callbacks if c != cb]
        return before - len(self.callbacks)

    def cancel(self, msg=None):
        """Stop waiting: the awaiting code sees CancelledError at once, and the HTTP
        call is cancelled in the pool (never sent if it still waits for a slot; its
        connection closed, and the slot freed, if it is on one)."""
        cdef _Call call = self.call
        if self.finished:
            return False
        self.call = None
        if call is not None:
            call.cancel()
        self.settle(_CancelledError() if msg is None else _CancelledError(msg), True)
        return True


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
