# Declarations of ext/backends/http.pyx.
cdef class HttpBackend(Backend):
    cdef readonly Endpoint endpoint
    cdef readonly HttpClient client


cdef class IstioMeshBackend(Backend):
    cdef readonly Backend tls           # the step's https URL
    cdef readonly Backend plain         # the same URL over http
    cdef readonly object probe          # engine.backends.mesh.MeshProbe
    cdef Backend chosen                 # once the probe has answered


cdef class HttpStepCall(ResponseSink):
    cdef object loop
    cdef object outcome
    cdef _Call call                     # in the pool until the outcome is in (cancel)
    cdef bint finished
    cdef bint failed
    cdef bint raw                       # the outcome is the ClientResponse, not a StepResult
    cdef Flow waiter
    cdef list callbacks
    cdef public bint _asyncio_future_blocking
    cdef void settle(self, object outcome, bint failed)


cdef class FailingBackend(Backend):
    cdef readonly str cause
