"""A graph as an ASGI 3 application, for uvicorn, hypercorn or a FastAPI/Starlette
mount (see docs/embedding.md).

    from engine.asgi import GraphASGI
    app = GraphASGI("graph.yaml", services={"classifier": "http://classifier/v1/models/c:predict"})
    # uvicorn module:app   or   fastapi_app.mount("/graph", app)

Every path and method runs the graph, as under KServe's router: the answer's status,
body and Content-Type are the router's (``Plan.infer``), and the headers that go to
the steps are those PROPAGATE_HEADERS selects.
"""
from __future__ import annotations

import asyncio
from typing import Any, Mapping

import orjson

from . import bridge, oip
from .errors import BadRequestError, bound_message
from .graph import Graph, load
from .plan import Plan

__all__ = ["GraphASGI"]

MAX_BODY_SIZE = 64 * 1024 * 1024
"""The router's request body limit (``ige serve --max-body-size``)."""

_JSON = b"application/json"
_BODY_413 = b'{"error":"Request Entity Too Large"}'
_BODY_500 = b'{"error":"Internal Server Error"}'


class _TooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


class GraphASGI:
    """An ASGI application that runs one graph on every HTTP request.

    ``graph``: what ``engine.load`` takes (a path, YAML/JSON text, a dict), an
    ``engine.Graph``, or a compiled ``Plan`` (shared, not owned: shutdown leaves its
    pools open); ``services`` and ``policy`` as for ``engine.load`` and
    ``Graph.compile``. The graph compiles here, so a bad one fails at construction.
    Lifespan ``startup`` compiles again after a shutdown; ``shutdown`` closes the
    plan's connection pools (``aclose``). A request body past ``max_body_size`` bytes
    gets 413; a client that disconnects cancels its graph run."""

    def __init__(self, graph: Any, *, services: Mapping[str, Any] | None = None,
                 policy: Any = None, max_body_size: int = MAX_BODY_SIZE):
        self.max_body_size = max_body_size
        self.policy = policy
        self.owns_plan = not isinstance(graph, Plan)
        if isinstance(graph, Plan):
            self.graph, self.plan = graph.graph, graph
        else:
            self.graph = graph if isinstance(graph, Graph) else load(graph, services=services)
            self.plan = self.graph.compile(policy=policy)

    async def aclose(self) -> None:
        """Close the plan's connection pools (what lifespan shutdown does). Call it
        from the host's own shutdown when mounted: Starlette and FastAPI do not pass
        lifespan events to mounted applications."""
        plan, self.plan = self.plan, None
        if plan is not None and self.owns_plan:
            await plan.aclose()

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"GraphASGI serves HTTP, not {kind!r}")

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.plan is None:
                        self.plan = self.graph.compile(policy=self.policy)
                except Exception as e:
                    await send({"type": "lifespan.startup.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.aclose()
                except Exception as e:
                    await send({"type": "lifespan.shutdown.failed", "message": str(e)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _read_body(self, scope, receive) -> bytes:
        limit = self.max_body_size
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    raise _TooLarge
                break
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _http(self, scope, receive, send) -> None:
        try:
            body = await self._read_body(scope, receive)
        except _TooLarge:
            await _respond(send, 413, _BODY_413, _JSON)
            return
        except _Disconnected:
            return
        plan = self.plan
        if plan is None:
            await _respond(send, 503, orjson.dumps({"error": "the graph is shut down"}), _JSON)
            return
        run = asyncio.ensure_future(plan.infer(body, headers=scope["headers"]))
        gone = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait((run, gone), return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not run.done():
                run.cancel()      # the client left (or this request was cancelled)
        if not run.done() or run.cancelled():
            return
        try:
            r = run.result()
        except BadRequestError as e:
            await _respond(send, 400, orjson.dumps({"error": bound_message(str(e))}), _JSON)
            return
        except Exception:
            await _respond(send, 500, _BODY_500, _JSON)
            raise
        out, content_type = r.body, r.content_type
        if isinstance(out, (oip.InferRequest, oip.InferResponse)):
            # a message answered on a plain HTTP path: v2 JSON, as the router does
            out, content_type = bridge.http_answer(out), _JSON
        await _respond(send, r.status, out, content_type)


async def _until_disconnect(receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _respond(send, status: int, body, content_type: bytes | None) -> None:
    if type(body) is not bytes:
        body = bytes(body)
    headers = [(b"content-length", str(len(body)).encode())]
    if content_type:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
