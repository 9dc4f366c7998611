# Declarations of engine._core (ext/_core.pyx and the files it includes).
# Cython finds this file by the module's dotted name (include_path=["ext"]).
from engine._gjson cimport Path


cpdef enum RouterType:
    ROUTER_SEQUENCE = 0
    ROUTER_SPLITTER = 1
    ROUTER_ENSEMBLE = 2
    ROUTER_SWITCH = 3


cpdef enum StepTarget:
    TARGET_BACKEND = 0
    TARGET_NODE = 1


# ---- flow.pyx ---------------------------------------------------------------

cdef enum FlowState:
    FLOW_RUNNING = 0
    FLOW_DONE = 1
    FLOW_FAILED = 2
    FLOW_CANCELLED = 3


cdef class Flow:
    cdef object coro
    cdef object loop
    cdef object awaiting
    cdef object value
    cdef object exc
    cdef list callbacks
    cdef object direct
    cdef int state
    cdef bint must_cancel               # cancelled with nothing to cancel: throw at the next step
    cdef void step(self)
    cdef void cancel_awaited(self)
    cdef void settle(self, int state, object value, object exc)


cpdef object start_flow(object awaitable, object loop)


# ---- plan.pyx -------------------------------------------------------------

cdef class StepResult:
    cdef readonly int status
    cdef readonly object body


cdef class RunContext:
    cdef readonly list headers          # [(bytes, bytes)] forwarded to every step
    cdef readonly double timeout        # serviceClient seconds; <= 0: none
    cdef readonly bint v2_bridge        # the request entered as an OIP message (bridge.pyx)
    cdef tuple site                     # failure records: PlanStep.site of the step running
    cdef double started                 #   and when it started (plan.pyx, _log_failures)


cdef class Backend:
    cdef readonly str description
    cdef object call(self, object body, RunContext ctx)


cdef class HeaderPropagation:
    cdef list patterns
    cdef dict verdicts
    cdef object verdict(self, object raw_name)
    cpdef list select(self, list headers)


cdef class PlanStep:
    cdef readonly int index
    cdef readonly str name
    cdef readonly bytes ensemble_key    # JSON-encoded key with the colon: b'"name":'
    cdef readonly int target            # StepTarget
    cdef readonly int node_index        # when target is TARGET_NODE
    cdef readonly Backend backend       # when target is TARGET_BACKEND
    cdef readonly Path condition        # None when the step has none
    cdef readonly str condition_text
    cdef readonly bint use_response     # data: $response (never for a Sequence's first step)
    cdef readonly bint map_predictions
    cdef readonly bint hard
    cdef readonly int weight_end        # Splitter: cumulative weight up to this step
    cdef readonly tuple site            # (node name, step name or index, target or None)


cdef class PlanNode:
    cdef readonly int index
    cdef readonly str name
    cdef readonly int router_type       # RouterType
    cdef readonly tuple steps           # of PlanStep, in spec order
    cdef readonly tuple ensemble_order  # Ensemble: step positions sorted by key (Go map order)


cdef class CompiledPlan:
    cdef readonly tuple nodes           # of PlanNode; nodes[0] is root
    cdef readonly double service_timeout
    cdef readonly str name


cdef class Response:
    cdef readonly int status
    cdef readonly object body
    cdef readonly bytes content_type


cdef class EnsembleJoin:
    cdef CompiledPlan plan
    cdef PlanNode node
    cdef list outcomes
    cdef int cursor
    cdef object waiter
    cdef double started                 # failure records: when the steps were started,
    cdef list contexts                  #   and the own RunContext of each node step
    cdef void settle(self, int i, object outcome)
    cdef void advance(self)


# ---- go_json.pyx ------------------------------------------------------------

cdef struct GoBuf:
    char *data
    Py_ssize_t len
    Py_ssize_t cap


cdef struct GoNumber:                   # a JSON number as strconv.ParseFloat reads it
    unsigned long long man              # its first 19 significant digits
    int digits                          # how many digits man holds
    int exp10                           # the number is man * 10**exp10 (unless truncated)
    bint neg
    bint truncated                      # nonzero digits after the 19th
    bint plain                          # no exponent, no trailing zero in its fraction


cdef struct GoMember:                   # one member of an object being re-encoded
    Py_ssize_t key_at                   # its decoded key in GoJsonRoundTrip.keys
    Py_ssize_t key_len
    Py_ssize_t start                    # its "key":value in GoJsonRoundTrip.out
    Py_ssize_t end


cdef struct GoObject:                   # an object being re-encoded
    Py_ssize_t body_at                  # out offset just after its {
    Py_ssize_t first                    # index of its first member in members
    Py_ssize_t keys_at                  # keys' length when it opened
    Py_ssize_t key_at                   # the pending member's key, until its value ends
    Py_ssize_t key_len
    Py_ssize_t key_start


