"""Instructions per request under valgrind's callgrind: a deterministic measure of the
router's own work, for before/after comparisons that wall-clock benchmarks on a noisy
machine cannot settle.

    python -m bench.callgrind                                  # every scenario, this tree
    python -m bench.callgrind --scenario seq1 --tree A --tree B   # two built trees, same run

One process holds a model server, the router (RouterInstance, as `ige serve` builds
it) and a keep-alive client, and runs N requests of one scenario; the figure is
(Ir(1300 requests) - Ir(300 requests)) / 1000, so start-up, imports and the first
requests cancel. Runs are repeatable to about 0.3%. Needs valgrind (apt-get install
valgrind). Each tree runs with `python -P` and its own directory on PYTHONPATH, and
the run checks that the tree's own engine._core was imported.

Scenarios (client + router + model, all in the process):
  seq1     HTTP: 1-step Sequence, 15 B JSON request, the model answers 19 B of JSON
  policy   seq1 with a TrafficPolicy on the step that never fires: retries, a timeout,
           a circuit breaker and two endpoints (both the same model)
  switch   HTTP: 2-way Switch (GJSON conditions instances.#(modelId=="1"/"2")) on a 7 KB
           request whose matching instance is the last: both conditions scan it all
  seq2     HTTP: 2-step Sequence over the same model (the second step sends the first's answer)
  seq2-path  seq2 with the data path `$response.predictions` on the second step (a tree
           without data paths sends the request instead: the difference is the selection)
  ens4     HTTP: 4-step Ensemble over the same model
  seq2-off, ens4-off   the same with per-step metrics off (Policy.metrics = False): their
           difference to seq2 / ens4 is what the step metrics cost
  seq2-trace, ens4-trace   the same with OpenTelemetry tracing on, every request sampled
           (always_on): the core's span records on the main thread, their conversion
           to the SDK's spans on the export thread (exported to an exporter that
           drops them, so no network cost is counted)
  grpc     gRPC ModelInfer (grpc.aio client) -> the router's gRPC front end -> 1-step
           Sequence over HTTP v2 to an identity v2 model, FP32 [1,16] tensor; grpc's
           own threads make the all-threads figure vary: compare the main thread
  grpc-h2  the same call from a hand-written HTTP/2 client (one precomputed header
           block, frames read with struct): the client costs little, so the figure is
           mostly the router's own; works against either front end
  grpc-grpcio, grpc-h2-grpcio   grpc and grpc-h2 against the grpc.aio front end
           (--grpc-impl grpcio) of the same tree: native and grpcio in one run
"""
import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile

import uvloop

import engine
from engine import _core
from engine.server.runner import RouterInstance, ServeOptions, listening_socket


def http_model(answer: bytes):
    return _core.HttpServer(lambda req: _core.HttpResponse(200, answer, [(b"Content-Type", b"application/json")]))


def v2_identity_model():
    from engine.bridge import header_value
    from engine.oip import HEADER_LENGTH, InferRequest, InferResponse, join
    hl_name = HEADER_LENGTH.lower().encode()

    def infer(request):
        hl = header_value(request.headers, hl_name)
        req = InferRequest.from_http(request.body, int(hl) if hl else None, model_name="m")
        buffers, n = InferResponse(req.model_name, req.inputs, id=req.id).to_http(req)
        headers = [(b"Content-Type", b"application/octet-stream" if n is not None else b"application/json")]
        if n is not None:
            headers.append((HEADER_LENGTH.encode(), str(n).encode()))
        return _core.HttpResponse(200, join(buffers), headers)
    return _core.HttpServer(infer)


async def serve(server) -> int:
    s = await asyncio.get_running_loop().create_server(server.protocol_factory, "127.0.0.1", 0)
    return s, s.sockets[0].getsockname()[1]


