"""Type stubs for engine._core, the compiled per-request core."""
import asyncio
import enum
import logging
import re
from typing import Any, Awaitable, Callable, Generator, Iterable, Mapping, Optional, Union

from engine.oip import InferRequest, InferResponse

Buffer = Union[bytes, bytearray, memoryview]
# A step body: bytes-like (JSON or any payload) or an OIP message (bridge.pyx)
Body = Union[bytes, bytearray, memoryview, "InferRequest", "InferResponse"]
HeaderList = list[tuple[bytes, bytes]]

# rng.pyx
def seed_router_rng(seed: int) -> None: ...
def router_rng_below(bound: int) -> int: ...

# http_server.pyx
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

# http_client.pyx
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

class ResponseSink:
    """Base of C-level receivers for HttpClient.c_request_to (subclass in Cython)."""

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


# ---- header propagation (headers.pyx) -----------------------------------------------

def canonical_header_name(name: str | bytes) -> bytes: ...
def compile_header_patterns(spec: str) -> tuple[list[re.Pattern[str]], list[str]]: ...

class HeaderPropagation:
    def __init__(self, patterns: list[re.Pattern[str]]) -> None: ...
    @property
    def enabled(self) -> bool: ...
    def select(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]: ...


# ---- request flows (flow.pyx) -------------------------------------------------------

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


# ---- plans and their execution (plan.pyx, local_backend.pyx, http_backend.pyx) -----

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
    def __init__(self, status: int, body: Body) -> None: ...

class RunContext:
    headers: list[tuple[bytes, bytes]]
    timeout: float
    request_headers: object
    v2_bridge: bool
    def __init__(self, headers: list[tuple[bytes, bytes]], timeout: float,
                 request_headers: object = None) -> None: ...

class Backend:
    description: str
    def invoke(self, body: Body, ctx: RunContext) -> StepResult | Awaitable[StepResult]: ...

class LocalBackend(Backend):
    fn: Callable[..., Any]
    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None: ...

class HttpBackend(Backend):
    endpoint: Endpoint
    client: HttpClient
    def __init__(self, endpoint: Endpoint, client: HttpClient) -> None: ...

class HttpStepCall(ResponseSink):
    def done(self) -> bool: ...
    def result(self) -> StepResult: ...
    def __await__(self) -> Generator[Any, None, StepResult]: ...

class FailingBackend(Backend):
    cause: str
    def __init__(self, url: str, cause: str) -> None: ...

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
    def __init__(self, index: int, name: str, target: int, node_index: int, backend: Backend | None,
                 condition: object | None, condition_text: str, use_response: bool,
                 map_predictions: bool, hard: bool, weight_end: int) -> None: ...

class PlanNode:
    index: int
    name: str
    router_type: int
    steps: tuple[PlanStep, ...]
    ensemble_order: tuple[int, ...]
    def __init__(self, index: int, name: str, router_type: int, steps: tuple[PlanStep, ...]) -> None: ...

class CompiledPlan:
    nodes: tuple[PlanNode, ...]
    service_timeout: float
    propagate_patterns: list[re.Pattern[str]]
    name: str
    def __init__(self, nodes: tuple[PlanNode, ...], service_timeout: float,
                 propagate_patterns: list[re.Pattern[str]], name: str) -> None: ...

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


# ---- the router's HTTP application (app.pyx) ----------------------------------------

class GraphApp:
    plan: CompiledPlan
    propagation: HeaderPropagation
    draining: bool
    requests_total: int
    requests_failed: int
    in_flight: int
    access_log: logging.Logger | None
    kserve_paths: bool
    def __init__(self, plan: CompiledPlan, propagation: HeaderPropagation, *,
                 kserve_paths: bool = False) -> None: ...
    def enable_access_log(self, logger: logging.Logger | None) -> None: ...
    def start_draining(self) -> None: ...
    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]: ...
    def metrics_text(self) -> bytes: ...


# ---- OIP v2 codec (oip.pyx) ------------------------------------------------------------

OIP_DATATYPES: tuple[str, ...]
def oip_itemsize(datatype: str) -> int: ...
def oip_numpy_dtype(datatype: str) -> Any: ...

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


# ---- protocol bridging (bridge.pyx) ------------------------------------------------------

def bridge_register(request_type: type, response_type: type, *,
                    header_json: Callable[[Any], bytes],
                    merge: Callable[[list[str], list[Any]], Any],
                    json_body: Callable[[Any], bytes],
                    local_call: Callable[..., Any],
                    v2_front: Callable[..., Any],
                    http_answer: Callable[[Any], bytes]) -> None: ...
def body_is_oip(body: object) -> bool: ...

class DelegateBackend(Backend):
    impl: Callable[[Any, RunContext], Any]
    plain: Backend | None
    bridge_bytes: bool
    def __init__(self, impl: Callable[[Any, RunContext], Any], description: str,
                 plain: Backend | None = None, bridge_bytes: bool = False) -> None: ...

async def app_execute(app: GraphApp, body: Body, headers: HeaderList,
                      deadline: float = 0.0) -> Response: ...
