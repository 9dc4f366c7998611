"""Abandoned requests: what clients that hang up cost the clients that stay.

N clients send a request that the model holds for --hold seconds and hang up after
--give-up seconds; then one normal request (answered at once by the same model) is
timed, over HTTP and over gRPC. With the router's connection cap per model server,
abandoned calls that keep their slots make the normal request wait for the slow ones;
cancelled calls do not. Also counted: requests that reached the model after their
clients had left (sent from the queue).

    python -m bench.hangup [--clients 100] [--hold 15] [--give-up 0.1]

The router runs as `python -m engine serve` in a subprocess (its PYTHONPATH is this
process's, so another checkout can be measured by setting PYTHONPATH).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

import grpc
import orjson

from engine import _core


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Model:
    """Holds a request whose body contains "hold" for `hold` seconds; answers any
    other at once. Records when each request arrived."""

    def __init__(self, hold: float):
        self.hold = hold
        self.arrivals: list[float] = []

    def handle(self, request):
        self.arrivals.append(time.monotonic())
        body = bytes(request.body)
        answer = _core.HttpResponse(200, b'{"outputs":[{"name":"y","shape":[1],"datatype":"FP32",'
                                         b'"data":[1.0]}],"predictions":[1]}',
                                    [(b"Content-Type", b"application/json")])
        if b"hold" in body:
            return self._later(answer)
        return answer

    async def _later(self, answer):
        await asyncio.sleep(self.hold)
        return answer


# v2 JSON bodies, so that any version of the router sends them to the v2 step
V2_NORMAL = b'{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}'
V2_HOLD = b'{"parameters":{"hold":true},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1.0]}]}'


async def http_client_gives_up(port: int, give_up: float) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = V2_HOLD
    writer.write(b"POST / HTTP/1.1\r\nHost: r\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    try:
        await asyncio.wait_for(reader.read(1), give_up)
    except asyncio.TimeoutError:
        pass
    writer.close()


async def timed_http(port: int, timeout: float) -> float:
    client = _core.HttpClient()
    start = time.monotonic()
    try:
        r = await asyncio.wait_for(client.request(_core.Endpoint(f"http://127.0.0.1:{port}/"),
                                                  V2_NORMAL, []), timeout)
        assert r.status == 200, r.body
        return time.monotonic() - start
    except asyncio.TimeoutError:
        return float("inf")
    finally:
        await client.close()


def _infer_request(hold: bool) -> bytes:
    import numpy as np
    from engine.oip import InferRequest, from_numpy, join
    # the tensor's name is what the model looks for: it survives every conversion
    req = InferRequest("g", [from_numpy("hold" if hold else "x", np.array([1.0], dtype=np.float32))])
    return join(req.to_grpc())


async def grpc_calls(port: int, n: int, give_up: float, timeout: float) -> float:
    """n ModelInfer calls cancelled after give_up s, then one timed call."""
    method = "/inference.GRPCInferenceService/ModelInfer"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary(method)
        held = _infer_request(True)
        calls = [call(held, timeout=give_up) for _ in range(n)]
        await asyncio.gather(*calls, return_exceptions=True)
        start = time.monotonic()
        try:
            await call(_infer_request(False), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return float("inf")
            raise
        return time.monotonic() - start


async def wait_ready(port: int, proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"router exited: {proc.returncode}")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /readyz HTTP/1.1\r\nHost: r\r\nConnection: close\r\n\r\n")
            head = await reader.read(64)
            writer.close()
            if head.startswith(b"HTTP/1.1 200"):
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit("router not ready")


async def run(opts) -> dict:
    model = Model(opts.hold)
    http = _core.HttpServer(model.handle)
    server = await asyncio.get_running_loop().create_server(http.protocol_factory, "127.0.0.1", 0)
    model_port = server.sockets[0].getsockname()[1]
    # one step: the HTTP front end sends it bytes, the gRPC front end a message
    path = "/v2/models/m/infer" if opts.step == "v2" else "/v1/models/m:predict"
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": f"http://127.0.0.1:{model_port}{path}"}]}}}
    http_port, grpc_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as d:
        log = open(os.path.join(d, "router.log"), "w+")
        proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--graph-json", json.dumps(spec),
                                 "--host", "127.0.0.1", "--http-port", str(http_port),
                                 "--grpc-port", str(grpc_port), "--drain-seconds", "0"],
                                stdout=log, stderr=log)
        try:
            await wait_ready(http_port, proc)
            result = {}
            await asyncio.gather(*(http_client_gives_up(http_port, opts.give_up)
                                   for _ in range(opts.clients)))
            left = time.monotonic()
            result["http_next_request_s"] = await timed_http(http_port, opts.hold + 5)
            await asyncio.sleep(opts.settle)
            result["http_sent_after_clients_left"] = sum(1 for t in model.arrivals[:-1] if t > left + 0.05)
            result["http_reached_model"] = len(model.arrivals) - 1
            model.arrivals.clear()
            await asyncio.sleep(opts.hold)  # let any held call of the first phase end
            model.arrivals.clear()
            left = time.monotonic() + opts.give_up
            result["grpc_next_call_s"] = await grpc_calls(grpc_port, opts.clients, opts.give_up, 20.0)
            result["grpc_then_http_request_s"] = await timed_http(http_port, opts.hold + 5)
            await asyncio.sleep(opts.settle)
            result["grpc_sent_after_clients_left"] = sum(1 for t in model.arrivals[:-2] if t > left + 0.05)
            result["grpc_reached_model"] = len(model.arrivals) - 2
            return result
        finally:
            proc.terminate()
            proc.wait(30)
            server.close()
            log.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--hold", type=float, default=15.0, help="seconds the model holds a request")
    p.add_argument("--give-up", type=float, default=0.1, help="seconds before a client hangs up")
    p.add_argument("--step", choices=("v1", "v2"), default="v2",
                   help="the step's URL: KServe's v1 predict path or the v2 infer path")
    p.add_argument("--settle", type=float, default=3.0,
                   help="seconds to watch for calls sent after their clients left")
    opts = p.parse_args(argv)
    import uvloop
    print(orjson.dumps(uvloop.run(run(opts)), option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
