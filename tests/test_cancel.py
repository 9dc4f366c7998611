"""A client that hangs up cancels its request's backend calls (docs/semantics.md,
"Deliberate differences"; docs/http.md, "Peer EOF"): calls on a connection close it
and free the pool slot, calls still queued for a slot are never sent. HTTP (keep-alive
and `Connection: close`; FIN, half-close and reset), gRPC, embedded, Ensemble."""
from __future__ import annotations

import asyncio
import re
import socket
import struct

import numpy as np
import orjson
import pytest

import engine
from engine.compiler import Policy
from engine.oip import InferRequest, InferResponse, from_numpy, join
from oipkit import GrpcClient, GrpcModel
from routerkit import closed_port, running_router

CAP = 4             # max_connections_per_host of the router under test
CLIENTS = 100       # well above CAP: most of them wait in the pool's queue
FAST = b'{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1.0]}]}'
_LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")


class HoldingModel:
    """An HTTP model on loopback that never answers a request whose body contains
    ``hold`` and answers any other one at once. Counts connections opened and lost
    and the requests that reached it."""

    def __init__(self):
        self.opened = 0
        self.lost = 0
        self.held = 0
        self.held_bodies = []
        self.answered = 0
        self.transports = set()
        self.server = None
        self.port = 0

    def url(self, path="/v1/models/m:predict"):
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self):
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _HoldingProtocol(self), "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        self.server.close()
        for t in list(self.transports):
            t.abort()
        await self.server.wait_closed()


class _HoldingProtocol(asyncio.Protocol):
    def __init__(self, model):
        self.model = model
        self.buf = b""
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.model.opened += 1
        self.model.transports.add(transport)

    def connection_lost(self, exc):
        self.model.lost += 1
        self.model.transports.discard(self.transport)

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            m = _LENGTH.search(self.buf[:end + 2])
            size = int(m.group(1)) if m else 0
            if len(self.buf) < end + 4 + size:
                return
            body = self.buf[end + 4:end + 4 + size]
            self.buf = self.buf[end + 4 + size:]
            if b"hold" in body:
                self.model.held += 1
                self.model.held_bodies.append(body)
                continue
            self.model.answered += 1
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n" % len(FAST) + FAST)


async def eventually(predicate, what, timeout=10.0):
    """Bounded polling for something another connection's callbacks make true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.002)


def seq(url):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}}


def post(body, close=False):
    extra = b"Connection: close\r\n" if close else b""
    return (b"POST /v1/models/g:predict HTTP/1.1\r\nHost: r\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n" % len(body) + extra + b"\r\n" + body)


async def hang_up(conns, how):
    """Every client hangs up at once (a slot freed by one must not go to the next
    one's queued call before that one has hung up too)."""
    for reader, writer in conns:
        if how == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
        elif how == "half-close":
            writer.write_eof()
        else:
            writer.close()
    if how == "half-close":
        # Go's server takes a read EOF during a request for a client that is gone:
        # the router answers nothing and closes
        for reader, writer in conns:
            assert await asyncio.wait_for(reader.read(), 10) == b""
            writer.close()


async def assert_router_recovered(router, model, cancelled):
    app, http = router.instance.app, router.instance.http
    await eventually(lambda: app.in_flight == 0 and http.active_requests == 0,
                     "the router's in-flight requests drop to 0")
    await eventually(lambda: http.open_connections == 0, "the router closes the clients' sockets")
    await eventually(lambda: model.lost == model.opened, "the held backend connections are closed")
    assert model.opened == CAP
    assert app.requests_cancelled == cancelled
    assert f'ige_requests_cancelled_total{{graph="graph"}} {cancelled}\n'.encode() in app.metrics_text()
    resp = await asyncio.wait_for(router.post(b'{"fast":1}'), 10)
    assert resp.status == 200 and bytes(resp.body) == FAST
    # queued calls of the gone clients were dropped, never sent
    assert model.held == CAP


@pytest.mark.parametrize("how", ["close", "half-close", "reset"])
@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "connection-close"])
def test_hung_up_clients_free_the_pool(loop, how, close):
    async def go():
        model = await HoldingModel().start()
        try:
            async with running_router(seq(model.url()), max_connections_per_host=CAP) as router:
                app = router.instance.app
                conns = [await asyncio.open_connection("127.0.0.1", router.port)
                         for _ in range(CLIENTS)]
                for _, writer in conns:
                    writer.write(post(b'{"hold":1}', close))
                await eventually(lambda: app.in_flight == CLIENTS and model.held == CAP,
                                 "every request in flight, the pool's slots all held")
                await hang_up(conns, how)
                await assert_router_recovered(router, model, CLIENTS)
        finally:
            await model.close()
    loop.run(go())


