"""Test helpers for OIP v2: gRPC and HTTP v2 model servers on loopback, a raw gRPC
client, and small numpy models."""
from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import numpy as np
import orjson

from engine import _core
from engine.bridge import header_value
from engine.oip import HEADER_LENGTH, InferRequest, InferResponse, from_numpy, join

SERVICE = "inference.GRPCInferenceService"
_HL = HEADER_LENGTH.lower().encode()


def numpy_model(fn, output="output0"):
    """InferRequest -> InferResponse applying ``fn`` to every input (outputs named
    ``output``, ``output_1``... in input order); id and parameters kept."""
    def model(req: InferRequest) -> InferResponse:
        outs = []
        for i, t in enumerate(req.inputs):
            name = output if i == 0 else f"{output}_{i}"
            outs.append(from_numpy(name, np.ascontiguousarray(fn(t.as_numpy()))))
        return InferResponse(req.model_name, outs, id=req.id, parameters=req.parameters)
    return model


class GrpcModel:
    """A ModelInfer server: ``model(InferRequest) -> InferResponse`` or a
    (grpc.StatusCode, details) pair; requests are recorded (parsed)."""

    def __init__(self, model):
        self.model = model
        self.requests: list = []
        self.metadata: list = []
        self.deadlines: list = []
        self.server = None
        self.port = 0

    def url(self, model="m"):
        return f"grpc://127.0.0.1:{self.port}/{model}"

    async def _infer(self, request, context):
        req = InferRequest.from_grpc(request)
        self.requests.append(req)
        self.metadata.append(dict(context.invocation_metadata() or ()))
        self.deadlines.append(context.time_remaining())
        out = self.model(req)
        if asyncio.iscoroutine(out):
            out = await out
        if isinstance(out, tuple):
            await context.abort(out[0], out[1])
        return join(out.to_grpc())

    async def start(self, port=0, options=None):
        """Listen on ``port`` (0: any free one; a model restarted on its old port
        passes it); ``options``: grpc server options."""
        self.server = grpc.aio.server(options=options)
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            SERVICE, {"ModelInfer": grpc.unary_unary_rpc_method_handler(self._infer)}),))
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        if not self.port:
            raise OSError(f"cannot listen on 127.0.0.1:{port}")
        await self.server.start()
        return self

    async def close(self):
        await self.server.stop(None)


class V2HttpModel:
    """An HTTP v2 model (JSON and the binary extension) on the engine's HTTP server."""

    def __init__(self, model):
        self.model = model
        self.requests: list = []
        self.raw: list = []
        self.http = None
        self.server = None
        self.port = 0

    def url(self, model="m"):
        return f"http://127.0.0.1:{self.port}/v2/models/{model}/infer"

    def _handle(self, request):
        self.raw.append(request)
        hl = header_value(request.headers, _HL)
        name = request.path.decode().split("/")[3]
        req = InferRequest.from_http(request.body, int(hl) if hl is not None else None,
                                     model_name=name)
        self.requests.append(req)
        out = self.model(req)
        if isinstance(out, tuple):
            return _core.HttpResponse(out[0], orjson.dumps({"error": out[1]}),
                                      [(b"Content-Type", b"application/json")])
        buffers, header_length = out.to_http(req)
        headers = [(b"Content-Type", b"application/json")]
        if header_length is not None:
            headers = [(b"Content-Type", b"application/octet-stream"),
                       (HEADER_LENGTH.encode(), str(header_length).encode())]
        return _core.HttpResponse(200, join(buffers), headers)

    async def start(self):
        self.http = _core.HttpServer(self._handle)
        self.server = await asyncio.get_running_loop().create_server(
            self.http.protocol_factory, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        self.server.close()
        await self.http.drain(1.0)
        await self.server.wait_closed()


class GrpcClient:
    """Raw-bytes GRPCInferenceService client for the router's front end."""

    def __init__(self, port: int, options=None):
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=options)

    def call(self, method: str, payload: bytes, timeout=10.0, metadata=None):
        return self.channel.unary_unary(f"/{SERVICE}/{method}")(
            payload, timeout=timeout, metadata=metadata)

    async def infer(self, req: InferRequest, **kw) -> InferResponse:
        return InferResponse.from_grpc(await self.call("ModelInfer", join(req.to_grpc()), **kw))

    async def close(self):
        await self.channel.close()
