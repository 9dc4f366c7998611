# The router's native gRPC front end: inference.GRPCInferenceService and
# grpc.health.v1.Health on the HTTP/2 layer (h2/server.pyx). ModelInfer runs the
# graph through execute() as the HTTP front end does, on a Flow, and answers the
# graph's InferResponse as its header and tensor buffers, never joined. Its answers
# are engine/server/grpc_front.py's (the grpc.aio front end, kept as a fallback):
# the same messages, status codes and counters, from the same helpers
# (engine/server/grpc_wire.py).

cdef enum GrpcRpc:
    RPC_SERVER_LIVE = 0
    RPC_SERVER_READY = 1
    RPC_MODEL_READY = 2
    RPC_SERVER_METADATA = 3
    RPC_MODEL_METADATA = 4
    RPC_MODEL_INFER = 5
    RPC_HEALTH_CHECK = 6
    RPC_HEALTH_WATCH = 7

cdef dict _GRPC_METHODS = {
    b"/inference.GRPCInferenceService/ServerLive": RPC_SERVER_LIVE,
    b"/inference.GRPCInferenceService/ServerReady": RPC_SERVER_READY,
    b"/inference.GRPCInferenceService/ModelReady": RPC_MODEL_READY,
    b"/inference.GRPCInferenceService/ServerMetadata": RPC_SERVER_METADATA,
    b"/inference.GRPCInferenceService/ModelMetadata": RPC_MODEL_METADATA,
    b"/inference.GRPCInferenceService/ModelInfer": RPC_MODEL_INFER,
    b"/grpc.health.v1.Health/Check": RPC_HEALTH_CHECK,
    b"/grpc.health.v1.Health/Watch": RPC_HEALTH_WATCH,
}

cdef tuple GRPC_CODE_NAMES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED")

# grpc.health.v1 HealthCheckResponse.ServingStatus
cdef int HEALTH_SERVING = 1
cdef int HEALTH_NOT_SERVING = 2
cdef int HEALTH_SERVICE_UNKNOWN = 3
# the services a health check may name: the server as a whole, and ours
cdef frozenset _HEALTH_SERVICES = frozenset(["", "inference.GRPCInferenceService"])

cdef object _grpc_log = _logging.getLogger("engine.server")


@cython.final
@cython.freelist(32)
cdef class _InferCall:
    """One ModelInfer in flight: its stream and what its answer needs."""

    def done(self, flow):
        self.handler.infer_done(self, flow)


