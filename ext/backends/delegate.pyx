# Steps whose backend is written in Python (gRPC).

@cython.final
cdef class DelegateBackend(Backend):
    """A backend implemented in Python (gRPC today): ``impl(body, ctx)`` returns a
    StepResult or an awaitable of one. These protocols carry tensors, where the
    Python call is small next to the payload."""

    def __init__(self, impl, str description):
        self.impl = impl
        self.description = description

    cdef object call(self, object body, RunContext ctx):
        return self.impl(body, ctx)
