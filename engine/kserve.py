"""A graph served inside KServe's Python ModelServer (``pip install
inference-graph-engine[kserve]``; see docs/embedding.md).

    from kserve import ModelServer
    from engine.kserve import GraphModel
    ModelServer().start([GraphModel("pipeline", "graph.yaml", services={"pre": pre_model})])

``GraphModel`` is a ``kserve.Model``: KServe's REST v1 (``/v1/models/<name>:predict``),
REST v2 (``/v2/models/<name>/infer``) and gRPC v2 (``ModelInfer``) reach its
``predict``, which runs the graph with ``Plan.infer``. Steps may be URLs (as for the
router), Python callables or other ``kserve.Model`` objects, called in process.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

import orjson

try:
    import kserve
    from grpc_interceptor.exceptions import GrpcException
    from kserve.errors import InferenceError, InvalidInput, ModelNotFound, ModelNotReady
    from kserve.protocol.grpc.grpc_predict_v2_pb2 import ModelInferRequest, ModelInferResponse
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("engine.kserve needs the kserve package: "
                      "pip install 'inference-graph-engine[kserve]'") from e

from . import bridge, oip
from .errors import BadRequestError
from .graph import load
from .server.grpc_front import grpc_code_for
from .server.grpc_wire import error_text

__all__ = ["GraphAnswerError", "GraphModel", "model_step"]

_JSON = b"application/json"


class GraphAnswerError(InferenceError):
    """The graph answered a non-2xx status. On KServe's REST endpoints the handler
    ``GraphModel`` installs answers ``status``, ``body`` and ``content_type`` as the
    graph gave them; without it (an app of one's own) it is an InferenceError: 500
    with ``{"error": reason}``."""

    def __init__(self, status: int, body: bytes, content_type: bytes | None):
        super().__init__(error_text(body))
        self.http_status = status
        self.body = body
        self.content_type = content_type


class _GrpcGraphAnswer(GrpcException):
    """A non-2xx graph answer on KServe's gRPC server: the router's status code."""


async def _graph_answer_handler(_request, exc: GraphAnswerError):
    from starlette.responses import Response
    headers = {"content-type": exc.content_type.decode("latin-1")} if exc.content_type else None
    return Response(content=bytes(exc.body), status_code=exc.http_status, headers=headers)


def install_answer_handler(app=None) -> None:
    """Answer GraphAnswerError with the graph's own status and body in ``app`` (a
    FastAPI app; default: KServe's ModelServer app, ``kserve.model_server.app``).
    GraphModel calls it; call it for an app of one's own that routes to GraphModel."""
    if app is None:
        from kserve.model_server import app
    app.add_exception_handler(GraphAnswerError, _graph_answer_handler)


# ---- OIP messages: kserve's <-> the engine's, through the gRPC wire form (lossless) --

def to_engine_request(req: kserve.InferRequest) -> oip.InferRequest:
    """kserve's InferRequest (from REST or gRPC) as an engine.oip.InferRequest."""
    return oip.InferRequest.from_grpc(req.to_grpc().SerializeToString())


def to_kserve_request(req: oip.InferRequest) -> kserve.InferRequest:
    return kserve.InferRequest.from_grpc(ModelInferRequest.FromString(oip.join(req.to_grpc())))


def to_engine_response(resp: kserve.InferResponse) -> oip.InferResponse:
    return oip.InferResponse.from_grpc(resp.to_grpc().SerializeToString())


def to_kserve_response(resp: oip.InferResponse) -> kserve.InferResponse:
    return kserve.InferResponse.from_grpc(ModelInferResponse.FromString(oip.join(resp.to_grpc())))


# ---- kserve.Model objects as steps ---------------------------------------------------

def _failure(e: Exception):
    """What KServe's ModelServer answers when a model raises ``e`` (kserve.errors'
    handlers), so an in-process model fails as it would behind a URL."""
    if isinstance(e, InvalidInput):
        return 400, {"error": str(e)}
    if isinstance(e, ModelNotFound):
        return 404, {"error": str(e)}
    if isinstance(e, ModelNotReady):
        return 503, {"error": str(e)}
    if isinstance(e, NotImplementedError):
        return 501, {"error": str(e)}
    if isinstance(e, InferenceError):
        return 500, {"error": str(e)}
    return 500, {"error": f"{type(e).__name__} : {e}"}


def model_step(model: kserve.Model):
    """A callable step that runs ``model`` in process as KServe's ModelServer would:
    ``await model(body, headers=headers)``, i.e. the model's preprocess, predict and
    postprocess. A v1 step body reaches it decoded from JSON (a dict, as from the v1
    endpoint; raw bytes when it is not JSON); an OIP message as a kserve InferRequest
    (built from its gRPC form); its InferResponse answers the step. ``headers`` are
    the propagated ones. A model that raises answers the status and body KServe's
    server would send for that exception."""

    async def call(payload, headers=None):
        body = to_kserve_request(payload) if isinstance(payload, oip.InferRequest) else payload
        try:
            answer = await model(body, headers=headers)
        except Exception as e:
            return _failure(e)
        response = answer[0] if isinstance(answer, tuple) else answer
        if isinstance(response, kserve.InferResponse):
            response = to_engine_response(response)
            if not isinstance(payload, oip.InferRequest):
                return response.to_json()
        return response

    call.__name__ = model.name
    call.__qualname__ = f"model_step({model.name})"
    return call


def _resolve(services: Mapping[str, Any] | None) -> dict | None:
    if services is None:
        return None
    return {name: model_step(t) if isinstance(t, kserve.Model) else t for name, t in services.items()}


class GraphModel(kserve.Model):
    """An InferenceGraph as one kserve.Model named ``name``.

    ``graph``: what ``engine.load`` takes (a path, YAML/JSON text, a dict);
    ``services``: serviceName -> URL, gRPC target, Python callable or kserve.Model
    (run in process through ``model_step``); ``policy``: what ``Graph.compile`` takes.
    ``load()`` compiles the graph (``ready`` follows), ``predict`` runs it, ``stop()``
    closes the plan's connection pools."""

    def __init__(self, name: str, graph: Any, *, services: Mapping[str, Any] | None = None,
                 policy: Any = None):
        # response headers let a non-JSON answer keep its Content-Type on REST v1
        super().__init__(name, return_response_headers=True)
        self.graph_source = graph
        self.services = dict(services) if services else {}
        self.policy = policy
        self.plan = None
        install_answer_handler()
        # ModelServer.start registers only the models ready by then
        self.load()

    def load(self) -> bool:
        """Compile the graph (again after ``stop``; done already by the constructor,
        so that ``ModelServer().start([GraphModel(...)])`` serves it); loads the
        in-process kserve.Model steps not ready yet."""
        if self.plan is not None:
            return self.ready
        for target in self.services.values():
            if isinstance(target, kserve.Model) and not target.ready:
                target.load()
        graph = load(self.graph_source, services=_resolve(self.services))
        self.plan = graph.compile(policy=self.policy)
        self.ready = True
        return self.ready

    async def predict(self, payload, headers=None, response_headers=None):
        """Run the graph on ``payload``: a v1 body (dict, or bytes for a non-JSON
        Content-Type) as JSON bytes; a v2 InferRequest (REST or gRPC) as an OIP
        message. v1 answers a dict (bytes and their Content-Type when the graph's
        answer is not JSON), v2 a kserve InferResponse; a non-2xx answer raises
        GraphAnswerError (REST) or a GrpcException with the router's status code."""
        if self.plan is None:
            raise ModelNotReady(self.name)
        if isinstance(payload, kserve.InferRequest):
            return await self._predict_v2(payload, headers)
        if isinstance(payload, (bytes, bytearray, memoryview)):
            body = payload
        else:
            try:
                body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
            except TypeError as e:
                raise InvalidInput(f"request body is not JSON-serialisable: {e}") from None
        r = await self.plan.infer(body, headers=headers)
        out, content_type = r.body, r.content_type
        if isinstance(out, (oip.InferRequest, oip.InferResponse)):
            out, content_type = bridge.http_answer(out), _JSON
        if not 200 <= r.status <= 299:
            raise GraphAnswerError(r.status, out, content_type)
        if content_type == _JSON:
            return orjson.loads(out)
        if response_headers is not None and content_type:
            response_headers["content-type"] = content_type.decode("latin-1")
        return bytes(out)

    async def _predict_v2(self, payload: kserve.InferRequest, headers):
        grpc = payload.from_grpc
        req = to_engine_request(payload)
        r = await self.plan.infer(req, headers=headers)
        if not 200 <= r.status <= 299:
            body = bridge.http_answer(r.body) if not isinstance(r.body, (bytes, bytearray, memoryview)) else r.body
            if grpc:
                cause = error_text(body)
                raise _GrpcGraphAnswer(cause, grpc_code_for(r.status, cause))
            raise GraphAnswerError(r.status, body, r.content_type or _JSON)
        try:
            resp = bridge.as_response(r.body)
        except BadRequestError as e:
            raise InferenceError(f"the graph's answer is not a v2 response: {e}") from None
        resp.model_name = self.name
        if not resp.id:
            resp.id = req.id
        return to_kserve_response(resp)

    def start(self) -> None:
        """ModelServer.start's call: ready once compiled."""
        self.load()

    def stop(self) -> None:
        """Not ready from now on; the plan's connection pools close (on the running
        loop when there is one, as in ModelServer.stop)."""
        super().stop()
        plan, self.plan = self.plan, None
        if plan is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(plan.aclose())
            return
        self._closing = loop.create_task(plan.aclose())

    async def aclose(self) -> None:
        """Stop and wait until the plan's pools are closed."""
        plan, self.plan = self.plan, None
        self.ready = False
        if plan is not None:
            await plan.aclose()
        closing = getattr(self, "_closing", None)
        if closing is not None:
            await closing
