# Steps whose target is a URL.

@cython.final
cdef class HttpBackend(Backend):
    """POSTs the step's body to one URL through the shared connection pool."""

    def __init__(self, Endpoint endpoint, HttpClient client):
        self.endpoint = endpoint
        self.client = client
        self.description = endpoint.url

    cdef object call(self, object body, RunContext ctx):
        # the pool's future resolves to a ClientResponse; the executor reads it as is
        return self.client.c_request(self.endpoint, body, ctx.headers, ctx.timeout)


@cython.final
cdef class FailingBackend(Backend):
    """A target Go's client would refuse (bad URL, unsupported scheme): every call
    fails with Go's error text, so the graph answers 500 exactly as under KServe."""

    def __init__(self, str url, str cause):
        self.cause = cause
        self.description = f"{url} (unusable: {cause})"

    cdef object call(self, object body, RunContext ctx):
        raise _UpstreamError(self.cause)
