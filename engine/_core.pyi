"""Type stubs for engine._core, the compiled per-request core."""
import asyncio
import enum
import logging
import re
from typing import Any, Awaitable, Callable, Generator, Iterable, Mapping, Optional, Sequence, Union

from engine._gjson import SwitchTable
from engine.oip import InferRequest, InferResponse

Buffer = Union[bytes, bytearray, memoryview]
# A step body: bytes-like (JSON or any payload) or an OIP message (oip/codec.pyx, core/bridge.pyx)
Body = Union[bytes, bytearray, memoryview, "InferRequest", "InferResponse"]
HeaderList = list[tuple[bytes, bytes]]

# base/rng.pyx
def seed_router_rng(seed: int) -> None: ...
def router_rng_below(bound: int) -> int: ...

# http/server.pyx
class HttpRequest:
    """One parsed request, handed to the server's handler."""
    def __init__(self, method: bytes = b"POST", path: bytes = b"/", headers: Optional[HeaderList] = None,
                 body: Buffer = b"", keep_alive: bool = True,
                 transport_info: Optional[tuple[str, int]] = None) -> None: ...
    @property
    def method(self) -> bytes: ...
    @property
    def path(self) -> bytes: ...
    @property
    def headers(self) -> HeaderList: ...
    @property
    def body(self) -> bytes: ...
    @property
    def keep_alive(self) -> bool: ...
    @property
    def transport_info(self) -> Optional[tuple[str, int]]: ...

class HttpResponse:
    """The handler's answer; the server adds Content-Length, Date and Connection."""
    def __init__(self, status: int, body: Buffer = b"", headers: Optional[HeaderList] = None) -> None: ...
    @property
    def status(self) -> int: ...
    @property
    def body(self) -> Buffer: ...
    @property
    def headers(self) -> Optional[HeaderList]: ...

Handler = Callable[[HttpRequest], Union[HttpResponse, Awaitable[HttpResponse]]]

class HttpServer:
    """HTTP/1.x server protocol factory with limits, timeouts and drain."""
    def __init__(self, handler: Handler, *, max_body_size: int = ..., max_header_size: int = ...,
                 max_headers: int = ..., read_timeout: float = ..., write_timeout: float = ...,
                 idle_timeout: float = ...) -> None: ...
    def protocol_factory(self) -> asyncio.Protocol: ...
    async def drain(self, grace: Optional[float] = None) -> None: ...
    @property
    def active_requests(self) -> int: ...
    @property
    def open_connections(self) -> int: ...
    @property
    def draining(self) -> bool: ...
    @property
    def handler(self) -> Handler: ...
    @property
    def max_body_size(self) -> int: ...
    @property
    def max_header_size(self) -> int: ...
    @property
    def max_headers(self) -> int: ...
    @property
    def read_timeout(self) -> float: ...
    @property
    def write_timeout(self) -> float: ...
    @property
    def idle_timeout(self) -> float: ...

# http/client.pyx
class Endpoint:
    """A backend URL parsed once (http:// or https://); ValueError on a bad URL."""
    def __init__(self, url: str) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def tls(self) -> bool: ...
    @property
    def target(self) -> bytes: ...

class ClientResponse:
    """A backend's answer."""
    def __init__(self, status: int, body: Buffer = b"", headers: Optional[HeaderList] = None) -> None: ...
    @property
    def status(self) -> int: ...
    @property
    def headers(self) -> HeaderList: ...
    @property
    def body(self) -> bytes: ...

class StepCall:
    """A backend call in flight (base/flow.pyx): awaitable, Future-like, settles once."""
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self) -> Any: ...
    def exception(self) -> BaseException | None: ...
    def cancel(self, msg: object = ...) -> bool: ...
    def add_done_callback(self, cb: Callable[..., Any], *, context: Any = ...) -> None: ...
    def __await__(self) -> Generator[Any, None, Any]: ...