cdef class GoJsonRoundTrip:
    cdef const unsigned char *src
    cdef Py_ssize_t n
    cdef Py_ssize_t pos
    cdef GoBuf out                      # the re-encoded predictions (and room after them)
    cdef GoBuf scratch                  # one decoded string, or an object's sorted members
    cdef GoBuf keys                     # decoded keys of the open objects' members
    cdef GoBuf members                  # GoMember records of the open objects
    cdef GoBuf frames                   # GoObject records, innermost last
    cdef GoBuf kinds                    # b"{" or b"[" per open container (data only)

    cdef object run(self, const unsigned char *src, Py_ssize_t n)
    cdef void skip_ws(self) noexcept
    cdef Py_ssize_t scan_string(self, Py_ssize_t i, bint *plain) noexcept
    cdef int unquote(self, Py_ssize_t i, Py_ssize_t end) except -1
    cdef int encode_scratch(self) except -1
    cdef int emit_string(self, Py_ssize_t i, Py_ssize_t end, bint plain) except -1
    cdef Py_ssize_t scan_number(self, Py_ssize_t i) noexcept
    cdef int emit_number(self, Py_ssize_t start, Py_ssize_t end) except -1
    cdef int literal(self, const char *word, Py_ssize_t size, bint emit) except -1
    cdef int member_key(self, bint emit) except -1
    cdef int open_object(self) except -1
    cdef int end_member(self) except -1
    cdef int close_object(self) except -1
    cdef int value(self, bint emit, int depth) except -1


cdef object go_map_predictions(object body)


# ---- bridge.pyx (protocol bridging hooks) -------------------------------------

cdef bint is_oip(object body)
cdef object oip_condition_body(object body)
cdef bint ensemble_has_oip(list outcomes)
cdef object oip_merge_ensemble(PlanNode node, list outcomes)
cdef object oip_json_body(object body)


cdef class DelegateBackend(Backend):
    cdef readonly object impl
    cdef readonly Backend plain
    cdef readonly bint bridge_bytes


# ---- local_backend.pyx ----------------------------------------------------

cdef class LocalBackend(Backend):
    cdef readonly object fn
    cdef bint wants_headers


# Forward declarations for the HTTP layer
cdef class _HttpServerProtocol
cdef class _ClientConnection
cdef class _HostPool


# ---- http_common.pyx ----

cdef class _BodyReader:
    cdef object owner                   # _HttpServerProtocol or _ClientConnection
    cdef bint for_server
    cdef bytes body                     # the body being filled
    cdef Py_ssize_t offset              # bytes filled so far
    cdef Py_ssize_t end                 # len(body)


# ---- http_server.pyx ----

cdef class HttpRequest:
    cdef readonly bytes method
    cdef readonly bytes path
    cdef readonly list headers
    cdef readonly object body
    cdef readonly bint keep_alive
    cdef readonly object transport_info
    cdef bint http10


cdef class HttpResponse:
    cdef readonly int status
    cdef readonly object body
    cdef readonly list headers


cdef class _PendingAnswer:
    cdef object fut
    cdef HttpResponse response
    cdef HttpRequest request
    cdef bint keep_alive
    cdef bint http10
    cdef bint head
    cdef bint counted
    cdef double deadline


cdef class HttpServer:
    cdef readonly object handler
    cdef readonly Py_ssize_t max_body_size
    cdef readonly Py_ssize_t max_header_size
    cdef readonly Py_ssize_t max_headers
    cdef readonly double read_timeout
    cdef readonly double write_timeout
    cdef readonly double idle_timeout
    cdef double timer_period
    cdef set connections
    cdef readonly bint draining
    cdef object drained
    cdef readonly int active_requests

    cdef void connection_gone(self, _HttpServerProtocol proto)


cdef class _HttpServerProtocol:
    cdef HttpServer server
    cdef double answer_deadline
    cdef object loop
    cdef object transport
    cdef object write
    cdef object parser
    cdef object pending
    cdef object peer
    cdef object timer
    cdef bytes url
    cdef list headers
    cdef list chunks
    cdef bytes body_buf                 # large Content-Length body, filled in place
    cdef _BodyReader reader
    cdef Py_ssize_t body_size
    cdef Py_ssize_t head_bytes
    cdef Py_ssize_t head_raw
    cdef Py_ssize_t nheaders
    cdef Py_ssize_t messages_done
    cdef long long content_length
    cdef bint in_message
    cdef bint headers_done
    cdef bint expect_continue
    cdef bint connection_header
    cdef bint continue_owed
    cdef bint closing
    cdef bint closed
    cdef bint lingering
    cdef bint writing_paused
    cdef bint reading_paused
    cdef bint chunked
    cdef bint taking_body               # body_buf is read past the parser
    cdef bint can_switch                # the transport may switch to the body reader
    cdef int error_status
    cdef str error_reason
    cdef double read_deadline
    cdef double write_deadline
    cdef double timer_at

    cdef bint feed(self, object data, Py_ssize_t start, Py_ssize_t end) except -1
    cdef Py_ssize_t take_body(self, const char *p, Py_ssize_t n) except -1
    cdef body_read(self, Py_ssize_t n)
    cdef finish_body(self)
    cdef dispatch(self, HttpRequest req)
    cdef flush(self)
    cdef send(self, HttpResponse resp, bint keep_alive, bint http10, bint head)
    cdef fail(self, int status, str reason)
    cdef stop(self, int status, str reason)
    cdef update_reading(self)
    cdef start_drain(self)
    cdef abort(self)
    cdef arm_timer(self)


