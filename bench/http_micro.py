"""HTTP layer micro benchmark: CPU per proxied request through engine._core's server
and client, and the client's response scanner against httptools.

    python -m bench.http_micro [--requests 20000] [--concurrency 8] [--loop uvloop]

Three processes on loopback: an upstream (our server answering a small JSON), the
router (our server whose handler forwards each body with our client; measured), and a
load generator (our client with keep-alive connections). Router CPU is
time.process_time() (user+system of the router process) over the timed requests.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time

import uvloop

from engine import _core

ANSWER = b'{"predictions":[[0.1,0.2,0.3]]}'
REQUEST = b'{"instances":[[1.0,2.0,3.0,4.0]]}'
JSON = [(b"Content-Type", b"application/json")]


def _new_loop(kind):
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def _listen():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


async def _serve(handler, sock):
    server = _core.HttpServer(handler)
    srv = await asyncio.get_running_loop().create_server(server.protocol_factory, sock=sock)
    return server, srv


def run_upstream(fd):
    sock = socket.socket(fileno=fd)
    answer = _core.HttpResponse(200, ANSWER, JSON)

    async def main():
        await _serve(lambda req: answer, sock)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

    uvloop.run(main())


def run_load(port, n, concurrency):
    async def main():
        client = _core.HttpClient()
        ep = _core.Endpoint(f"http://127.0.0.1:{port}/v1/models/m:predict")
        remaining = [n]

        async def worker():
            while remaining[0] > 0:
                remaining[0] -= 1
                resp = await client.request(ep, REQUEST)
                assert resp.status == 200 and resp.body == ANSWER, resp

        for _ in range(2):     # warm-up, then the timed phase the router measures
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            print("phase", flush=True)
            sys.stdin.readline()
            remaining[0] = n
        await client.close()

    uvloop.run(main())


def measure_router(args):
    up_sock = _listen()
    upstream = subprocess.Popen([sys.executable, "-m", "bench.http_micro", "--role", "upstream",
                                 "--fd", str(up_sock.fileno())], pass_fds=[up_sock.fileno()],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert upstream.stdout.readline().strip() == "ready"
    loop = _new_loop(args.loop)
    asyncio.set_event_loop(loop)
    client = _core.HttpClient()
    ep = _core.Endpoint(f"http://127.0.0.1:{up_sock.getsockname()[1]}/v1/models/m:predict")

    fixed = _core.HttpResponse(200, ANSWER, JSON)

    def forward(req):
        return _forward(client, ep, req, args.timeout)

    def answer(req):
        return fixed

    router_sock = _listen()
    server, srv = loop.run_until_complete(_serve(answer if args.server_only else forward, router_sock))
    load = subprocess.Popen([sys.executable, "-m", "bench.http_micro", "--role", "load",
                             "--port", str(router_sock.getsockname()[1]), "--requests",
                             str(args.requests), "--concurrency", str(args.concurrency)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        loop.run_until_complete(_wait_line(loop, load))       # warm-up done
        t0, c0 = time.perf_counter(), time.process_time()
        load.stdin.write("go\n")
        load.stdin.flush()
        loop.run_until_complete(_wait_line(loop, load))
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        load.stdin.write("go\n")
        load.stdin.flush()
        load.wait(60)
    finally:
        srv.close()
        loop.run_until_complete(server.drain(1.0))
        loop.run_until_complete(client.close())
        upstream.stdin.close()
        upstream.wait(10)
        loop.close()
    n = args.requests
    what = "answered (server only, no upstream call)" if args.server_only else "proxied"
    print(f"router on {args.loop}: {n} {what} requests, concurrency {args.concurrency}, "
          f"client timeout {args.timeout}, {n / wall:,.0f} req/s, router CPU {cpu / n * 1e6:.1f} us/request "
          f"(time.process_time of the router process)")


def _forward(client, ep, req, timeout):
    fut = asyncio.get_running_loop().create_future()

    def done(f):
        exc = f.exception()
        if exc is not None:
            fut.set_result(_core.HttpResponse(500, str(exc).encode(), JSON))
        else:
            r = f.result()
            fut.set_result(_core.HttpResponse(r.status, r.body, JSON))

    client.request(ep, req.body, None, timeout).add_done_callback(done)
    return fut


async def _wait_line(loop, proc):
    line = await loop.run_in_executor(None, proc.stdout.readline)
    assert line.strip() == "phase", line


def compare_scanners(repeat=200000):
    import httptools

    response = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Date: Sat, 21 Nov 2026 20:00:00 GMT\r\nContent-Length: %d\r\n\r\n" % len(ANSWER)
                + ANSWER)

    class Collect:
        __slots__ = ("headers", "body", "done")

        def on_header(self, name, value):
            self.headers.append((name, value))

        def on_body(self, body):
            self.body.append(body)

        def on_message_complete(self):
            self.done = True

    t0 = time.process_time()
    for _ in range(repeat):
        c = Collect()
        c.headers, c.body, c.done = [], [], False
        p = httptools.HttpResponseParser(c)
        p.feed_data(response)
        p.get_status_code()
        b"".join(c.body)
    t_httptools = (time.process_time() - t0) / repeat
    # one parser per response above would be unfair: also time a reused one
    c = Collect()
    p = httptools.HttpResponseParser(c)
    t0 = time.process_time()
    for _ in range(repeat):
        c.headers, c.body, c.done = [], [], False
        p.feed_data(response)
        p.get_status_code()
        b"".join(c.body)
    t_httptools_reused = (time.process_time() - t0) / repeat
    t0 = time.process_time()
    _core._scan_response([response], repeat)
    t_scanner = (time.process_time() - t0) / repeat
    print(f"response parsing ({len(response)} bytes, 3 headers): httptools "
          f"{t_httptools * 1e9:.0f} ns (new parser), {t_httptools_reused * 1e9:.0f} ns "
          f"(reused parser); engine scanner {t_scanner * 1e9:.0f} ns")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", default="main", choices=["main", "upstream", "load"])
    ap.add_argument("--fd", type=int)
    ap.add_argument("--port", type=int)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    ap.add_argument("--router-only", action="store_true", help="skip the scanner comparison")
    ap.add_argument("--timeout", type=float, default=None, help="client timeout per upstream call")
    ap.add_argument("--server-only", action="store_true",
                    help="the router answers itself: the server's share of the cost")
    args = ap.parse_args()
    if args.role == "upstream":
        run_upstream(args.fd)
    elif args.role == "load":
        run_load(args.port, args.requests, args.concurrency)
    else:
        if not args.router_only:
            compare_scanners()
        measure_router(args)


if __name__ == "__main__":
    main()
