"""Protocol bridging: one graph mixes v1 JSON, v2 JSON/binary HTTP and gRPC steps.

A step body is either bytes-like (JSON or any payload: KServe's path, forwarded as
received) or an ``InferRequest``/``InferResponse``. Each backend converts what it gets
into its own protocol (``as_request``); conditions see a message's JSON header
(``header_json``: tensor metadata and parameters, never tensor data); an Ensemble with
a message among its answers merges outputs as ``<step>.<output>`` (``merge``). Tensors
keep their buffers through every conversion, so payload is never copied here.
"""
from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

import orjson

from . import _core
from .errors import BadRequestError, bound_message
from .oip import HEADER_LENGTH, InferRequest, InferResponse, Tensor, from_numpy, join

_HEADER_LENGTH_LOWER = HEADER_LENGTH.lower().encode()
_JSON = [(b"Content-Type", b"application/json")]


def _tensor_head(t: Tensor) -> dict:
    d: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
    if t.parameters:
        d["parameters"] = t.parameters
    return d


def header_json(msg) -> bytes:
    """The JSON a condition sees for a message: the v2 JSON document without tensor
    ``data`` (requests: id, parameters, inputs, outputs; responses: model_name,
    model_version, id, parameters, outputs)."""
    doc: dict = {}
    if type(msg) is InferResponse:
        doc["model_name"] = msg.model_name
        if msg.model_version:
            doc["model_version"] = msg.model_version
    if msg.id:
        doc["id"] = msg.id
    if msg.parameters:
        doc["parameters"] = msg.parameters
    if type(msg) is InferRequest:
        doc["inputs"] = [_tensor_head(t) for t in msg.inputs]
        if msg.outputs:
            doc["outputs"] = [{"name": o.name, "parameters": o.parameters} if o.parameters
                              else {"name": o.name} for o in msg.outputs]
    else:
        doc["outputs"] = [_tensor_head(t) for t in msg.outputs]
    return orjson.dumps(doc)


def as_request(body, model_name: str = "", model_version: str = "") -> InferRequest:
    """The request a v2 model gets for a step body: a request as is (renamed to the
    target model), a response's outputs as inputs (id and parameters kept), bytes
    parsed as a v2 JSON request or response (BadRequestError when neither)."""
    if type(body) is InferRequest:
        return InferRequest(model_name, body.inputs, model_version=model_version, id=body.id,
                            parameters=body.parameters, outputs=body.outputs)
    if type(body) is InferResponse:
        return InferRequest(model_name, body.outputs, model_version=model_version, id=body.id,
                            parameters=body.parameters)
    req = InferRequest.from_json(body, model_name=model_name, model_version=model_version)
    if req.inputs:
        return req
    # a v2 JSON response (the previous step's answer under $response)
    try:
        resp = InferResponse.from_json(body)
    except BadRequestError:
        resp = None
    if resp is None or not resp.outputs:
        raise BadRequestError("the body is neither a v2 inference request nor a v2 response")
    return as_request(resp, model_name, model_version)


def as_response(body) -> InferResponse:
    """A graph's answer as a v2 response (bytes parsed as a v2 JSON response, which
    must have outputs: BadRequestError otherwise)."""
    if type(body) is InferResponse:
        return body
    if type(body) is InferRequest:
        return InferResponse(body.model_name, body.inputs, model_version=body.model_version,
                             id=body.id, parameters=body.parameters)
    resp = InferResponse.from_json(body)
    if not resp.outputs:
        raise BadRequestError("the body is not a v2 inference response: it has no outputs")
    return resp


def json_body(msg) -> bytes:
    """What a v1 JSON backend is sent for a message: the v2 JSON request."""
    return as_request(msg, msg.model_name, msg.model_version).to_json()


def merge(keys: list, bodies: list, kind: str = "ensemble") -> InferResponse:
    """An Ensemble's answers (or a Sequence's, ``outputs: all``: ``kind``
    "sequence") as one response: outputs ``<key>.<name>`` in the order given."""
    outputs, first_id = [], ""
    for key, body in zip(keys, bodies):
        try:
            resp = as_response(body)
        except BadRequestError as e:
            raise _core.RouteFailure(f"{kind} step {key}: not a v2 response: {e}") from None
        first_id = first_id or resp.id
        for t in resp.outputs:
            outputs.append(Tensor(f"{key}.{t.name}", t.datatype, t.shape, t.parameters, t.data))
    return InferResponse("", outputs, id=first_id)


def error_body(message: str) -> bytes:
    """``{"error": message}``, the message bounded (``engine.errors.bound_message``)."""
    return orjson.dumps({"error": bound_message(message)})


# ---- local (in-process) models ----------------------------------------------------

