"""Router CPU per request for seq1 over plain HTTP, over HTTPS (--enable-tls) and with
--enable-auth (one token, cache warm), in one run: the router pinned to CPU 0, the mock
model, a fake Kubernetes API server (tests/kubekit.py) and wrk on the other CPUs.

    PYTHONPATH=. python -m bench.tls_load [--duration 5] [--connections 16] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import ssl

from .cpu import tree_cpu_seconds
from .mock_server import start_mock
from .wrk import parse_wrk_output, wrk_script

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from kubekit import FakeKubeApi  # noqa: E402
from tlskit import TestCA  # noqa: E402

TOKEN = "e" * 900       # about a service account JWT's size


class _LoopThread:
    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(url, ctx):
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/readyz", context=ctx, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def measure(name, extra_args, env, scheme, model_url, body_path, args, headers=()):
    port = _free_port()
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model_url}]}}}
    argv = ["taskset", "-c", "0", sys.executable, "-m", "engine", "serve", "--graph-json",
            json.dumps(spec), "--http-port", str(port), "--host", "127.0.0.1", "--grpc-port", "0",
            "--drain-seconds", "0", *extra_args]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ctx = ssl._create_unverified_context()
    url = f"{scheme}://127.0.0.1:{port}"
    try:
        _wait_ready(url, ctx)
        script = os.path.join(os.path.dirname(body_path), "post.lua")
        with open(script, "w") as f:
            f.write(wrk_script(body_path))
        wrk = ["taskset", "-c", "1", "wrk", "-t", "1", "-c", str(args.connections), "--latency",
               "-s", script]
        for h in headers:
            wrk += ["-H", h]
        subprocess.run(wrk + ["-d", "1s", url + "/"], capture_output=True, timeout=60)
        before = tree_cpu_seconds(proc.pid)
        out = subprocess.run(wrk + ["-d", f"{args.duration:g}s", url + "/"], capture_output=True,
                             text=True, timeout=args.duration + 60)
        after = tree_cpu_seconds(proc.pid)
        result = parse_wrk_output(out.stdout)
        errors = sum(result.errors.values())
        us = (after - before) / max(1, result.requests) * 1e6
        print(f"{name:10s} {us:7.1f} us CPU/request  {result.rps:8.0f} req/s  "
              f"p50 {result.p50_us:6.0f} us  errors {errors}", flush=True)
        return us
    finally:
        proc.terminate()
        proc.wait(20)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.tls_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="ige-tls-bench-")
    ca = TestCA()
    cert, key = ca.write_pair(work)
    body_path = os.path.join(work, "body.json")
    with open(body_path, "w") as f:
        f.write('{"instances":[[1,2,3,4]]}')
    side = _LoopThread()
    mock = side.run(start_mock())
    kube = FakeKubeApi(work, users={TOKEN: {"username": "bench"}}, allowed_users={"bench"},
                       graph="bench-graph")
    side.run(kube.start())
    model_url = mock.predict_url("model-a")
    env = dict(os.environ)
    variants = [
        ("http", [], env, "http", ()),
        ("http+hdr", [], env, "http", (f"Authorization: Bearer {TOKEN}",)),
        ("https", ["--enable-tls", "--tls-cert", cert, "--tls-key", key], env, "https", ()),
        ("http+auth", ["--enable-auth", "--inferencegraph-name", "bench-graph"],
         dict(env, **kube.env()), "http", (f"Authorization: Bearer {TOKEN}",)),
    ]
    try:
        for r in range(args.rounds):
            order = variants if r % 2 == 0 else variants[::-1]
            for name, extra, venv, scheme, headers in order:
                measure(name, extra, venv, scheme, model_url, body_path, args, headers)
        print(f"kube API calls: {kube.calls}")
    finally:
        side.run(kube.close())
        side.run(mock.close())


if __name__ == "__main__":
    main()
