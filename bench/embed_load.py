"""CPU per request of the seq2 graph embedded in serving runtimes, same run:

    python -m bench.embed_load [--duration 5] [--connections 16]

Rows (each server a subprocess pinned to CPU 0, the mocks of bench/mock_server.py and
wrk on the other CPUs, as bench/load.py does):
* ``kserve plain Model``: KServe's ModelServer with a plain ``kserve.Model`` whose
  predict calls model-a then model-b itself, with the engine's own HTTP client
  (``engine._core.HttpClient``): the baseline, what the runtime and the two calls cost
  without the graph; ``(httpx)``: the same with httpx, as one would write it.
* ``kserve GraphModel``: the same ModelServer serving ``engine.kserve.GraphModel``
  with bench/graphs/seq2.yaml (the overhead the graph adds inside the runtime);
* ``uvicorn GraphASGI``: uvicorn (uvloop, httptools) serving ``engine.asgi.GraphASGI``;
* ``ige serve``: the router itself, for reference.
CPU is the server's process tree's user+system time over the measured window (/proc),
divided by the requests wrk completed. ``--serve KIND PORT URLS_JSON`` is the
servers' own entry point (internal).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

from .cpu import cpu_per_request, tree_cpu_seconds
from .procs import REPO_DIR, Child, check_answer, cpu_plan, free_port, pinned, start_mocks, wait_ready
from .scenarios import SCENARIOS
from .wrk import run_wrk, wrk_script

SCENARIO = SCENARIOS["seq2"]
ROWS = ["kserve plain Model", "kserve plain Model (httpx)", "kserve GraphModel", "uvicorn GraphASGI",
        "ige serve"]
KSERVE_PATH = "/v1/models/seq2:predict"
JSON_HEADERS = [(b"Content-Type", b"application/json")]


def serve(kind: str, port: int, urls: dict) -> None:
    """Run one server in this process until it is stopped."""
    if kind == "asgi":
        import uvicorn

        from engine.asgi import GraphASGI
        app = GraphASGI(SCENARIO.graph, services=urls)
        uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                    log_level="warning", access_log=False, lifespan="on")
        return
    import httpx
    from kserve import Model, ModelServer

    if kind == "graphmodel":
        from engine.kserve import GraphModel
        model = GraphModel("seq2", SCENARIO.graph, services=urls)
    else:
        first, second = (urls[name] for name in SCENARIO.services)
        if kind == "plain":
            import orjson

            from engine import _core
            ep_a, ep_b = _core.Endpoint(first), _core.Endpoint(second)

            class Sequence(Model):
                """model-a, then model-b on model-a's answer, with the engine's client."""

                def __init__(self):
                    super().__init__("seq2")
                    self.client = None
                    self.ready = True

                async def predict(self, payload, headers=None, response_headers=None):
                    if self.client is None:
                        self.client = _core.HttpClient()
                    a = await self.client.request(ep_a, orjson.dumps(payload), list(JSON_HEADERS))
                    b = await self.client.request(ep_b, a.body, list(JSON_HEADERS))
                    return orjson.loads(b.body)

            ModelServer(http_port=port, grpc_port=free_port(), workers=1, enable_grpc=False).start([Sequence()])
            return

        class Sequence(Model):
            """model-a, then model-b on model-a's answer: the graph written by hand."""

            def __init__(self):
                super().__init__("seq2")
                self.client = None
                self.ready = True

            async def predict(self, payload, headers=None, response_headers=None):
                if self.client is None:
                    self.client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=64))
                a = await self.client.post(first, json=payload)
                b = await self.client.post(second, content=a.content,
                                           headers={"content-type": "application/json"})
                return b.json()

        model = Sequence()
    ModelServer(http_port=port, grpc_port=free_port(), workers=1, enable_grpc=False).start([model])


def command(row: str, port: int, urls: dict, workdir: str) -> list[str]:
    me = [sys.executable, "-m", "bench.embed_load", "--serve"]
    if row == "ige serve":
        services = os.path.join(workdir, "services.yaml")
        with open(services, "w") as f:
            f.writelines(f"{name}: {url}\n" for name, url in urls.items())
        return [sys.executable, "-m", "engine", "serve", SCENARIO.graph, "--services", services,
                "--http-port", str(port), "--drain-seconds", "0"]
    kind = {"kserve plain Model": "plain", "kserve plain Model (httpx)": "httpx", "kserve GraphModel": "graphmodel", "uvicorn GraphASGI": "asgi"}[row]
    return me + [kind, str(port), json.dumps(urls)]


def measure(opts) -> list[dict]:
    server_cpus, other_cpus = cpu_plan()
    workdir = tempfile.mkdtemp(prefix="embed-load-")
    body = SCENARIO.body()
    body_path = os.path.join(workdir, "body.json")
    with open(body_path, "wb") as f:
        f.write(body)
    script = os.path.join(workdir, "post.lua")
    with open(script, "w") as f:
        f.write(wrk_script(body_path))
    mocks: list = []
    rows = []
    try:
        urls = start_mocks(SCENARIO, other_cpus, workdir, 30.0, started=mocks)
        for row in opts.rows:
            port = free_port()
            child = Child(pinned(command(row, port, urls, workdir), server_cpus), name=row.replace(" ", "-"),
                          logdir=workdir, cwd=REPO_DIR)
            try:
                wait_ready(port, child, 60.0)
                check_answer(port, SCENARIO, body, KSERVE_PATH)
                url = f"http://127.0.0.1:{port}{KSERVE_PATH}"
                wrk = dict(connections=opts.connections, threads=opts.threads, cpus=other_cpus)
                run_wrk(url, script, duration=opts.warmup, **wrk)
                cpu0, t0 = tree_cpu_seconds(child.pid), time.monotonic()
                result = run_wrk(url, script, duration=opts.duration, **wrk)
                cpu1, t1 = tree_cpu_seconds(child.pid), time.monotonic()
                rows.append({"row": row, "requests": result.requests, "rps": result.rps,
                             "p50_ms": result.p50_us / 1000, "p99_ms": result.p99_us / 1000,
                             "errors": result.error_count,
                             "cpu_us": cpu_per_request(cpu0, cpu1, result.requests),
                             "cpu_util": (cpu1 - cpu0) / (t1 - t0) * 100})
            finally:
                child.stop()
    finally:
        for m in mocks:
            m.stop()
    return rows


def report(rows: list[dict], opts) -> str:
    base = next((r["cpu_us"] for r in rows if r["row"] == "kserve plain Model"), None)
    lines = [f"seq2 (2-step Sequence, ~100 B JSON), wrk -c {opts.connections} -t {opts.threads} "
             f"-d {opts.duration:g}s after {opts.warmup:g}s warm-up; server pinned to CPU 0",
             "", "| server | requests | req/s | p50 ms | p99 ms | errors | CPU us/req | vs plain Model | CPU % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['cpu_us'] / base:.2f}x" if base else "-"
        lines.append(f"| {r['row']} | {r['requests']} | {r['rps']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['errors']} | {r['cpu_us']:.1f} | {ratio} | {r['cpu_util']:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", nargs="+", default=ROWS, choices=ROWS, metavar="ROW")
    p.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "URLS_JSON"), help=argparse.SUPPRESS)
    opts = p.parse_args(argv)
    if opts.serve:
        kind, port, urls = opts.serve
        serve(kind, int(port), json.loads(urls))
        return 0
    print(report(measure(opts), opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