class ResponseSink(StepCall):
    """Base of C-level receivers for HttpClient.c_request_to (subclass in Cython)."""

def debug_counters() -> dict[str, int] | None: ...

class HttpClient:
    """Per-host pools of keep-alive connections; errors are engine.errors.UpstreamError."""
    def __init__(self, *, max_connections_per_host: int = 64, idle_timeout: float = 90.0,
                 ssl_context: Optional[object] = None) -> None: ...
    def request(self, ep: Endpoint, body: Buffer, headers: Optional[HeaderList] = None,
                timeout: Optional[float] = None) -> asyncio.Future[ClientResponse]: ...
    async def close(self) -> None: ...
    @property
    def max_per_host(self) -> int: ...
    @property
    def idle_timeout(self) -> float: ...
    @property
    def closed(self) -> bool: ...

def _scan_response(chunks: list[bytes], repeat: int = 1) -> tuple[ClientResponse, bool]: ...
def _request_bytes(ep: Endpoint, body: Buffer | list[Buffer], headers: Optional[HeaderList] = None) -> bytes: ...


# ---- header propagation (core/headers.pyx) -----------------------------------------------

def canonical_header_name(name: str | bytes) -> bytes: ...
def compile_header_patterns(spec: str) -> tuple[list[re.Pattern[str]], list[str]]: ...

class HeaderPropagation:
    def __init__(self, patterns: list[re.Pattern[str]]) -> None: ...
    @property
    def enabled(self) -> bool: ...
    def select(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]: ...

def grpc_metadata(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str | bytes]]: ...
def headers_dropped() -> dict[str, int]: ...


# ---- request flows (base/flow.pyx) -------------------------------------------------------

class Flow:
    def done(self) -> bool: ...
    def cancelled(self) -> bool: ...
    def result(self) -> Any: ...
    def exception(self) -> BaseException | None: ...
    def add_done_callback(self, cb: Callable[[Flow], object], *, context: object = ...) -> None: ...
    def remove_done_callback(self, cb: Callable[[Flow], object]) -> int: ...
    def set_direct_callback(self, cb: Callable[[Flow], object]) -> bool: ...
    def cancel(self, msg: object = ...) -> bool: ...
    def __await__(self) -> Generator[Any, None, Any]: ...

def start_flow(awaitable: Awaitable[Any], loop: asyncio.AbstractEventLoop) -> Any: ...


# ---- plans and their execution (core/, backends/) -----

class RouterType(enum.IntEnum):
    ROUTER_SEQUENCE = 0
    ROUTER_SPLITTER = 1
    ROUTER_ENSEMBLE = 2
    ROUTER_SWITCH = 3

class StepTarget(enum.IntEnum):
    TARGET_BACKEND = 0
    TARGET_NODE = 1

class RouteFailure(Exception):
    cause: str
    status: int
    def __init__(self, cause: str, status: int = 500) -> None: ...

class StepResult:
    status: int
    body: Body
    headers: HeaderList | None
    def __init__(self, status: int, body: Body, headers: HeaderList | None = None) -> None: ...

class RequestStats:
    total: int
    failed: int
    cancelled: int
    in_flight: int

class FrontEnd: ...

class RunContext:
    headers: list[tuple[bytes, bytes]]
    timeout: float
    v2_bridge: bool
    trace: TraceContext | None
    def __init__(self, headers: list[tuple[bytes, bytes]], timeout: float) -> None: ...

# ---- tracing (ext/core/trace.pyx) ---------------------------------------------------

class SpanKind(enum.IntEnum):
    SPAN_SERVER = 0
    SPAN_CLIENT = 1

KIND_SERVER: int
KIND_CLIENT: int
PROTOCOL_HTTP: int
PROTOCOL_GRPC: int

