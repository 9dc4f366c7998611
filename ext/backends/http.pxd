# Declarations of ext/backends/http.pyx.
cdef class HttpBackend(Backend):
    cdef readonly Endpoint endpoint
    cdef readonly HttpClient client
    cdef MessageBridge bridge           # for message bodies (engine.bridge.json_body)


cdef class IstioMeshBackend(Backend):
    cdef readonly Backend tls           # the step's https URL
    cdef readonly Backend plain         # the same URL over http
    cdef readonly object probe          # engine.backends.mesh.MeshProbe
    cdef Backend chosen                 # once the probe has answered


cdef class HttpStepCall(ResponseSink):
    pass


cdef class FailingBackend(Backend):
    cdef readonly str cause