def test_pipelined_requests_are_all_cancelled(loop):
    async def go():
        model = await HoldingModel().start()
        try:
            async with running_router(seq(model.url()), max_connections_per_host=CAP) as router:
                app = router.instance.app
                reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
                writer.write(post(b'{"hold":1}') * 3)
                await eventually(lambda: model.held == 3, "three pipelined requests at the model")
                assert app.in_flight == 3
                writer.close()
                await eventually(lambda: model.lost == 3, "their three backend connections closed")
                await eventually(lambda: app.in_flight == 0, "nothing left in flight")
                assert app.requests_cancelled == 3
        finally:
            await model.close()
    loop.run(go())


def test_ensemble_hang_up_cancels_every_step(loop):
    async def go():
        model = await HoldingModel().start()
        graph = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"name": "a", "serviceUrl": model.url("/a")},
            {"name": "b", "serviceUrl": model.url("/b")},
            {"name": "c", "serviceUrl": model.url("/c")}]}}}
        try:
            async with running_router(graph) as router:
                app = router.instance.app
                reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
                writer.write(post(b'{"hold":1}'))
                await eventually(lambda: model.held == 3, "all three steps at the model")
                writer.close()
                await eventually(lambda: model.lost == 3, "all three step connections closed")
                await eventually(lambda: app.in_flight == 0, "nothing left in flight")
                assert app.requests_cancelled == 1
        finally:
            await model.close()
    loop.run(go())


@pytest.mark.parametrize("path", ["/v1/models/m:predict", "/v2/models/m/infer"])
def test_cancelled_grpc_calls_free_the_pool(loop, path):
    def infer_request(tag):
        return join(InferRequest("g", [from_numpy("x", np.ones(2, np.float32))], id=tag).to_grpc())

    async def go():
        model = await HoldingModel().start()
        try:
            async with running_router(seq(model.url(path)), grpc=True,
                                      max_connections_per_host=CAP) as router:
                app = router.instance.app
                client = GrpcClient(router.grpc_port)
                try:
                    calls = [client.call("ModelInfer", infer_request(f"hold-{i}"), timeout=60)
                             for i in range(CLIENTS)]
                    await eventually(lambda: app.in_flight == CLIENTS and model.held == CAP,
                                     "every call in flight, the pool's slots all held")
                    # grpc delivers the cancellations one by one: cancel the queued
                    # calls first, so that no slot frees while one of them still waits
                    at_model = {int(m) for b in model.held_bodies
                                for m in re.findall(rb'"hold-(\d+)"', b)}
                    assert len(at_model) == CAP
                    queued = [c for i, c in enumerate(calls) if i not in at_model]
                    for call in queued:
                        call.cancel()
                    await eventually(lambda: app.in_flight == CAP, "the queued calls dropped")
                    for i in at_model:
                        calls[i].cancel()
                    for call in calls:
                        with pytest.raises(asyncio.CancelledError):
                            await call
                    await eventually(lambda: app.in_flight == 0, "the router's calls all ended")
                    await eventually(lambda: model.lost == CAP, "the held connections are closed")
                    assert app.requests_cancelled == CLIENTS
                    answer = await asyncio.wait_for(
                        client.call("ModelInfer", infer_request("fast"), timeout=10), 15)
                    out = InferResponse.from_grpc(answer)
                    assert [t.name for t in out.outputs] == ["y"]
                finally:
                    await client.close()
                resp = await asyncio.wait_for(router.post(orjson.dumps(
                    {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]})), 10)
                assert resp.status == 200
                assert model.held == CAP
        finally:
            await model.close()
    loop.run(go())


