"""The compiled form of a graph and its one coarse call per request."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import orjson

from . import _core
from .errors import BadRequestError

Response = _core.Response

# routerType -> the executor's router; here because a plan's explain() names them back
ROUTER_TYPES = {
    "Sequence": _core.RouterType.ROUTER_SEQUENCE,
    "Splitter": _core.RouterType.ROUTER_SPLITTER,
    "Ensemble": _core.RouterType.ROUTER_ENSEMBLE,
    "Switch": _core.RouterType.ROUTER_SWITCH,
}
ROUTER_NAMES = {v: k for k, v in ROUTER_TYPES.items()}


def encode_body(body: Any):
    """bytes-like bodies and OIP messages (engine.oip.InferRequest) pass as they are;
    str is UTF-8; anything else is JSON."""
    if isinstance(body, (bytes, bytearray, memoryview)) or _core.body_is_oip(body):
        return body
    if isinstance(body, str):
        return body.encode()
    try:
        return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as e:
        raise BadRequestError(f"request body is not JSON-serialisable: {e}") from e


def header_pairs(headers: Mapping[str, str] | Iterable[tuple[Any, Any]] | None) -> list:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(k.encode("latin-1") if isinstance(k, str) else bytes(k),
             v.encode("latin-1") if isinstance(v, str) else bytes(v)) for k, v in items]


class Plan:
    """A graph compiled for execution: node tables indexed by integer, resolved
    backends, compiled conditions. ``await plan.infer(body)`` runs one request."""

    def __init__(self, graph, compiled, propagation, http_client, *, timeouts, warnings=()):
        self.graph = graph
        self.compiled = compiled
        self.propagation = propagation
        self.http_client = http_client
        self.timeouts = timeouts
        self.warnings = list(warnings)
        self.name = compiled.name
        self.grpc_pool = None

    async def infer(self, body: Any, *, headers=None) -> Response:
        """Run one request through the graph from its root node.

        ``body``: bytes (forwarded as is), an ``engine.oip.InferRequest``, str, or a
        JSON-serialisable object.
        ``headers``: the request's headers; those matching PROPAGATE_HEADERS go to
        every step. Model and transport failures come back as a Response with
        KServe's status codes and error bodies; raises BadRequestError for a body it
        cannot encode, and orjson.JSONEncodeError (a TypeError) when an in-process
        model returns a value that is not JSON-serialisable."""
        pairs = header_pairs(headers)
        ctx = _core.RunContext(self.propagation.select(pairs), self.compiled.service_timeout)
        _core.trace_request(ctx, self.compiled, pairs)     # with tracing on (engine.tracing)
        return await _core.execute(self.compiled, encode_body(body), ctx)

    async def aclose(self) -> None:
        """Close the backend connection pools (HTTP and gRPC)."""
        if self.http_client is not None:
            await self.http_client.close()
        if self.grpc_pool is not None:
            await self.grpc_pool.aclose()

    def explain(self) -> str:
        """The flat tables, as `ige explain --plan` prints them."""
        lines = [f"plan {self.name or '(unnamed)'}: {len(self.compiled.nodes)} node(s), "
                 f"serviceClient timeout {self.compiled.service_timeout or 'none'}"]
        for node in self.compiled.nodes:
            merged = ", outputs all" if getattr(node, "merge_outputs", False) else ""
            lines.append(f"[{node.index}] {node.name}: {ROUTER_NAMES[node.router_type]}{merged}")
            for step in node.steps:
                target = (f"-> node [{step.node_index}]" if step.target == _core.StepTarget.TARGET_NODE
                          else f"-> {step.backend.description}")
                flags = []
                if step.condition is not None:
                    flags.append(f"if {step.condition_text}")
                if node.router_type == _core.RouterType.ROUTER_SPLITTER:
                    flags.append(f"weight<{step.weight_end}")
                if getattr(step, "data_path", None) is not None:
                    flags.append(f"data={step.data_text}")
                elif step.use_response:
                    flags.append("data=$response")
                if step.map_predictions:
                    flags.append("predictions->instances")
                if step.hard:
                    flags.append("Hard")
                label = step.name or str(step.index)
                lines.append(f"    {step.index}. {label} {target}" + (f"  ({', '.join(flags)})" if flags else ""))
                policy = getattr(step, "policy", None)
                if policy is not None and not policy.is_empty():
                    lines.append(f"       policy: {policy.summary()}")
        return "\n".join(lines)
