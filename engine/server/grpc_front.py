"""The router's gRPC front end: ``inference.GRPCInferenceService`` on grpc.aio, in the
same event loop as the HTTP server.

ModelInfer parses the request with the engine's codec (tensors stay views of the
received bytes), runs the graph on the ``InferRequest`` and answers the graph's
``InferResponse`` (a v2 JSON answer of a v1 model is converted). The client's
deadline bounds the backend calls (with the graph's serviceClient timeout, if
shorter). Any model name runs
the graph; the answer carries the graph's name when it has one. Failures become gRPC
status codes: bad input INVALID_ARGUMENT, a Switch miss NOT_FOUND, backend failures
UNAVAILABLE / DEADLINE_EXCEEDED / INTERNAL (from the model's status or, for transport
failures, from the cause); every status message is bounded (``bound_message``). A
request over the message size limit (default: the HTTP body limit) is refused by
grpc with RESOURCE_EXHAUSTED on its length prefix, without being buffered. The small
health and metadata messages are written by hand so that no generated protobuf
module is registered in this process.
"""
from __future__ import annotations

import logging
import time

import grpc
import grpc.aio

from .. import __version__, _core
from ..bridge import as_response
from ..errors import BadRequestError, bound_message
from ..oip import InferRequest, join
# the helpers both front ends use, importable from here as before
from .grpc_wire import (_bool_field, error_text, _read_varint, _str_field, _varint,  # noqa: F401
                        grpc_status_for, parse_name_version, wire_value)

log = logging.getLogger("engine.server")

SERVICE = "inference.GRPCInferenceService"

# grpc keeps message size limits in a C int; a limit past it is none (-1)
GRPC_SIZE_CEILING = 2**31 - 1


def server_options(max_message_size: int) -> list:
    """grpc server options: requests up to ``max_message_size`` bytes; answers of any
    size (see docs/oip.md, "Message size limits")."""
    receive = max_message_size if max_message_size <= GRPC_SIZE_CEILING else -1
    return [("grpc.max_send_message_length", -1),
            ("grpc.max_receive_message_length", receive)]


def grpc_code_for(status: int, cause: str) -> grpc.StatusCode:
    """The status code for a graph answer with HTTP-like ``status``."""
    return _STATUS_CODES[grpc_status_for(status, cause)]


_STATUS_CODES = {code.value[0]: code for code in grpc.StatusCode}


class GrpcFrontEnd:
    """GRPCInferenceService for one GraphApp; ``start()`` binds, ``stop()`` drains."""

    def __init__(self, app, host: str, port: int, max_message_size: int = 64 * 1024 * 1024):
        if max_message_size < 1:
            raise ValueError(f"gRPC message size limit {max_message_size} is not positive")
        self.app = app
        self.host = host
        self.requested_port = port
        self.max_message_size = max_message_size
        self.port = 0
        self.server = None
        handlers = {
            "ServerLive": self.server_live,
            "ServerReady": self.server_ready,
            "ModelReady": self.model_ready,
            "ServerMetadata": self.server_metadata,
            "ModelMetadata": self.model_metadata,
            "ModelInfer": self.model_infer,
        }
        # None (de)serializers: the handlers see and return wire bytes
        self.handler = grpc.method_handlers_generic_handler(
            SERVICE, {name: grpc.unary_unary_rpc_method_handler(fn)
                      for name, fn in handlers.items()})

    async def start(self) -> int:
        self.server = grpc.aio.server(options=server_options(self.max_message_size))
        self.server.add_generic_rpc_handlers((self.handler,))
        address = f"[{self.host}]:{self.requested_port}" if ":" in self.host \
            else f"{self.host}:{self.requested_port}"
        self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen for gRPC on {address}")
        await self.server.start()
        return self.port

    async def stop(self, grace: float | None):
        """Refuse new calls and let those in flight finish (at most ``grace`` s)."""
        if self.server is not None:
            await self.server.stop(grace)

    @property
    def model_name(self) -> str:
        return self.app.plan.name

    async def server_live(self, request, context):
        return _bool_field(1, True)

    async def server_ready(self, request, context):
        return _bool_field(1, not self.app.draining)

    async def model_ready(self, request, context):
        await self._name_version(request, context)
        return _bool_field(1, not self.app.draining)

    async def server_metadata(self, request, context):
        return _str_field(1, "inference-graph-engine") + _str_field(2, __version__)

    async def model_metadata(self, request, context):
        name, version = await self._name_version(request, context)
        out = _str_field(1, self.model_name or name)
        if version:
            out += _str_field(2, version)
        return out + _str_field(3, "inference-graph")

    async def _name_version(self, request, context):
        try:
            return parse_name_version(request)
        except BadRequestError as e:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))

    async def model_infer(self, request, context):
        started = time.monotonic()
        call = _Call()
        try:
            answer = await self._infer(request, context, call)
        except Exception as e:
            # a bug: the client still gets a bounded message, not grpc's own
            # "Unexpected <type>: <text>"
            log.exception("ModelInfer failed")
            answer = (grpc.StatusCode.INTERNAL, f"{type(e).__name__}: {e}")
        # one record per answered call, with the status the client sees (it also ends
        # the call's server span); a cancelled call is counted by execute() alone, as
        # over HTTP
        failed = type(answer) is tuple
        self.app.observe_request("grpc", answer[0].name if failed else "OK", time.monotonic() - started,
                                 len(request), 0 if failed else len(answer), call.ctx)
        if failed:
            await _abort(context, *answer)
        return answer

    async def _infer(self, request, context, call):
        """The answer's wire bytes, or a (status code, message) failure; the
        request's RunContext is left in ``call``."""
        try:
            req = InferRequest.from_grpc(request)
        except BadRequestError as e:
            return grpc.StatusCode.INVALID_ARGUMENT, str(e)
        headers = [(key.encode("latin-1"), wire_value(value))
                   for key, value in context.invocation_metadata() or ()]
        remaining = context.time_remaining()
        ctx = call.ctx = self.app.context(headers, remaining if remaining is not None else 0.0, "grpc")
        r = await _core.execute(self.app.plan, req, ctx)
        if not 200 <= r.status <= 299:
            cause = error_text(r.body)
            return grpc_code_for(r.status, cause), cause
        try:
            resp = as_response(r.body)
        except BadRequestError as e:
            return grpc.StatusCode.INTERNAL, f"the graph's answer is not a v2 response: {e}"
        resp.model_name = self.model_name or req.model_name
        if not resp.id:
            resp.id = req.id
        try:
            chunks = resp.to_grpc()
        except BadRequestError as e:
            return grpc.StatusCode.INTERNAL, f"the graph's answer cannot be encoded: {e}"
        # grpc's serializer contract is one bytes object: the only payload copy
        return join(chunks)


class _Call:
    """What ModelInfer learns of a call while answering it."""
    __slots__ = ("ctx",)

    def __init__(self):
        self.ctx = None


async def _abort(context, code: grpc.StatusCode, message: str):
    """End the call with ``code``; the one place status messages leave the router."""
    await context.abort(code, bound_message(message))