class TraceContext:
    trace_id: int
    trace_id_hex: str
    span_id: int
    remote_parent: int
    sampled: bool
    tracestate: bytes | None
    server: SpanRecord | None
    protocol: int
    def headers_for(self, headers: list[tuple[bytes, bytes]], span_id: int) -> list[tuple[bytes, bytes]]: ...

class SpanRecord:
    trace: TraceContext
    span_id: int
    parent_id: int
    kind: int
    start_ns: int
    end_ns: int
    status: int
    code: str | None
    error: str | None
    error_type: str | None
    step: PlanStep | None
    plan: CompiledPlan | None
    method: bytes | None
    path: bytes | None

class Tracer:
    max_queue: int
    batch_size: int
    dropped: int
    finished: int
    exported: int
    export_failed: int
    queued: int
    def __init__(self, sampler: str = "parentbased_always_on", ratio: float = 1.0, *,
                 max_queue: int = 2048, batch_size: int = 512,
                 wake: Callable[[], Any] | None = None) -> None: ...
    def take(self, limit: int = 0) -> list[SpanRecord]: ...
    def begin_trace(self, headers: list[tuple[bytes, bytes]], protocol: str = "http") -> TraceContext: ...

def set_tracer(tracer: Tracer | None) -> None: ...
def get_tracer() -> Tracer | None: ...
def trace_request(ctx: RunContext, plan: CompiledPlan, headers: list[tuple[bytes, bytes]],
                  protocol: str = "http") -> TraceContext | None: ...

class Backend:
    description: str
    def invoke(self, body: Body, ctx: RunContext) -> StepResult | Awaitable[StepResult]: ...

class LocalBackend(Backend):
    fn: Callable[..., Any]
    def __init__(self, fn: Callable[..., Any], name: str | None = None,
                 bridge: MessageBridge | None = None) -> None: ...

def local_step_result(value: Any) -> StepResult: ...
def local_failure_result(e: BaseException) -> StepResult: ...

class HttpBackend(Backend):
    endpoint: Endpoint
    client: HttpClient
    def __init__(self, endpoint: Endpoint, client: HttpClient,
                 bridge: MessageBridge | None = None) -> None: ...
    def request(self, body: Any, headers: Optional[HeaderList],
                timeout: float = ...) -> HttpStepCall: ...

class HttpStepCall(ResponseSink): ...

class FailingBackend(Backend):
    cause: str
    def __init__(self, url: str, cause: str) -> None: ...

class IstioMeshBackend(Backend):
    tls: Backend
    plain: Backend
    probe: Any
    def __init__(self, tls: Backend, plain: Backend, probe: Any) -> None: ...

class PlanStep:
    index: int
    name: str
    ensemble_key: bytes
    target: int
    node_index: int
    backend: Backend | None
    condition: object | None
    condition_text: str
    use_response: bool
    map_predictions: bool
    hard: bool
    weight_end: int
    policy: Any
    stats: StepStats | None
    data_path: object | None
    data_text: str
    def __init__(self, index: int, name: str, target: int, node_index: int, backend: Backend | None,
                 condition: object | None, condition_text: str, use_response: bool,
                 map_predictions: bool, hard: bool, weight_end: int, policy: Any = None,
                 data_path: object | None = None, data_text: str = "") -> None: ...

class PlanNode:
    index: int
    name: str
    router_type: int
    steps: tuple[PlanStep, ...]
    ensemble_order: tuple[int, ...]
    merge_outputs: bool
    switch_groups: tuple[tuple[int, SwitchTable], ...] | None
    def __init__(self, index: int, name: str, router_type: int, steps: tuple[PlanStep, ...],
                 merge_outputs: bool = False,
                 switch_groups: tuple[tuple[int, SwitchTable], ...] | None = None) -> None: ...

class CompiledPlan:
    nodes: tuple[PlanNode, ...]
    service_timeout: float
    name: str
    bridge: MessageBridge | None
    buckets: tuple[float, ...]
    step_metrics: bool
    def __init__(self, nodes: tuple[PlanNode, ...], service_timeout: float, name: str,
                 bridge: MessageBridge | None = None, buckets: Sequence[float] | str | None = None,
                 step_metrics: bool = True) -> None: ...

