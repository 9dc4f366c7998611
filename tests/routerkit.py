"""Test helpers: model servers and a router in the test's own loop, on loopback."""
from __future__ import annotations

import asyncio
import contextlib
import socket

import orjson

import engine
from engine import _core
from engine.compiler import Policy
from engine.server.runner import ServeOptions, listening_socket, serve_in_loop

JSON = [(b"Content-Type", b"application/json")]


class ModelServer:
    """An HTTP model on a loopback port. ``answer(request) -> (status, body)`` or
    an awaitable of it; every request is recorded."""

    def __init__(self, answer):
        self.answer = answer
        self.requests: list = []
        self.server = None
        self.http = None
        self.port = 0

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/v1/models/m:predict"

    def _handle(self, request):
        self.requests.append(request)
        out = self.answer(request)
        if asyncio.iscoroutine(out):
            return self._finish(out)
        return self._response(out)

    async def _finish(self, coro):
        return self._response(await coro)

    @staticmethod
    def _response(out):
        status, body = out
        if not isinstance(body, (bytes, bytearray, memoryview)):
            body = orjson.dumps(body)
        return _core.HttpResponse(status, body, list(JSON))

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


def static(body, status=200):
    return lambda request: (status, body)


def closed_port() -> int:
    """A loopback port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.asynccontextmanager
async def running_router(graph_doc, services=None, drain_seconds=0.0, grpc=False,
                         reserved_paths="engine", options=None, **policy):
    """The router on loopback ports; ``options``: more ServeOptions fields."""
    g = engine.load(graph_doc, services=services or {})
    options = ServeOptions(host="127.0.0.1", http_port=0, drain_seconds=drain_seconds,
                           grpc_port=0 if grpc else None, reserved_paths=reserved_paths,
                           policy=Policy(**policy), **(options or {}))
    sock = listening_socket("127.0.0.1", 0, False)
    ready = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(serve_in_loop(g, options, sock=sock, ready=ready.set_result))
    instance = await asyncio.wait_for(ready, 10)
    port = sock.getsockname()[1]
    client = _core.HttpClient()
    router = RouterHandle(instance, port, client, task)
    try:
        yield router
    finally:
        if not task.done():
            instance.request_stop()
        await asyncio.wait_for(task, 10)
        await client.close()


class RouterHandle:
    def __init__(self, instance, port, client, task):
        self.instance = instance
        self.port = port
        self.client = client
        self.task = task
        self.grpc_port = instance.grpc.port if instance.grpc is not None else 0

    def url(self, path="/v1/models/graph:predict"):
        return f"http://127.0.0.1:{self.port}{path}"

    async def post(self, body, path="/v1/models/graph:predict", headers=None):
        if not isinstance(body, (bytes, bytearray, memoryview)):
            body = orjson.dumps(body)
        return await self.client.request(_core.Endpoint(self.url(path)), body, headers or [])


async def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes (send Connection: close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()


def split_response(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


class ThreadedModel:
    """A ModelServer on its own loop in a thread, for tests that run the router in a
    subprocess (or block the test's thread)."""

    def __init__(self, answer):
        import threading
        self.model = ModelServer(answer)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.model.start(), self.loop).result(10)
        return self.model

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.model.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecordingModels:
    """In-process models answering fixed raw bytes (``name=answer``), recording what
    each was sent in ``sent`` as (name, body); ``services()`` for engine.load."""

    def __init__(self, **answers):
        self.answers = answers
        self.sent: list = []

    def services(self):
        return {name: self._model(name) for name in self.answers}

    def _model(self, name):
        def model(body):
            self.sent.append((name, body))
            return self.answers[name]
        return model
