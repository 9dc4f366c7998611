"""HTTP layer micro benchmark: CPU per proxied request through engine._core's server
and client, and the client's response scanner against httptools.

    python -m bench.http_micro [--requests 20000] [--concurrency 8] [--loop uvloop]

Without --router-only it runs, in one go: the scanner comparison, the bare
uvloop+httptools forward baseline, the engine forward without and with a client
timeout, and the engine server alone.

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

    if args.cython_glue:
        forward = _core._ForwardOne(client, ep)

    def answer(req):
        return fixed

    router_sock = _listen()
    if args.bare:
        up_host, up_port = up_sock.getsockname()
        server = None
        srv = loop.run_until_complete(loop.create_server(
            lambda: _BareForward(up_host, up_port), sock=router_sock))
    else:
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
        if server is not None:
            loop.run_until_complete(server.drain(1.0))
        loop.run_until_complete(client.close())
        upstream.stdin.close()
        upstream.wait(10)
        loop.close()
    n = args.requests
    if args.bare:
        label = "bare uvloop+httptools forward (baseline)"
    elif args.cython_glue:
        label = "engine server + HttpClient forward, glue in Cython (_core._ForwardOne)"
    elif args.server_only:
        label = "engine server alone (handler answers, no upstream call)"
    else:
        label = f"engine server + HttpClient forward (client timeout {args.timeout})"
    print(f"{label} on {args.loop}: {n} requests, concurrency {args.concurrency}, "
          f"{n / wall:,.0f} req/s, router CPU {cpu / n * 1e6:.1f} us/request "
          f"(time.process_time of the router process)")


class _BareForward(asyncio.Protocol):
    """Baseline: the least a uvloop + httptools forward can do (one upstream connection
    per downstream connection, no pool, no limits, no timeouts, no Date header)."""

    def __init__(self, host, port):
        import httptools
        self.parser = httptools.HttpRequestParser(self)
        self.up = None
        self.addr = (host, port)
        self.prefix = b"POST /v1/models/m:predict HTTP/1.1\r\nHost: %s:%d\r\n" % (host.encode(), port)
        self.body = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        body = b"".join(self.body)
        self.body = []
        msg = (self.prefix + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
               + body)
        if self.up is None:
            asyncio.get_running_loop().create_task(self._connect(msg))
        else:
            self.up.transport.write(msg)

    async def _connect(self, msg):
        _, self.up = await asyncio.get_running_loop().create_connection(
            lambda: _BareUpstream(self.transport), *self.addr)
        self.up.transport.write(msg)

    def connection_lost(self, exc):
        if self.up is not None:
            self.up.transport.close()


class _BareUpstream(asyncio.Protocol):
    def __init__(self, downstream):
        import httptools
        self.down = downstream
        self.parser = httptools.HttpResponseParser(self)
        self.body = []

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.parser.feed_data(data)

    def on_body(self, body):
        self.body.append(body)

    def on_message_complete(self):
        body = b"".join(self.body)
        self.body = []
        self.down.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                        % (self.parser.get_status_code(), len(body)) + body)


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
    ap.add_argument("--bare", action="store_true",
                    help="baseline router: bare uvloop + httptools forward in plain Python")
    ap.add_argument("--cython-glue", action="store_true",
                    help="forward with engine._core._ForwardOne instead of a Python handler")
    ap.add_argument("--server-only", action="store_true",
                    help="the router answers itself: the server's share of the cost")
    args = ap.parse_args()
    if args.role == "upstream":
        run_upstream(args.fd)
    elif args.role == "load":
        run_load(args.port, args.requests, args.concurrency)
    else:
        if args.router_only:
            measure_router(args)
            return
        compare_scanners()
        for variant in ({"bare": True}, {}, {"cython_glue": True}, {"timeout": 30.0},
                        {"server_only": True}):
            measure_router(argparse.Namespace(**{**vars(args), **variant}))


if __name__ == "__main__":
    main()