async def http_client(port: int, body: bytes, n: int, expect: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for i in range(n):
        writer.write(req)
        head = await reader.readuntil(b"\r\n\r\n")
        size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        answer = await reader.readexactly(size)
        if i == 0 or i == n - 1:
            if not head.startswith(b"HTTP/1.1 200") or answer != expect:
                raise SystemExit(f"ir: unexpected answer {head!r} {answer!r}")
    writer.close()


async def grpc_client(port: int, n: int) -> None:
    import grpc.aio
    import numpy as np
    from engine.oip import InferRequest, InferResponse, from_numpy, join
    x = np.arange(16, dtype=np.float32).reshape(1, 16)
    payload = join(InferRequest("g", [from_numpy("x", x)]).to_grpc())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        for i in range(n):
            answer = await call(payload)
            if i == 0 or i == n - 1:
                got = InferResponse.from_grpc(answer).as_numpy("x")
                if not np.array_equal(got, x):
                    raise SystemExit(f"ir: unexpected answer {got!r}")


async def grpc_h2_client(port: int, n: int) -> None:
    """ModelInfer n times, one at a time, over one HTTP/2 connection written by hand."""
    import struct

    import numpy as np
    from engine.oip import InferRequest, InferResponse, from_numpy, join
    x = np.arange(16, dtype=np.float32).reshape(1, 16)
    message = join(InferRequest("g", [from_numpy("x", x)]).to_grpc())

    def frame(kind, flags, stream, payload=b""):
        return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload

    def literal(name: bytes, value: bytes) -> bytes:      # HPACK literal, never indexed
        return b"\x10" + bytes([len(name)]) + name + bytes([len(value)]) + value

    path = b"/inference.GRPCInferenceService/ModelInfer"
    # :method POST and :scheme http from the static table; the rest literal, so that
    # the block is the same for every request
    block = b"\x83\x86" + b"\x04" + bytes([len(path)]) + path + b"\x01\x09127.0.0.1" + \
        literal(b"content-type", b"application/grpc") + literal(b"te", b"trailers")
    body = b"\x00" + struct.pack(">I", len(message)) + message
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0))
    try:
        for i in range(n):
            sid = 2 * i + 1
            writer.write(frame(1, 4, sid, block) + frame(0, 1, sid, body))
            data = b""
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                payload = await reader.readexactly(length) if length else b""
                if kind == 4 and not flags & 1:
                    writer.write(frame(4, 1, 0))
                elif kind == 6 and not flags & 1:
                    writer.write(frame(6, 1, 0, payload))
                elif kind == 0 and length:
                    data += payload
                    writer.write(frame(8, 0, 0, struct.pack(">I", length)))
                elif kind in (3, 7):
                    raise SystemExit(f"ir: the server reset the call ({kind})")
                if kind in (0, 1) and flags & 1 and int.from_bytes(head[5:9], "big") == sid:
                    break
            if i == 0 or i == n - 1:
                got = InferResponse.from_grpc(data[5:]).as_numpy("x")
                if not np.array_equal(got, x):
                    raise SystemExit(f"ir: unexpected answer {got!r}")
    finally:
        writer.close()


SCENARIOS = ["seq1", "policy", "switch", "seq2", "seq2-off", "seq2-trace", "seq2-path", "ens4",
             "ens4-off", "ens4-trace", "grpc", "grpc-h2", "grpc-grpcio", "grpc-h2-grpcio"]


