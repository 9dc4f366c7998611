"""OIP v2 / gRPC load scenarios: router CPU per request and latency, next to the same
calls made directly to the backends (the cost floor).

    .venv/bin/python -m bench.oip_load [--scenario grpc-seq2|v2bin-seq3-1mb|all]

Scenarios:
  grpc-seq2       gRPC front end -> 2-step Sequence over gRPC, 64 KB FP32 tensor
  v2bin-seq3-1mb  HTTP v2 binary front end -> 3-step Sequence over HTTP v2 binary, 1 MB
For each: the router (``ige serve`` in its own process) and the direct calls (the
client makes the same 2 or 3 calls itself, in sequence). Models are identity models in
a separate process (output = input, sent back by reference). Router CPU is utime+stime
from /proc/<pid>/stat over the measured requests; ``proxy`` is a plain TCP relay
process forwarding the direct calls, the "plain socket forward" comparison.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- models process ----------------------------------------------------------------

def serve_models(grpc_port: int, http_port: int) -> None:
    import grpc
    import grpc.aio
    import uvloop

    from engine import _core
    from engine.bridge import header_value
    from engine.oip import HEADER_LENGTH, InferRequest, InferResponse, join

    hl_name = HEADER_LENGTH.lower().encode()

    def identity(req):
        return InferResponse(req.model_name, req.inputs, id=req.id)

    async def grpc_infer(request, context):
        return join(identity(InferRequest.from_grpc(request)).to_grpc())

    def http_infer(request):
        hl = header_value(request.headers, hl_name)
        req = InferRequest.from_http(request.body, int(hl) if hl else None, model_name="m")
        buffers, n = identity(req).to_http(req)
        headers = [(b"Content-Type", b"application/octet-stream")]
        if n is not None:
            headers.append((HEADER_LENGTH.encode(), str(n).encode()))
        # one buffer per response: the HTTP server writes [head, body]
        return _core.HttpResponse(200, join(buffers), headers)

    async def main():
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1),
                                          ("grpc.max_send_message_length", -1)])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "inference.GRPCInferenceService",
            {"ModelInfer": grpc.unary_unary_rpc_method_handler(grpc_infer)}),))
        server.add_insecure_port(f"127.0.0.1:{grpc_port}")
        await server.start()
        http = _core.HttpServer(http_infer)
        await asyncio.get_running_loop().create_server(http.protocol_factory, "127.0.0.1", http_port)
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


def serve_proxy(listen_port: int, target_port: int) -> None:
    """A plain TCP relay (uvloop streams-free protocol pair): the cost of moving bytes."""
    import uvloop

    class Upstream(asyncio.Protocol):
        def __init__(self, down):
            self.down = down

        def data_received(self, data):
            self.down.write(data)

        def connection_lost(self, exc):
            self.down.close()

    class Downstream(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.pending = []
            self.up = None
            asyncio.ensure_future(self.connect())

        async def connect(self):
            loop = asyncio.get_running_loop()
            t, _ = await loop.create_connection(lambda: Upstream(self.transport), "127.0.0.1", target_port)
            self.up = t
            for d in self.pending:
                t.write(d)

        def data_received(self, data):
            if self.up is None:
                self.pending.append(data)
            else:
                self.up.write(data)

        def connection_lost(self, exc):
            if self.up is not None:
                self.up.close()

    async def main():
        await asyncio.get_running_loop().create_server(Downstream, "127.0.0.1", listen_port)
        print("ready", flush=True)
        await asyncio.Event().wait()

    uvloop.run(main())


# ---- load ---------------------------------------------------------------------------

async def run_load(call, count: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    next_i = 0

    async def worker():
        nonlocal next_i
        while next_i < count:
            next_i += 1
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def summary(name: str, lat: list[float], cpu: dict[str, float], n: int) -> dict:
    lat = sorted(lat)
    row = {"case": name, "requests": n,
           "p50_ms": round(lat[len(lat) // 2] * 1e3, 3),
           "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 3),
           "mean_ms": round(statistics.fmean(lat) * 1e3, 3)}
    for who, seconds in cpu.items():
        row[f"{who}_cpu_us_per_req"] = round(seconds / n * 1e6, 1)
    return row


async def measure(name, call, pids: dict, count: int, concurrency: int, warmup: int) -> dict:
    await run_load(call, warmup, concurrency)
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    lat = await run_load(call, count, concurrency)
    cpu = {k: cpu_seconds(p) - before[k] for k, p in pids.items()}
    return summary(name, lat, cpu, count)


def spawn(args, cwd=None) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=cwd, text=True)
    return proc


def wait_line(proc: subprocess.Popen, text: str) -> None:
    line = proc.stdout.readline()
    if text not in line:
        raise RuntimeError(f"child did not start: {line!r}")


def wait_port(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def scenario_grpc_seq2(ports, pids, args) -> list[dict]:
    import grpc.aio

    from engine.oip import InferRequest, InferResponse, from_numpy, join
    x = np.random.default_rng(1).random(16384, dtype=np.float32)     # 64 KB
    payload = join(InferRequest("m", [from_numpy("x", x)]).to_grpc())
    opts = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    method = "/inference.GRPCInferenceService/ModelInfer"
    router = grpc.aio.insecure_channel(f"127.0.0.1:{ports['router_grpc']}", options=opts)
    direct = grpc.aio.insecure_channel(f"127.0.0.1:{ports['grpc']}", options=opts)
    r_call, d_call = router.unary_unary(method), direct.unary_unary(method)

    async def via_router():
        out = InferResponse.from_grpc(await r_call(payload))
        assert out.outputs[0].data.nbytes == x.nbytes

    async def direct_calls():
        body = payload
        for _ in range(2):
            resp = InferResponse.from_grpc(await d_call(body))
            body = join(InferRequest("m", resp.outputs).to_grpc())

    rows = [await measure("grpc-seq2 router", via_router, pids, args.count, args.concurrency, 50),
            await measure("grpc-seq2 direct", direct_calls, {"models": pids["models"]},
                          args.count, args.concurrency, 50)]
    await router.close()
    await direct.close()
    return rows


async def scenario_v2bin(ports, pids, args, proxy) -> list[dict]:
    from engine import _core
    from engine.bridge import header_value
    from engine.oip import HEADER_LENGTH, InferRequest, InferResponse, from_numpy, join
    x = np.random.default_rng(2).random(262144, dtype=np.float32)    # 1 MB
    req = InferRequest("m", [from_numpy("x", x)], parameters={"binary_data_output": True})
    buffers, hl = req.to_http(binary=True)
    body = join(buffers)
    headers = [(HEADER_LENGTH.encode(), str(hl).encode()),
               (b"Content-Type", b"application/octet-stream")]
    client = _core.HttpClient()
    hl_lower = HEADER_LENGTH.lower().encode()
    router_ep = _core.Endpoint(f"http://127.0.0.1:{ports['router_http']}/v2/models/g/infer")
    direct_ep = _core.Endpoint(f"http://127.0.0.1:{ports['http']}/v2/models/m/infer")
    proxy_ep = _core.Endpoint(f"http://127.0.0.1:{ports['proxy']}/v2/models/m/infer")

    async def via_router():
        r = await client.request(router_ep, body, headers)
        out = InferResponse.from_http(r.body, int(header_value(r.headers, hl_lower)))
        assert r.status == 200 and out.outputs[0].data.nbytes == x.nbytes

    def chain(ep):
        async def calls():
            b, h = body, headers
            for _ in range(3):
                r = await client.request(ep, b, h)
                resp = InferResponse.from_http(r.body, int(header_value(r.headers, hl_lower)))
                nxt = InferRequest("m", resp.outputs, parameters={"binary_data_output": True})
                bufs, n = nxt.to_http(binary=True)
                b, h = join(bufs), [(HEADER_LENGTH.encode(), str(n).encode()), headers[1]]
        return calls

    count = max(50, args.count // 10)
    rows = [await measure("v2bin-seq3-1mb router", via_router, pids, count, args.concurrency, 10),
            await measure("v2bin-seq3-1mb direct", chain(direct_ep), {"models": pids["models"]},
                          count, args.concurrency, 10),
            await measure("v2bin-seq3-1mb via TCP relay", chain(proxy_ep),
                          {"models": pids["models"], "relay": proxy.pid},
                          count, args.concurrency, 10)]
    await client.close()
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenario", default="all", choices=["all", "grpc-seq2", "v2bin-seq3-1mb"])
    p.add_argument("--count", type=int, default=2000, help="requests per measured case (1 MB: /10)")
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--serve-models", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument("--serve-proxy", nargs=2, type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve_models:
        serve_models(*args.serve_models)
        return 0
    if args.serve_proxy:
        serve_proxy(*args.serve_proxy)
        return 0

    ports = {k: free_port() for k in ("grpc", "http", "router_http", "router_grpc", "proxy")}
    graph = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
             "metadata": {"name": "g"}, "spec": {"nodes": {
                 "root": {"routerType": "Sequence", "steps": []}}}}
    steps = graph["spec"]["nodes"]["root"]["steps"]
    if args.scenario in ("all", "grpc-seq2"):
        wanted = [("grpc", 2)]
    else:
        wanted = []
    if args.scenario in ("all", "v2bin-seq3-1mb"):
        wanted.append(("http", 3))
    children = []
    rows = []
    try:
        me = [sys.executable, "-m", "bench.oip_load"]
        models = spawn(me + ["--serve-models", str(ports["grpc"]), str(ports["http"])])
        children.append(models)
        wait_line(models, "ready")
        proxy = spawn(me + ["--serve-proxy", str(ports["proxy"]), str(ports["http"])])
        children.append(proxy)
        wait_line(proxy, "ready")
        for kind, n in wanted:
            steps.clear()
            for i in range(n):
                url = (f"grpc://127.0.0.1:{ports['grpc']}/m" if kind == "grpc"
                       else f"http://127.0.0.1:{ports['http']}/v2/models/m/infer")
                steps.append({"serviceUrl": url, **({"data": "$response"} if i else {})})
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                json.dump(graph, f)
            router = spawn([sys.executable, "-m", "engine", "serve", f.name, "--host", "127.0.0.1",
                            "--http-port", str(ports["router_http"]),
                            "--grpc-port", str(ports["router_grpc"]), "--drain-seconds", "0"])
            children.append(router)
            wait_port(ports["router_http"])
            wait_port(ports["router_grpc"])
            pids = {"router": router.pid, "models": models.pid}
            scenario = scenario_grpc_seq2 if kind == "grpc" else scenario_v2bin
            rows += asyncio.run(scenario(ports, pids, args) if kind == "grpc"
                                else scenario(ports, pids, args, proxy))
            router.terminate()
            router.wait(10)
            children.remove(router)
            os.unlink(f.name)
    finally:
        for c in children:
            c.terminate()
            c.wait(10)
    load = os.getloadavg()
    print(f"# cpus={os.cpu_count()} loadavg={load[0]:.2f} concurrency={args.concurrency}")
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