def local_call(fn, wants_headers: bool, msg, ctx):
    """Call ``fn(InferRequest)``; its tensors are views of the received buffers."""
    req = as_request(msg, msg.model_name, msg.model_version)
    try:
        if wants_headers:
            out = fn(req, headers={k.decode("latin-1"): v.decode("latin-1") for k, v in ctx.headers})
        else:
            out = fn(req)
    except Exception as e:
        return _core.local_failure_result(e)
    if inspect.iscoroutine(out):
        return _finish_local(out, req)
    return local_result(out, req)


async def _finish_local(coro, req):
    try:
        out = await coro
    except Exception as e:
        return _core.local_failure_result(e)
    return local_result(out, req)


def local_result(out, req: InferRequest):
    """A local model's answer to a v2 request: InferResponse, a numpy array (output
    ``output0``), a dict of name -> array, a list of Tensor, or what a v1 local model
    may answer (StepResult, bytes, (status, body), JSON-serialisable)."""
    outputs = None
    if type(out) is InferResponse:
        if not out.id and req.id:
            out.id = req.id
        return _core.StepResult(200, out)
    if isinstance(out, np.ndarray):
        outputs = [from_numpy("output0", out)]
    elif isinstance(out, dict) and out and all(isinstance(v, np.ndarray) for v in out.values()):
        outputs = [from_numpy(k, v) for k, v in out.items()]
    elif isinstance(out, (list, tuple)) and out and all(type(t) is Tensor for t in out):
        outputs = list(out)
    if outputs is not None:
        return _core.StepResult(200, InferResponse(req.model_name, outputs, id=req.id))
    return _core.local_step_result(out)


# ---- HTTP v2 front end (/v2/models/...) ---------------------------------------------

def header_value(headers: list, lower_name: bytes):
    for k, v in headers:
        if k.lower() == lower_name:
            return v
    return None


def _split_model_path(path: bytes):
    """/v2/models/<name>[/versions/<v>][/<action>] -> (name, version, action) or None."""
    parts = path.decode("latin-1").split("/")[3:]
    if not parts or not parts[0]:
        return None
    name, version, rest = parts[0], "", parts[1:]
    if len(rest) >= 2 and rest[0] == "versions":
        version, rest = rest[1], rest[2:]
    if len(rest) > 1:
        return None
    return name, version, (rest[0] if rest else "")


def v2_front(app, request, path: bytes):
    """The router's /v2/models/<name>... endpoints; None: not one of them (the graph
    runs on the raw body, as on any other path)."""
    split = _split_model_path(path)
    if split is None:
        return None
    name, version, action = split
    method = request.method
    if action == "infer" and method == b"POST":
        return _v2_infer(app, request, name, version)
    if action == "" and method == b"GET":
        doc = {"name": name, "versions": [version] if version else [],
               "platform": "inference-graph", "inputs": [], "outputs": []}
        return _core.HttpResponse(200, orjson.dumps(doc), list(_JSON))
    if action == "ready" and method == b"GET":
        ready = not app.draining
        return _core.HttpResponse(200 if ready else 503,
                                  orjson.dumps({"name": name, "ready": ready}), list(_JSON))
    return None


async def _v2_infer(app, request, name: str, version: str):
    req = None
    body = request.body
    hl = header_value(request.headers, _HEADER_LENGTH_LOWER)
    if hl is not None:
        # binary extension: the graph carries the parsed message (tensors are views)
        try:
            req = InferRequest.from_http(body, int(hl), model_name=name, model_version=version)
        except (BadRequestError, ValueError) as e:
            return _core.HttpResponse(400, error_body(str(e)), list(_JSON))
        body = req
    started = time.monotonic()
    ctx = app.context(request.headers, request=request)
    answer = await _v2_answer(app, request, body, req, name, version, ctx)
    app.observe_request("http", answer.status, time.monotonic() - started, len(request.body),
                        len(answer.body), ctx)
    return answer


async def _v2_answer(app, request, body, req, name: str, version: str, ctx):
    r = await _core.execute(app.plan, body, ctx)
    if isinstance(r.body, (bytes, bytearray, memoryview)):
        if r.content_type is None:
            return _core.HttpResponse(r.status, r.body)
        return _core.HttpResponse(r.status, r.body, [(b"Content-Type", r.content_type)])
    if req is None:
        try:
            req = InferRequest.from_http(request.body, model_name=name, model_version=version)
        except BadRequestError:
            req = None
    resp = as_response(r.body)
    resp.model_name = app.plan.name or name
    buffers, header_length = resp.to_http(req if req is not None else False)
    if header_length is None:
        return _core.HttpResponse(r.status, buffers[0], list(_JSON))
    return _core.HttpResponse(r.status, join(buffers), [
        (b"Content-Type", b"application/octet-stream"),
        (HEADER_LENGTH.encode(), str(header_length).encode())])


def http_answer(msg) -> bytes:
    """A message answered on a plain (v1) HTTP path: v2 JSON."""
    return as_response(msg).to_json()


# What the compiler hands every plan (CompiledPlan.bridge) and the backends that convert
BRIDGE = _core.MessageBridge(header_json=header_json, merge=merge, json_body=json_body,
                             local_call=local_call, http_answer=http_answer)