def start_null_tracing():
    """Tracing on, every request sampled, exporting every 50 ms to an SDK exporter
    that drops the spans."""
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
    from engine import tracing

    class Drop(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    config = tracing.TracingConfig(exporters=("otlp",), sampler="always_on", schedule_delay=0.05)
    return tracing.start(config, "bench", exporters=[Drop()])


def never_firing_policy(url_a: str, url_b: str):
    """The policy scenario's TrafficPolicy: on the step's service, retries, a timeout,
    a breaker and two endpoints; with healthy models none of it ever acts."""
    from engine.spec.traffic import load_policy
    return load_policy({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy",
                        "metadata": {"name": "never-fires"},
                        "spec": {"default": {"timeout": "5s",
                                             "retry": {"maxRetries": 2, "initialDelayMs": 50,
                                                       "maxDelayMs": 1000}},
                                 "services": {url_a: {"endpoints": [url_a, url_b],
                                                      "circuitBreaker": {"consecutiveFailures": 5,
                                                                         "openFor": "10s"}}}}})


async def main(scenario: str, n: int) -> None:
    grpc = scenario.startswith("grpc")
    if grpc:
        model, mport = await serve(v2_identity_model())
        url = f"http://127.0.0.1:{mport}/v2/models/m/infer"
    else:
        answer = b'{"predictions":[1]}'
        model, mport = await serve(http_model(answer))
        url = f"http://127.0.0.1:{mport}/v1/models/m:predict"
    options = ServeOptions(host="127.0.0.1", http_port=0, drain_seconds=0,
                           grpc_port=0 if grpc else None)
    if scenario.endswith("-grpcio"):
        options.grpc_impl = "grpcio"
    if scenario == "policy":
        twin, tport = await serve(http_model(answer))
        options.policy.traffic = never_firing_policy(url, f"http://127.0.0.1:{tport}/v1/models/m:predict")
    if scenario == "switch":
        graph = {"nodes": {"root": {"routerType": "Switch", "steps": [
            {"serviceUrl": url, "condition": 'instances.#(modelId=="1")'},
            {"serviceUrl": url, "condition": 'instances.#(modelId=="2")'}]}}}
    elif scenario.startswith("seq2"):
        data = "$response.predictions" if scenario == "seq2-path" else "$response"
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": url}, {"serviceUrl": url, "data": data}]}}}
    elif scenario.startswith("ens4"):
        graph = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"serviceUrl": url, "name": f"m{i}"} for i in range(4)]}}}
        answer = b'{"m0":{"predictions":[1]},"m1":{"predictions":[1]},"m2":{"predictions":[1]},"m3":{"predictions":[1]}}'
    else:
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}}
    if scenario.endswith("-off"):
        options.policy.metrics = False
    pipeline = None
    if scenario.endswith("-trace"):
        pipeline = start_null_tracing()
    sock = listening_socket("127.0.0.1", 0, False)
    inst = RouterInstance(engine.load(graph), options, sock)
    await inst.start()
    try:
        if scenario.startswith("grpc-h2"):
            await grpc_h2_client(inst.grpc.port, n)
        elif grpc:
            await grpc_client(inst.grpc.port, n)
        else:
            body = b'{"instances":1}'
            if scenario == "switch":
                import orjson
                items = [{"modelId": "0", "x": [0.5] * 20} for _ in range(150)] + [{"modelId": "2"}]
                body = orjson.dumps({"instances": items})
            await http_client(sock.getsockname()[1], body, n, answer)
    finally:
        inst.server.close()
        if inst.grpc is not None:
            await inst.grpc.stop(0)
        await inst.plan.aclose()
        model.close()
        if scenario == "policy":
            twin.close()
        if pipeline is not None:
            pipeline.shutdown()
            assert pipeline.tracer.exported == pipeline.tracer.finished > 0, "spans were not exported"


def callgrind_total(tree: str, scenario: str, n: int, workdir: str) -> tuple[int, int]:
    """Instructions of one run of ``n`` requests under callgrind, with ``tree`` on
    PYTHONPATH: (all threads, the main thread alone)."""
    out = os.path.join(workdir, f"{scenario}.{n}.out")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0", PYTHONPATH=tree)
    # -P: the current directory must not shadow the tree on sys.path
    proc = subprocess.run(
        ["valgrind", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}",
         sys.executable, "-P", "-m", "bench.callgrind", "--run", "--requests", str(n),
         "--scenario", scenario], cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or f"done with {os.path.realpath(tree)}/" not in proc.stderr:
        raise SystemExit(f"callgrind: the run of {n} failed or imported another tree:\n{proc.stderr[-2000:]}")
    total = int(re.search(r"Collected : (\d+)", proc.stderr).group(1))
    with open(out + "-01") as f:
        main_thread = int(re.search(r"^totals: *(\d+)", f.read(), re.M).group(1))
    return total, main_thread


def measure(tree: str, scenario: str, small: int = 300, large: int = 1300) -> tuple[int, int]:
    """Instructions per request (all threads, main thread): the difference of two
    runs, so that start-up and first requests cancel."""
    with tempfile.TemporaryDirectory(prefix="ige-callgrind-") as workdir:
        a = callgrind_total(tree, scenario, small, workdir)
        b = callgrind_total(tree, scenario, large, workdir)
    n = large - small
    return (b[0] - a[0]) // n, (b[1] - a[1]) // n


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scenario", choices=SCENARIOS, action="append",
                   help="repeatable; default: all")
    p.add_argument("--tree", action="append", default=[],
                   help="a source tree, built (repeatable: several trees, same scenarios); default: this one")
    p.add_argument("--run", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--requests", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.run:
        uvloop.run(main(args.scenario[0], args.requests))
        print(f"callgrind: {args.scenario[0]} x {args.requests} done with {_core.__file__}", file=sys.stderr)
        raise SystemExit(0)
    trees = args.tree or [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    print("| scenario | tree | instructions per request (all threads) | main thread |")
    print("|---|---|---|---|")
    for scenario in args.scenario or SCENARIOS:
        for tree in trees:
            total, main_thread = measure(os.path.realpath(tree), scenario)
            print(f"| {scenario} | {tree} | {total:,} | {main_thread:,} |", flush=True)
