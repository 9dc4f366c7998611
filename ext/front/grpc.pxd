# Declarations of ext/front/grpc.pyx.
cdef class GrpcHandler


cdef class _InferCall:
    cdef GrpcHandler handler
    cdef H2Stream stream
    cdef object request
    cdef RunContext ctx


cdef class GrpcHandler(H2Handler):
    cdef readonly GraphApp app
    cdef object wire                    # engine.server.grpc_wire
    cdef object parse_request           # InferRequest.from_grpc
    cdef object as_response             # engine.bridge.as_response
    cdef object bad_request             # BadRequestError
    cdef str version
    cdef dict watchers                  # Health.Watch streams -> (service, status sent)
    cdef bint stopping                  # drain began: not serving, whatever the app says

    cdef int small_call(self, H2Stream s) except -1
    cdef int start_watch(self, H2Stream s) except -1
    cdef int health_of(self, str service)
    cdef int start_infer(self, H2Stream s) except -1
    cdef int infer_done(self, _InferCall call, object flow) except -1
    cdef int fail_call(self, _InferCall call, int code, str message) except -1
    cdef void observe(self, H2Stream s, RunContext ctx, int code, Py_ssize_t bytes_out)