# ---- http_client.pyx ----

cdef class Endpoint:
    cdef readonly str url
    cdef readonly str host
    cdef readonly int port
    cdef readonly bint tls
    cdef readonly bytes target
    cdef bytes prefix
    cdef tuple pool_key
    cdef str dial_address
    cdef str error_prefix
    cdef object pool_owner
    cdef object pool


cdef class ClientResponse:
    cdef readonly int status
    cdef readonly list headers
    cdef readonly object body


cdef class ResponseSink:
    cdef on_response(self, ClientResponse resp)
    cdef on_error(self, object exc)


cdef class _Call:
    cdef Endpoint ep
    cdef object fut
    cdef ResponseSink sink
    cdef object timer
    cdef object conn
    cdef object body
    cdef bytes head
    cdef int phase
    cdef bint retried
    cdef double deadline
    cdef _HostPool queued_in            # set while it waits in that pool's queue

    cdef bint is_done(self)
    cdef cancel(self)
    cdef arm_own_timer(self, loop)
    cdef deliver(self, ClientResponse resp, object exc)
    cdef finish(self, ClientResponse resp)
    cdef fail(self, str cause, bint prefixed=*)


cdef class HttpClient:
    cdef readonly Py_ssize_t max_per_host
    cdef readonly double idle_timeout
    cdef object ssl_context
    cdef object loop
    cdef dict pools
    cdef readonly bint closed

    cdef object c_request(self, Endpoint ep, object body, list headers, double timeout)
    cdef _Call c_request_to(self, Endpoint ep, object body, list headers, double timeout,
                            ResponseSink sink)
    cdef submit_call(self, _Call call, Endpoint ep, object body, list headers, double timeout)


cdef class _HostPool:
    cdef HttpClient client
    cdef str host
    cdef str dial_address
    cdef int port
    cdef bint tls
    cdef list idle
    cdef object waiters
    cdef object timer
    cdef set active
    cdef Py_ssize_t nopen
    cdef Py_ssize_t dead_waiters        # cancelled or timed out, still in waiters

    cdef submit(self, _Call call)
    cdef _Call next_waiter(self)
    cdef drop_waiter(self, _Call call)
    cdef dial(self, _Call call)
    cdef release(self, _ClientConnection conn)
    cdef forget(self, _ClientConnection conn)
    cdef close(self)


cdef class _ClientConnection:
    cdef _HostPool pool
    cdef object transport
    cdef object write
    cdef _Call dialing
    cdef _Call call
    cdef bint counted
    cdef bint closed
    cdef bint reused
    cdef bint got_byte
    cdef bint response_close
    cdef bint buffered                  # the transport calls get_buffer (uvloop)
    cdef bint in_reader                 # get_buffer hands out the body reader's window
    cdef bytearray head
    cdef int state
    cdef str addresses
    cdef double idle_since
    cdef int status
    cdef list headers
    cdef object body
    cdef list chunks
    cdef _BodyReader reader
    cdef Py_ssize_t filled
    cdef Py_ssize_t remaining
    cdef long long chunk_size
    cdef int digits
    cdef Py_ssize_t line_len
    cdef object timer
    cdef double timer_at

    cdef arm_timer(self, double deadline)
    cdef bint in_idle(self)
    cdef abort(self)
    cdef start(self, _Call call, bint reused)
    cdef fail_read(self, _Call call, exc)
    cdef malformed(self, str what)
    cdef scan(self, data)
    cdef body_read(self, Py_ssize_t n)
    cdef bint parse_head(self, const char *s, Py_ssize_t length) except -1
    cdef complete(self, _Call call, bint may_reuse)


cdef class _ForwardOne:
    cdef HttpClient client
    cdef Endpoint ep


cdef class _Relay(ResponseSink):
    cdef object out


# ---- app.pyx ----------------------------------------------------------------

cdef class GraphApp:
    cdef readonly CompiledPlan plan
    cdef readonly HeaderPropagation propagation
    cdef readonly bint draining
    cdef readonly long long requests_total
    cdef readonly long long requests_failed
    cdef readonly long long requests_cancelled
    cdef readonly long long in_flight
    cdef readonly object access_log
    cdef readonly bint kserve_paths     # only /readyz is special; every other path runs the graph
    cpdef bytes metrics_text(self)


# ---- http_backend.pyx ---------------------------------------------------------

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
