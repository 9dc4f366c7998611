"""engine._core.HttpClient against loopback upstreams (raw asyncio servers scripted per
connection, or engine's own HttpServer), on asyncio and uvloop."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import re
import socket
import ssl
import struct
import subprocess

import pytest

from engine import _core
from engine.errors import UpstreamError


class Upstream:
    """A raw HTTP upstream: ``script(reader, writer, index)`` serves connection ``index``."""

    def __init__(self, script):
        self.script = script
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.requests = []
        self.closed = None
        self.tasks = set()

    async def __aenter__(self):
        self.closed = asyncio.Queue()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1/models/m:predict"
        self.ep = _core.Endpoint(self.url)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()

    async def _serve(self, reader, writer):
        index = self.connections
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        task = asyncio.current_task()
        self.tasks.add(task)
        try:
            await self.script(self, reader, writer, index)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            # the test is over or the client hung up: both end this connection
            pass
        finally:
            self.open -= 1
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            self.closed.put_nowait(index)
            self.tasks.discard(task)

    async def read_request(self, reader):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        return head, body


def answer(body=b'{"ok":true}', status=b"200 OK", extra=b""):
    return b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\n" % len(body) + extra + b"\r\n" + body


async def keep_answering(up, reader, writer, index):
    while True:
        head, body = await up.read_request(reader)
        writer.write(answer(b"[" + body + b"]"))


def test_request_and_reuse(loop):
    async def main():
        client = _core.HttpClient()
        async with Upstream(keep_answering) as up:
            for i in range(5):
                resp = await client.request(up.ep, b"%d" % i, [(b"X-Request-Id", b"r%d" % i)])
                assert (resp.status, resp.body) == (200, b"[%d]" % i)
                assert resp.headers == [(b"Content-Length", b"%d" % len(resp.body))]
            assert up.connections == 1
            head, body = up.requests[0]
            assert head.startswith(b"POST /v1/models/m:predict HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % up.port)
            assert b"X-Request-Id: r0\r\nContent-Type: application/json\r\nContent-Length: 1\r\n\r\n" in head
            # a caller's Content-Type wins; framing headers of the caller are dropped (as Go)
            await client.request(up.ep, bytearray(b"x"), [(b"content-type", b"text/plain"),
                                                          (b"Content-Length", b"99"), (b"Host", b"evil")])
            head, body = up.requests[-1]
            assert head.lower().count(b"content-type") == 1 and b"text/plain" in head
            assert b": 99" not in head and b"evil" not in head and body == b"x"
        await client.close()
    loop.run(main())


def test_large_and_buffer_bodies(loop):
    big = bytes(range(256)) * 4096

    async def main():
        client = _core.HttpClient()
        async with Upstream(keep_answering) as up:
            resp = await client.request(up.ep, memoryview(big))
            assert resp.body == b"[" + big + b"]"
            resp = await client.request(up.ep, bytearray(b"small"))
            assert resp.body == b"[small]"
        await client.close()
    loop.run(main())


def test_list_bodies_are_sent_buffer_by_buffer(loop):
    """A body given as a list of buffers (an encoded v2 message: header + tensors) is
    sent as their concatenation, large ones by writelines without a join."""
    import numpy as np
    tensor = np.arange(300_000, dtype=np.float32)
    parts = [b'{"h":1}', memoryview(tensor), bytearray(b"tail")]
    expected = b"".join(bytes(memoryview(p).cast("B")) for p in parts)

    async def main():
        client = _core.HttpClient()
        async with Upstream(keep_answering) as up:
            large = await client.request(up.ep, parts)
            small = await client.request(up.ep, [b"ab", memoryview(b"cd")])
        await client.close()
        return large, small
    large, small = loop.run(main())
    assert large.body == b"[" + expected + b"]"
    assert small.body == b"[abcd]"


def test_against_engine_server(loop):
    async def main():
        server = _core.HttpServer(lambda req: _core.HttpResponse(200, req.body.upper()))
        srv = await asyncio.get_running_loop().create_server(server.protocol_factory, "127.0.0.1", 0)
        ep = _core.Endpoint(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/p?q=1")
        client = _core.HttpClient()
        results = await asyncio.gather(*(client.request(ep, b"ab%d" % i) for i in range(20)))
        assert [r.body for r in results] == [b"AB%d" % i for i in range(20)]
        await client.close()
        srv.close()
        await server.drain(2.0)
    loop.run(main())


def test_pool_bound_and_waiters(loop):
    async def main():
        release = asyncio.get_running_loop().create_future()

        async def slow(up, reader, writer, index):
            while True:
                head, body = await up.read_request(reader)
                await release
                writer.write(answer(body))

        client = _core.HttpClient(max_connections_per_host=2)
        async with Upstream(slow) as up:
            calls = [client.request(up.ep, b"%d" % i) for i in range(6)]
            for _ in range(200):
                if len(up.requests) == 2:
                    break
                await asyncio.sleep(0)
            assert len(up.requests) == 2 and up.connections == 2
            release.set_result(None)
            results = await asyncio.gather(*calls)
            assert sorted(r.body for r in results) == [b"%d" % i for i in range(6)]
            assert up.connections == 2 and up.max_open == 2
        await client.close()
    loop.run(main())


def test_connection_close_is_not_reused(loop):
    async def once(up, reader, writer, index):
        await up.read_request(reader)
        writer.write(answer(extra=b"Connection: close\r\n"))
        await writer.drain()

    async def main():
        client = _core.HttpClient()
        async with Upstream(once) as up:
            for _ in range(2):
                assert (await client.request(up.ep, b"{}")).status == 200
            assert up.connections == 2
        await client.close()
    loop.run(main())


@pytest.mark.parametrize("step", [0, 1, 2, 5, 11])
def test_response_framings_in_fragments(loop, step):
    cases = [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"4\r\nWiki\r\n5;name=v\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-T: 1\r\n\r\n",
         200, b"Wikipedia in\r\n\r\nchunks.", True),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", 200, b"hello", True),
        (b"HTTP/1.1 204 No Content\r\nX-A:  spaced  \r\n\r\n", 204, b"", True),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", 304, b"", True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", 201, b"ok", True),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", 200, b"until the end", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 200, b"x", False),
        (b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 500, b"", False),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 200, b"", True),
    ]
    for raw, status, body, reusable in cases:
        chunks = [raw] if step == 0 else [raw[i:i + step] for i in range(0, len(raw), step)]
        resp, reuse = _core._scan_response(chunks)
        assert (resp.status, resp.body, reuse) == (status, body, reusable), raw
    resp, _ = _core._scan_response([cases[2][0]])
    assert resp.headers == [(b"X-A", b"spaced")]


@pytest.mark.parametrize("raw", [b"HTTP/2 200 OK\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"])
def test_malformed_responses_fail(raw):
    with pytest.raises(UpstreamError, match="net/http: HTTP/1.x transport connection broken"):
        _core._scan_response([raw])


def test_chunked_response_byte_at_a_time_over_socket(loop):
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")

    async def trickle(up, reader, writer, index):
        while True:
            await up.read_request(reader)
            for i in range(len(raw)):
                writer.write(raw[i:i + 1])
                await writer.drain()

    async def main():
        client = _core.HttpClient()
        async with Upstream(trickle) as up:
            for _ in range(2):
                assert (await client.request(up.ep, b"{}")).body == b"abcde"
            assert up.connections == 1
        await client.close()
    loop.run(main())


def test_stale_pooled_connection_is_retried_once(loop):
    async def flaky(up, reader, writer, index):
        await up.read_request(reader)
        writer.write(answer(b"first"))
        if index == 0:
            # take the next request, then close without a byte: a stale keep-alive socket
            await up.read_request(reader)
            return
        while True:
            await up.read_request(reader)
            writer.write(answer(b"again"))

    async def main():
        client = _core.HttpClient()
        async with Upstream(flaky) as up:
            assert (await client.request(up.ep, b"1")).body == b"first"
            assert (await client.request(up.ep, b"2")).body == b"first"
            assert up.connections == 2 and [b for _, b in up.requests] == [b"1", b"2", b"2"]
        await client.close()
    loop.run(main())


def test_idle_connection_closed_by_peer_is_dropped(loop):
    async def one_then_close(up, reader, writer, index):
        await up.read_request(reader)
        writer.write(answer())
        await writer.drain()

    async def main():
        client = _core.HttpClient()
        async with Upstream(one_then_close) as up:
            await client.request(up.ep, b"1")
            await up.closed.get()
            assert (await client.request(up.ep, b"2")).status == 200
            assert up.connections == 2
        await client.close()
    loop.run(main())


def test_idle_timeout_closes_pooled_connection(loop):
    async def main():
        client = _core.HttpClient(idle_timeout=0.1)
        async with Upstream(keep_answering) as up:
            await client.request(up.ep, b"1")
            assert await asyncio.wait_for(up.closed.get(), 5) == 0
            await client.request(up.ep, b"2")
            assert up.connections == 2
        await client.close()
    loop.run(main())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_refused_error_text(loop):
    async def main():
        client = _core.HttpClient()
        port = free_port()
        url = f"http://127.0.0.1:{port}/v1/models/m:predict"
        with pytest.raises(UpstreamError) as info:
            await client.request(_core.Endpoint(url), b"{}")
        assert str(info.value) == f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'
        assert info.value.url == url
        await client.close()
    loop.run(main())


def test_timeout_error_texts(loop):
    async def stall(up, reader, writer, index):
        await up.read_request(reader)
        if index == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await asyncio.get_running_loop().create_future()

    async def main():
        client = _core.HttpClient()
        async with Upstream(stall) as up:
            with pytest.raises(UpstreamError) as info:
                await client.request(up.ep, b"{}", timeout=0.2)
            assert str(info.value) == (f'Post "{up.url}": context deadline exceeded '
                                       "(Client.Timeout exceeded while awaiting headers)")
            with pytest.raises(UpstreamError) as info:
                await client.request(up.ep, b"{}", timeout=0.2)
            assert str(info.value) == ("context deadline exceeded "
                                       "(Client.Timeout or context cancellation while reading body)")
            assert up.connections == 2
        await client.close()
    loop.run(main())


def test_eof_and_reset_error_texts(loop):
    async def hang_up(up, reader, writer, index):
        await up.read_request(reader)
        if index == 1:
            # SO_LINGER 0: close with a reset instead of a FIN
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        if index == 2:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
            await writer.drain()

    async def main():
        client = _core.HttpClient()
        async with Upstream(hang_up) as up:
            with pytest.raises(UpstreamError) as info:
                await client.request(up.ep, b"{}")
            assert str(info.value) == f'Post "{up.url}": EOF'
            with pytest.raises(UpstreamError) as info:
                await client.request(up.ep, b"{}")
            assert re.fullmatch(
                rf'Post "{re.escape(up.url)}": read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:{up.port}: '
                r"read: connection reset by peer", str(info.value)), str(info.value)
            with pytest.raises(UpstreamError) as info:
                await client.request(up.ep, b"{}")
            assert str(info.value) == "unexpected EOF"
            assert up.connections == 3      # fresh connections are never retried
        await client.close()
    loop.run(main())


def test_endpoint_parsing():
    ep = _core.Endpoint("http://model.ns.svc.cluster.local/v1/models/m:predict?x=1")
    assert (ep.host, ep.port, ep.tls, ep.target) == \
        ("model.ns.svc.cluster.local", 80, False, b"/v1/models/m:predict?x=1")
    ep = _core.Endpoint("https://[::1]:8443")
    assert (ep.host, ep.port, ep.tls, ep.target, ep.url) == ("::1", 8443, True, b"/", "https://[::1]:8443")
    for bad in ["ftp://x/", "http:///path", "http://h:99999/", "http://u:p@h/", "not a url", "http://h/a b"]:
        with pytest.raises(ValueError):
            _core.Endpoint(bad)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_https(loop, tls_files):
    cert, key = tls_files

    async def main():
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        server = _core.HttpServer(lambda req: _core.HttpResponse(200, b"secure:" + req.body))
        srv = await asyncio.get_running_loop().create_server(
            server.protocol_factory, "127.0.0.1", 0, ssl=server_ctx)
        url = f"https://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1/models/m:predict"
        ep = _core.Endpoint(url)
        client = _core.HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
        for _ in range(2):
            assert (await client.request(ep, b"x")).body == b"secure:x"
        untrusting = _core.HttpClient()
        # in debug mode (python -X dev) asyncio reports the test server's failed
        # handshake to the loop's exception handler; it is expected here
        asyncio.get_running_loop().set_debug(False)
        with pytest.raises(UpstreamError) as info:
            await untrusting.request(ep, b"x")
        assert str(info.value) == (f'Post "{url}": tls: failed to verify certificate: '
                                   "x509: certificate signed by unknown authority")
        await client.close()
        await untrusting.close()
        srv.close()
        await server.drain(2.0)
    loop.run(main())


def test_cancelled_call_still_drains_and_reuses(loop):
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def gated(up, reader, writer, index):
            while True:
                head, body = await up.read_request(reader)
                if body == b"slow":
                    await gate
                writer.write(answer(body))

        client = _core.HttpClient()
        async with Upstream(gated) as up:
            fut = client.request(up.ep, b"slow")
            for _ in range(100):
                if up.requests:
                    break
                await asyncio.sleep(0)
            fut.cancel()
            gate.set_result(None)
            assert (await client.request(up.ep, b"next")).body == b"next"
            assert up.connections in (1, 2)
            assert (await client.request(up.ep, b"again")).body == b"again"
        await client.close()
    loop.run(main())


def test_cancelled_step_call_closes_its_connection(loop):
    # HTTP/1.1 answers come in order: a connection whose answer nobody reads can
    # carry nothing else, so cancelling the call closes it and frees its slot
    async def main():
        async def silent_for_slow(up, reader, writer, index):
            while True:
                head, body = await up.read_request(reader)
                if body != b"slow":
                    writer.write(answer(body))

        client = _core.HttpClient(max_connections_per_host=1)
        async with Upstream(silent_for_slow) as up:
            backend = _core.HttpBackend(up.ep, client)
            call = backend.request(b"slow", None)
            for _ in range(1000):
                if up.requests:
                    break
                await asyncio.sleep(0.001)
            assert call.cancel() and call.cancelled()
            assert await asyncio.wait_for(up.closed.get(), 5) == 0
            resp = await asyncio.wait_for(backend.request(b"next", None), 5)
            assert (resp.status, resp.body) == (200, b"next")
            assert up.connections == 2
        await client.close()
    loop.run(main())


def test_cancelled_queued_step_calls_are_never_sent(loop):
    # many cancelled calls make the pool rebuild its queue: the live ones keep their order
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def gated(up, reader, writer, index):
            while True:
                head, body = await up.read_request(reader)
                if body == b"first":
                    await gate
                writer.write(answer(body))

        client = _core.HttpClient(max_connections_per_host=1)
        async with Upstream(gated) as up:
            backend = _core.HttpBackend(up.ep, client)
            first = backend.request(b"first", None)
            queued = [backend.request(b"q%d" % i, None) for i in range(50)]
            kept = backend.request(b"kept", None)
            late = [backend.request(b"r%d" % i, None) for i in range(20)]
            last = backend.request(b"last", None)
            for call in queued + late:
                call.cancel()
            gate.set_result(None)
            assert (await first).body == b"first"
            assert (await asyncio.wait_for(kept, 5)).body == b"kept"
            assert (await asyncio.wait_for(last, 5)).body == b"last"
            assert [body for _, body in up.requests] == [b"first", b"kept", b"last"]
            assert up.connections == 1
        await client.close()
    loop.run(main())


def test_timeout_while_waiting_for_a_pool_slot(loop):
    async def main():
        gate = asyncio.get_running_loop().create_future()

        async def gated(up, reader, writer, index):
            while True:
                head, body = await up.read_request(reader)
                await gate
                writer.write(answer(body))

        client = _core.HttpClient(max_connections_per_host=1)
        async with Upstream(gated) as up:
            first = client.request(up.ep, b"1")
            with pytest.raises(UpstreamError, match=r"awaiting headers\)$"):
                await client.request(up.ep, b"2", timeout=0.1)
            gate.set_result(None)
            assert (await first).body == b"1"
            assert (await client.request(up.ep, b"3")).body == b"3"
            assert up.connections == 1
        await client.close()
    loop.run(main())


def test_close_fails_waiting_calls(loop):
    async def main():
        async def silent(up, reader, writer, index):
            await up.read_request(reader)
            await asyncio.get_running_loop().create_future()

        client = _core.HttpClient(max_connections_per_host=1)
        async with Upstream(silent) as up:
            running = client.request(up.ep, b"1")
            waiting = client.request(up.ep, b"2")
            for _ in range(100):
                if up.requests:
                    break
                await asyncio.sleep(0)
            await client.close()
            for fut in (running, waiting):
                with pytest.raises(UpstreamError):
                    await fut
            with pytest.raises(RuntimeError):
                client.request(up.ep, b"3")
    loop.run(main())


def test_absurd_content_length_fails_the_call():
    with pytest.raises(UpstreamError, match="MemoryError|OverflowError"):
        _core._scan_response([b"HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n", b"x"])


def test_timeout_after_fast_calls_on_the_same_connection(loop):
    async def stall_on_request(up, reader, writer, index):
        while True:
            head, body = await up.read_request(reader)
            if body == b"stall":
                await asyncio.get_running_loop().create_future()
            writer.write(answer(body))

    async def main():
        client = _core.HttpClient()
        async with Upstream(stall_on_request) as up:
            for i in range(3):     # the connection's timer stays armed for the first deadline
                assert (await client.request(up.ep, b"%d" % i, timeout=0.3)).body == b"%d" % i
            with pytest.raises(UpstreamError, match=r"awaiting headers\)$"):
                await client.request(up.ep, b"stall", timeout=0.3)
            assert (await client.request(up.ep, b"after", timeout=0.3)).body == b"after"
            assert up.connections == 2
        await client.close()
    loop.run(main())


def test_client_response_constructor():
    r = _core.ClientResponse(503, b"busy", [(b"Retry-After", b"1")])
    assert (r.status, r.body, r.headers) == (503, b"busy", [(b"Retry-After", b"1")])
    assert _core.ClientResponse(200).headers == []


def test_many_concurrent_calls_through_engine_server(loop):
    async def main():
        lp = asyncio.get_running_loop()

        async def handler(req):
            await asyncio.sleep(0)
            return _core.HttpResponse(200, req.body + b"!")

        server = _core.HttpServer(handler)
        srv = await lp.create_server(server.protocol_factory, "127.0.0.1", 0)
        ep = _core.Endpoint(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/")
        client = _core.HttpClient(max_connections_per_host=16)
        bodies = [b"%d" % i * (i % 7 + 1) for i in range(400)]
        results = await asyncio.gather(*(client.request(ep, b) for b in bodies))
        assert [r.body for r in results] == [b + b"!" for b in bodies]
        assert server.open_connections <= 16
        await client.close()
        srv.close()
        await server.drain(2.0)
        assert server.open_connections == 0
    loop.run(main())


def test_forward_glue_used_by_the_bench(loop):
    async def main():
        lp = asyncio.get_running_loop()
        client = _core.HttpClient()
        async with Upstream(keep_answering) as up:
            router = _core.HttpServer(_core._ForwardOne(client, up.ep))
            srv = await lp.create_server(router.protocol_factory, "127.0.0.1", 0)
            via = _core.Endpoint(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/")
            resp = await client.request(via, b"hi")
            assert (resp.status, resp.body) == (200, b"[hi]")
            down = _core.HttpServer(_core._ForwardOne(client, _core.Endpoint(f"http://127.0.0.1:{free_port()}/")))
            srv2 = await lp.create_server(down.protocol_factory, "127.0.0.1", 0)
            resp = await client.request(_core.Endpoint(f"http://127.0.0.1:{srv2.sockets[0].getsockname()[1]}/"), b"x")
            assert resp.status == 500 and b"connection refused" in resp.body
            for s, server in ((srv, router), (srv2, down)):
                s.close()
                await server.drain(2.0)
        await client.close()
    loop.run(main())


def test_close_while_dialling_fails_the_call(loop):
    async def main():
        client = _core.HttpClient()
        async with Upstream(keep_answering) as up:
            fut = client.request(up.ep, b"1")       # dialling, not yet connected
            await client.close()
            with pytest.raises(UpstreamError, match="client closed"):
                await fut
            assert not up.requests
    loop.run(main())


# ---- large Content-Length responses: read into one bytes object ----

def body_readers():
    return sum(type(o) is _core._BufferedBodyReader for o in gc.get_objects())


@pytest.mark.parametrize("size", [1 << 20, 5 << 20])
def test_large_responses_in_fragments_then_reuse(loop, size):
    big = random.Random(size).randbytes(size)
    rng = random.Random(11)

    async def fragmented(up, reader, writer, index):
        while True:
            head, body = await up.read_request(reader)
            out = answer(big) if body == b"big" else answer(b"[" + body + b"]")
            cut = len(out) - len(big) if body == b"big" else len(out)
            # byte by byte across the head/body boundary, then random fragments
            for i in range(max(cut - 4, 0), min(cut + 4, len(out))):
                if i == max(cut - 4, 0):
                    writer.write(out[:i])
                writer.write(out[i:i + 1])
                await writer.drain()
            i = min(cut + 4, len(out))
            while i < len(out):
                step = rng.randint(1, 200_000)
                writer.write(out[i:i + step])
                i += step
                await writer.drain()

    async def main():
        client = _core.HttpClient()
        gc.collect()
        before = body_readers()
        async with Upstream(fragmented) as up:
            for body in (b"big", b"1", b"big", b"2"):
                resp = await client.request(up.ep, body)
                expected = big if body == b"big" else b"[" + body + b"]"
                assert resp.status == 200 and type(resp.body) is bytes and resp.body == expected
            assert up.connections == 1
            assert body_readers() == before + 1
        await client.close()
    loop.run(main())


def test_large_response_through_the_sink_reuses_the_connection(loop):
    big = random.Random(1).randbytes(3 << 20)

    async def main():
        client = _core.HttpClient()
        async with Upstream(keep_answering) as up:
            forward = _core._ForwardOne(client, up.ep)
            for body in (big, b"{}", big[:100_000]):
                resp = await forward(_core.HttpRequest(body=body))
                assert (resp.status, resp.body) == (200, b"[" + body + b"]")
            assert up.connections == 1
        await client.close()
    loop.run(main())


@pytest.mark.parametrize("how", ["eof", "timeout"])
def test_large_response_cut_short(loop, how):
    async def short(up, reader, writer, index):
        await up.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 400_000)
        await writer.drain()
        if how == "timeout":
            await reader.read()

    async def main():
        client = _core.HttpClient()
        async with Upstream(short) as up:
            with pytest.raises(UpstreamError) as info:
                await client.request(up.ep, b"{}", timeout=0.5 if how == "timeout" else None)
            if how == "eof":
                assert str(info.value) == "unexpected EOF"
            else:
                assert str(info.value) == ("context deadline exceeded "
                                           "(Client.Timeout or context cancellation while reading body)")
            # the failed connection is not reused
            with pytest.raises(UpstreamError):
                await client.request(up.ep, b"{}", timeout=0.5 if how == "timeout" else None)
            assert up.connections == 2
        await client.close()
    loop.run(main())


def test_large_response_scanned_in_fragments_without_a_transport():
    big = random.Random(2).randbytes(1 << 20)
    raw = answer(big)
    for step in (1 << 20, 65_536, 4099):
        resp, reusable = _core._scan_response([raw[i:i + step] for i in range(0, len(raw), step)])
        assert resp.body == big and reusable