@pytest.mark.parametrize("how", ["wait_for", "task.cancel"])
def test_embedded_cancellation_frees_the_slot(loop, how):
    async def go():
        model = await HoldingModel().start()
        plan = engine.load(seq(model.url())).compile(policy=Policy(max_connections_per_host=1))
        try:
            if how == "wait_for":
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(plan.infer({"hold": 1}), 0.05)
            else:
                task = asyncio.ensure_future(plan.infer({"hold": 1}))
                await eventually(lambda: model.held == 1, "the request at the model")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            # the one slot is free again: the next call is answered
            resp = await asyncio.wait_for(plan.infer({"fast": 1}), 10)
            assert resp.status == 200 and bytes(resp.body) == FAST
            if model.held:
                await eventually(lambda: model.lost == 1, "the cancelled call's connection closed")
            assert model.held <= 1
        finally:
            await plan.aclose()
            await model.close()
    loop.run(go())


def test_cancelled_request_in_a_python_task_reaches_the_pool(loop):
    # engine.Plan.infer awaited in an ordinary Task: two requests on a one-slot pool,
    # the first held at the model, the second queued behind it; cancelling the
    # second must drop it before it is sent, cancelling the first close its connection
    async def go():
        model = await HoldingModel().start()
        plan = engine.load(seq(model.url())).compile(policy=Policy(max_connections_per_host=1))
        try:
            first = asyncio.ensure_future(plan.infer({"hold": 1}))
            await eventually(lambda: model.held == 1, "the first request at the model")
            second = asyncio.ensure_future(plan.infer({"hold": 2}))
            await asyncio.sleep(0)
            second.cancel()
            first.cancel()
            for t in (first, second):
                with pytest.raises(asyncio.CancelledError):
                    await t
            resp = await asyncio.wait_for(plan.infer({"fast": 1}), 10)
            assert resp.status == 200
            await eventually(lambda: model.lost == 1, "the first call's connection closed")
            assert model.held == 1 and model.opened == 2
        finally:
            await plan.aclose()
            await model.close()
    loop.run(go())


def test_ensemble_cancels_the_steps_it_no_longer_needs(loop):
    # a transport failure decides the Ensemble's answer at once: the step still
    # held at the model is cancelled, its connection closed
    async def go():
        model = await HoldingModel().start()
        graph = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"name": "held", "serviceUrl": model.url()},
            {"name": "refused", "serviceUrl": f"http://127.0.0.1:{closed_port()}/"}]}}}
        try:
            async with running_router(graph) as router:
                resp = await asyncio.wait_for(router.post(b'{"hold":1}'), 10)
                assert resp.status == 500 and b"connection refused" in bytes(resp.body)
                await eventually(lambda: model.held == 1 and model.lost == 1,
                                 "the held step's connection closed")
                assert router.instance.app.requests_cancelled == 0
        finally:
            await model.close()
    loop.run(go())


@pytest.mark.parametrize("backend", ["grpc", "local-async"])
def test_hang_up_cancels_grpc_and_local_steps(loop, backend):
    async def go():
        lp = asyncio.get_running_loop()
        started, cancelled = lp.create_future(), lp.create_future()

        async def hold():
            started.set_result(None)
            try:
                await lp.create_future()
            except asyncio.CancelledError:
                cancelled.set_result(None)
                raise

        services = {}
        grpc_model = None
        if backend == "grpc":
            grpc_model = await GrpcModel(lambda req: hold()).start()
            step = {"serviceUrl": grpc_model.url()}
            body = orjson.dumps({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32",
                                             "data": [1.0]}]})
        else:
            async def model(payload):
                await hold()
            services = {"m": model}
            step = {"serviceName": "m"}
            body = b"{}"
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [step]}}}
        try:
            async with running_router(graph, services=services) as router:
                reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
                writer.write(post(body, close=True))
                await asyncio.wait_for(started, 10)
                writer.close()
                await asyncio.wait_for(cancelled, 10)
                await eventually(lambda: router.instance.app.in_flight == 0, "nothing in flight")
                assert router.instance.app.requests_cancelled == 1
        finally:
            if grpc_model is not None:
                await grpc_model.close()
    loop.run(go())