cdef class GrpcHandler(H2Handler):
    """The gRPC services of one GraphApp over HTTP/2. ``wire`` is
    engine.server.grpc_wire (the message helpers and the status mapping),
    ``infer_request`` engine.oip.InferRequest and ``as_response``
    engine.bridge.as_response; ``version`` the server's version string."""

    def __init__(self, GraphApp app, Py_ssize_t max_message_size, wire, infer_request,
                 as_response, str version):
        if max_message_size < 1:
            raise ValueError(f"gRPC message size limit {max_message_size} is not positive")
        self.app = app
        self.max_message_size = max_message_size
        self.wire = wire
        self.parse_request = infer_request.from_grpc
        self.as_response = as_response
        self.version = version
        self.watchers = {}
        self.bad_request = wire.BadRequestError

    cdef int on_request(self, H2Stream s) except -1:
        cdef object rpc
        if not s.post:
            s.reset(NGHTTP2_PROTOCOL_ERROR)
            return 0
        if not s.grpc_type:
            s.http_error(415, b"invalid gRPC request content-type")
            return 0
        rpc = _GRPC_METHODS.get(s.path)
        if rpc is None:
            s.finish(GRPC_UNIMPLEMENTED, "Method not found!")
            return 0
        if s.bad_timeout:
            s.finish(GRPC_INTERNAL, "Error parsing 'grpc-timeout' metadata")
            return 0
        if s.compressed:
            s.finish(GRPC_UNIMPLEMENTED, "this server takes only uncompressed messages (grpc-encoding identity)")
            return 0
        s.rpc = <int>rpc
        return 0

    cdef int on_end(self, H2Stream s) except -1:
        if s.msg_buf is not None or s.prefix_len:
            s.finish(GRPC_INTERNAL, "the request ended inside a message")
            return 0
        if s.message is None:
            s.finish(GRPC_INTERNAL, "no request message for a unary call")
            return 0
        if s.rpc == RPC_MODEL_INFER:
            self.start_infer(s)
        elif s.rpc == RPC_HEALTH_WATCH:
            self.start_watch(s)
        else:
            self.small_call(s)
        return 0

    cdef int on_close(self, H2Stream s, uint32_t error_code) except -1:
        if s.flow is not None:
            # a client reset (or its connection lost) cancels the call's step calls
            flow = s.flow
            s.flow = None
            flow.cancel()
        if s.rpc == RPC_HEALTH_WATCH:
            self.watchers.pop(s, None)
        return 0

    # ---- the small calls ----

    cdef int small_call(self, H2Stream s) except -1:
        cdef GraphApp app = self.app
        cdef object wire = self.wire
        cdef bint ready = not app.draining and not self.stopping
        try:
            if s.rpc == RPC_SERVER_LIVE:
                out = wire._bool_field(1, True)
            elif s.rpc == RPC_SERVER_READY:
                out = wire._bool_field(1, ready)
            elif s.rpc == RPC_MODEL_READY:
                wire.parse_name_version(s.message)
                out = wire._bool_field(1, ready)
            elif s.rpc == RPC_SERVER_METADATA:
                out = wire._str_field(1, "inference-graph-engine") + wire._str_field(2, self.version)
            elif s.rpc == RPC_MODEL_METADATA:
                name, version = wire.parse_name_version(s.message)
                out = wire._str_field(1, app.plan.name or name)
                if version:
                    out += wire._str_field(2, version)
                out += wire._str_field(3, "inference-graph")
            else:    # RPC_HEALTH_CHECK
                service = wire.parse_name_version(s.message)[0]
                if service not in _HEALTH_SERVICES:
                    s.finish(GRPC_NOT_FOUND, "unknown service")
                    return 0
                out = _health_status(HEALTH_SERVING if ready else HEALTH_NOT_SERVING)
        except self.bad_request as e:
            s.finish(GRPC_INVALID_ARGUMENT, str(e))
            return 0
        s.queue_message((out,), False)
        s.finish(GRPC_OK, "")
        return 0

    # ---- Health.Watch: the status now, then each change ----

    cdef int start_watch(self, H2Stream s) except -1:
        try:
            service = self.wire.parse_name_version(s.message)[0]
        except self.bad_request as e:
            s.finish(GRPC_INVALID_ARGUMENT, str(e))
            return 0
        status = self.health_of(service)
        self.watchers[s] = (service, status)
        s.queue_message((_health_status(status),))
        return 0

    cdef int health_of(self, str service):
        if service not in _HEALTH_SERVICES:
            return HEALTH_SERVICE_UNKNOWN
        return HEALTH_NOT_SERVING if self.app.draining or self.stopping else HEALTH_SERVING

    def readiness_changed(self):
        """Tell every Health.Watch call the status, where it changed."""
        cdef H2Stream s
        for s, (service, status) in list(self.watchers.items()):
            now = self.health_of(service)
            if now != status:
                self.watchers[s] = (service, now)
                s.queue_message((_health_status(now),))

    def on_drain(self):
        # the watchers learn NOT_SERVING, then their calls end, so that the
        # connections they hold can close
        cdef H2Stream s
        self.stopping = True
        self.readiness_changed()
        for s in list(self.watchers):
            s.finish(GRPC_UNAVAILABLE, "the server is shutting down")

    # ---- ModelInfer ----

    cdef int start_infer(self, H2Stream s) except -1:
        cdef _InferCall call
        cdef double deadline = 0.0
        cdef GraphApp app = self.app
        try:
            req = self.parse_request(s.message)
        except self.bad_request as e:
            self.observe(s, None, GRPC_INVALID_ARGUMENT, 0)
            s.finish(GRPC_INVALID_ARGUMENT, str(e))
            return 0
        if s.timeout > 0:
            deadline = s.timeout - (mono_now() - s.received)
            if deadline <= 0:
                self.observe(s, None, GRPC_DEADLINE_EXCEEDED, 0)
                s.finish(GRPC_DEADLINE_EXCEEDED, "Deadline Exceeded")
                return 0
        call = _InferCall.__new__(_InferCall)
        call.handler = self
        call.stream = s
        call.request = req
        call.ctx = app.context(s.metadata, deadline, "grpc")
        flow = start_flow(execute(app.plan, req, call.ctx), s.conn.loop)
        if type(flow) is Flow and (<Flow>flow).set_direct_callback(call.done):
            s.flow = flow
        else:
            self.infer_done(call, flow)
        return 0

    cdef int infer_done(self, _InferCall call, object flow) except -1:
        cdef H2Stream s = call.stream
        cdef Response r
        cdef int code
        cdef Py_ssize_t sent
        s.flow = None
        if type(flow) is Flow and (<Flow>flow).state == FLOW_DONE:
            value = (<Flow>flow).value       # the usual end, read without method calls
            if s.closed:
                return 0
        elif s.closed or flow.cancelled():
            return 0        # counted by execute() as cancelled; nothing to answer
        else:
            exc = flow.exception()
            if exc is not None:
                # a bug: the client still gets a bounded message
                _grpc_log.error("ModelInfer failed", exc_info=exc)
                return self.fail_call(call, GRPC_INTERNAL, f"{type(exc).__name__}: {exc}")
            value = flow.result()
        r = <Response>value
        if not 200 <= r.status <= 299:
            cause = self.wire.error_text(r.body)
            return self.fail_call(call, self.wire.grpc_status_for(r.status, cause), cause)
        try:
            resp = self.as_response(r.body)
        except self.bad_request as e:
            return self.fail_call(call, GRPC_INTERNAL, f"the graph's answer is not a v2 response: {e}")
        req = call.request
        resp.model_name = self.app.plan.name or req.model_name
        if not resp.id:
            resp.id = req.id
        try:
            chunks = resp.to_grpc()
        except self.bad_request as e:
            return self.fail_call(call, GRPC_INTERNAL, f"the graph's answer cannot be encoded: {e}")
        sent = s.queue_message(chunks, False) - 5
        self.observe(s, call.ctx, GRPC_OK, sent)
        s.finish(GRPC_OK, "")
        return 0

    cdef int fail_call(self, _InferCall call, int code, str message) except -1:
        self.observe(call.stream, call.ctx, code, 0)
        call.stream.finish(code, message)
        return 0

    cdef void observe(self, H2Stream s, RunContext ctx, int code, Py_ssize_t bytes_out):
        # one record per answered call, with the status the client sees (it also ends
        # the call's server span); a cancelled call is counted by execute() alone
        self.app.observe_request("grpc", GRPC_CODE_NAMES[code], mono_now() - s.received,
                                 len(s.message), bytes_out, ctx)


cdef bytes _health_status(int status):
    cdef char out[2]
    out[0] = 0x08       # field 1, varint
    out[1] = <char>status
    return PyBytes_FromStringAndSize(out, 2)