DEFAULT_BUCKETS: tuple[float, ...]
STEP_ERROR_KINDS: tuple[str, ...]
def metrics_buckets(value: Sequence[float] | str | None) -> tuple[float, ...]: ...
def label_value(value: str) -> str: ...
def accepts_openmetrics(accept: bytes) -> bool: ...
def wants_openmetrics(headers: HeaderList) -> bool: ...
def openmetrics_text(text: bytes) -> bytes: ...

class Histogram:
    sum: float
    count: int
    def __init__(self, bounds: tuple[float, ...]) -> None: ...
    def cumulative(self) -> list[tuple[float, int]]: ...

class StepStats:
    bounds: tuple[float, ...]
    def __init__(self, bounds: tuple[float, ...]) -> None: ...
    def by_code(self) -> list[tuple[str, Histogram]]: ...
    def error_counts(self) -> dict[str, int]: ...

class Response:
    status: int
    body: Body
    content_type: bytes | None
    def __init__(self, status: int, body: Body, content_type: bytes | None = None) -> None: ...
    @property
    def headers(self) -> dict[str, str]: ...
    def json(self) -> Any: ...

async def execute(plan: CompiledPlan, body: Body, ctx: RunContext) -> Response: ...
def set_step_tracing(logger: logging.Logger | None) -> None: ...
def set_step_failure_log(logger: logging.Logger | None) -> None: ...

# json/go_json.pyx, json/go_float.pyx: Go's encoding/json round trip of mapPredictionsToInstances
def map_predictions_to_instances(body: Body) -> Body: ...
def go_format_float(x: float) -> bytes: ...
def go_parse_float(text: Buffer) -> float: ...


# ---- the router's HTTP front end (front/app.pyx) ---------------------------------------

class GraphApp(FrontEnd):
    plan: CompiledPlan
    propagation: HeaderPropagation
    draining: bool
    requests_total: int
    requests_failed: int
    requests_cancelled: int
    in_flight: int
    access_log: logging.Logger | None
    kserve_paths: bool
    stats: RequestStats
    v2_front: Callable[..., Any] | None
    http_client: HttpClient | None
    graph_page: bytes | None
    reloads: int
    reload_errors: int
    # (Authorization header value or None) -> None (allowed), a refusal
    # (status, headers, body), or an awaitable of either; None: no check
    authorizer: Callable[[bytes | None], Any] | None
    def swap(self, plan: CompiledPlan, propagation: HeaderPropagation,
             graph_page: bytes | None = None) -> None: ...
    def observe_request(self, protocol: str, code: int | str, seconds: float, bytes_in: int = 0,
                        bytes_out: int = 0, ctx: RunContext | None = None) -> None: ...
    def __init__(self, plan: CompiledPlan, propagation: HeaderPropagation, *,
                 kserve_paths: bool = False, v2_front: Callable[..., Any] | None = None) -> None: ...
    def context(self, headers: HeaderList, deadline: float = 0.0,
                protocol: str = "http", request: HttpRequest | None = None) -> RunContext: ...
    def enable_access_log(self, logger: logging.Logger | None) -> None: ...
    def start_draining(self) -> None: ...
    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]: ...
    def metrics_text(self) -> bytes: ...
    def metrics_openmetrics(self) -> bytes: ...


# ---- OIP v2 codec (oip/codec.pyx) -------------------------------------------------------

class Message:
    """Base of engine.oip.InferRequest and InferResponse."""
def body_is_oip(body: object) -> bool: ...

OIP_DATATYPES: tuple[str, ...]
def oip_itemsize(datatype: str) -> int: ...
def oip_numpy_dtype(datatype: str) -> Any: ...
def oip_numel(shape: Iterable[int]) -> int: ...
def oip_nbytes(datatype: str, shape: Iterable[int]) -> int: ...

class Tensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: dict[str, Any]
    data: Any
    def __init__(self, name: str, datatype: str, shape: Iterable[int] = (),
                 parameters: Optional[Mapping[str, Any]] = None, data: Any = b"") -> None: ...
    def validate(self) -> None: ...
    def as_numpy(self) -> Any: ...

class RequestedOutput:
    name: str
    parameters: dict[str, Any]
    def __init__(self, name: str, parameters: Optional[Mapping[str, Any]] = None) -> None: ...

def oip_parse_request(buf: Any) -> tuple[str, str, str, dict[str, Any], list[Tensor],
                                         list[RequestedOutput]]: ...
def oip_parse_response(buf: Any) -> tuple[str, str, str, dict[str, Any], list[Tensor], Any]: ...
def oip_encode_request(model_name: str, model_version: str, id: str, parameters: dict[str, Any],
                       inputs: list[Tensor], outputs: list[RequestedOutput], raw: bool) -> list[Any]: ...
def oip_encode_response(model_name: str, model_version: str, id: str, parameters: dict[str, Any],
                        outputs: list[Tensor], raw: bool) -> list[Any]: ...


# ---- protocol bridging (core/bridge.pyx) ---------------------------------------------------

class MessageBridge:
    header_json: Callable[[Any], bytes]
    merge: Callable[[list[str], list[Any]], Any]
    json_body: Callable[[Any], bytes]
    local_call: Callable[..., Any]
    http_answer: Callable[[Any], bytes]
    def __init__(self, *, header_json: Callable[[Any], bytes],
                 merge: Callable[[list[str], list[Any]], Any],
                 json_body: Callable[[Any], bytes], local_call: Callable[..., Any],
                 http_answer: Callable[[Any], bytes]) -> None: ...

class DelegateBackend(Backend):
    impl: Callable[[Any, RunContext], Any]
    def __init__(self, impl: Callable[[Any, RunContext], Any], description: str) -> None: ...

class V2HttpBackend(Backend):
    plain: HttpBackend
    bridge_bytes: bool
    def __init__(self, endpoint: Endpoint, client: HttpClient,
                 encode: Callable[[Any, HeaderList], Any],
                 decode: Callable[[int, HeaderList, Any, bool], StepResult],
                 bridge_bytes: bool = False) -> None: ...

class V2StepCall(ResponseSink): ...

# ---- resilience per step (backends/policy.pyx) -----------------------------------------

class EndpointState:
    backend: Backend
    url: str
    threshold: int
    open_for: float
    state: int
    failures: int
    open_until: float
    outstanding: int
    opened_total: int
    rejected_total: int
    breaker_state: str
    def __init__(self, backend: Backend, url: str, consecutive_failures: int = 0,
                 open_for: float = 0.0) -> None: ...

class ServiceLimiter:
    name: str
    max_in_flight: int
    max_queued: int
    in_flight: int
    shed_total: int
    queued: int
    def __init__(self, name: str, max_in_flight: int, max_queued: int) -> None: ...

class PolicyBackend(Backend):
    endpoints: tuple[EndpointState, ...]
    least_outstanding: bool
    timeout: float
    max_retries: int
    initial_delay: float
    max_delay: float
    limiter: ServiceLimiter | None
    hedge_after: float
    site: tuple[str, str]
    retries_total: int
    hedges_total: int
    def __init__(self, endpoints: tuple[EndpointState, ...], *, least_outstanding: bool = False,
                 timeout: float = 0.0, max_retries: int = 0, initial_delay: float = 0.1,
                 max_delay: float = 300.0, limiter: ServiceLimiter | None = None,
                 hedge_after: float = 0.0, site: tuple[str, str] = ("", "")) -> None: ...

def policy_metrics(plan: CompiledPlan) -> str: ...
