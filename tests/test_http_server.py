"""engine._core.HttpServer over loopback with raw sockets, on asyncio and uvloop."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import random
import socket
import struct

import orjson
import pytest

from engine import _core

JSON = [(b"Content-Type", b"application/json")]


@contextlib.asynccontextmanager
async def serving(handler, **limits):
    server = _core.HttpServer(handler, **limits)
    srv = await asyncio.get_running_loop().create_server(server.protocol_factory, "127.0.0.1", 0)
    try:
        yield server, srv.sockets[0].getsockname()[1]
    finally:
        srv.close()
        await server.drain(2.0)
        await srv.wait_closed()


@contextlib.asynccontextmanager
async def connect(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_response(reader):
    """(status, {lower-name: value}, body) of one Content-Length framed response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, headers, body


def echo(req):
    return _core.HttpResponse(200, req.body, [(b"X-Path", req.path), (b"X-Method", req.method)])


def post(path=b"/v1/models/m:predict", body=b'{"a":1}', extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % len(body)
            + extra + b"\r\n" + body)


def test_keep_alive_reuses_one_connection(loop):
    seen = []

    def handler(req):
        seen.append(req)
        return echo(req)

    async def main():
        async with serving(handler) as (server, port), connect(port) as (reader, writer):
            for i in range(3):
                writer.write(post(body=b"n%d" % i, extra=b"X-Trace: a\r\nx-trace: b\r\n"))
                status, headers, body = await read_response(reader)
                assert (status, body) == (200, b"n%d" % i)
                assert headers[b"x-path"] == b"/v1/models/m:predict"
                assert b"connection" not in headers and headers[b"date"].endswith(b"GMT")
            assert server.open_connections == 1 and server.active_requests == 0
        req = seen[0]
        assert req.method == b"POST" and req.keep_alive
        assert req.headers == [(b"Host", b"x"), (b"Content-Length", b"2"),
                               (b"X-Trace", b"a"), (b"x-trace", b"b")]
        assert req.transport_info[0] == "127.0.0.1"
    loop.run(main())


def test_any_method_and_path_reach_the_handler(loop):
    async def main():
        async with serving(echo) as (server, port), connect(port) as (reader, writer):
            writer.write(b"GET /readyz?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert (status, headers[b"x-method"], headers[b"x-path"], body) == \
                (200, b"GET", b"/readyz?x=1", b"")
    loop.run(main())


def test_http10_closes_unless_keep_alive(loop):
    async def main():
        async with serving(echo) as (server, port):
            async with connect(port) as (reader, writer):
                writer.write(b"POST /a HTTP/1.0\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\nx")
                status, headers, body = await read_response(reader)
                assert headers[b"connection"] == b"keep-alive"
                writer.write(b"POST /b HTTP/1.0\r\nContent-Length: 1\r\n\r\ny")
                status, headers, body = await read_response(reader)
                assert (status, body, headers[b"connection"]) == (200, b"y", b"close")
                assert await reader.read() == b""
    loop.run(main())


def test_pipelined_requests_answered_in_order(loop):
    async def main():
        lp = asyncio.get_running_loop()
        futures = []

        def handler(req):
            if req.path == b"/sync":
                return echo(req)
            fut = lp.create_future()
            futures.append((fut, req))
            return fut

        async with serving(handler) as (server, port), connect(port) as (reader, writer):
            writer.write(post(b"/a", b"1") + post(b"/b", b"2") + post(b"/sync", b"3") + post(b"/c", b"4"))
            for _ in range(100):
                if len(futures) == 3:
                    break
                await asyncio.sleep(0)      # yields only; the parse happens on the loop
            assert [r.path for _, r in futures] == [b"/a", b"/b", b"/c"]
            assert server.active_requests == 4
            for fut, req in reversed(futures):       # finish in reverse order
                fut.set_result(echo(req))
            bodies = [(await read_response(reader))[2] for _ in range(4)]
            assert bodies == [b"1", b"2", b"3", b"4"]
            assert server.active_requests == 0
    loop.run(main())


def test_coroutine_handler(loop):
    async def handler(req):
        await asyncio.sleep(0)
        return _core.HttpResponse(201, b"[" + req.body + b"]", JSON)

    async def main():
        async with serving(handler) as (server, port), connect(port) as (reader, writer):
            writer.write(post(body=b"7"))
            assert (await read_response(reader))[::2] == (201, b"[7]")
            writer.write(post(body=b"8"))
            status, headers, body = await read_response(reader)
            assert (status, body, headers[b"content-type"]) == (201, b"[8]", b"application/json")
    loop.run(main())


@pytest.mark.parametrize("step", [1, 3, 7, 64])
def test_fragmented_and_byte_at_a_time_input(loop, step):
    chunked = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nTrailer: t\r\n\r\n")
    plain = post(b"/p", b'{"k":"v"}')

    async def main():
        async with serving(echo) as (server, port), connect(port) as (reader, writer):
            data = chunked + plain
            for i in range(0, len(data), step):
                writer.write(data[i:i + step])
                await writer.drain()
            assert (await read_response(reader))[::2] == (200, b"hello world!")
            assert (await read_response(reader))[::2] == (200, b'{"k":"v"}')
    loop.run(main())


def test_expect_100_continue(loop):
    async def main():
        async with serving(echo) as (server, port), connect(port) as (reader, writer):
            writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"abc")
            assert (await read_response(reader))[::2] == (200, b"abc")
    loop.run(main())


async def expect_error_and_close(reader, status):
    got, headers, body = await read_response(reader)
    assert got == status
    assert headers[b"connection"] == b"close"
    assert await reader.read() == b""
    return orjson.loads(body)["error"]


@pytest.mark.parametrize("case", ["length", "chunked"])
def test_body_limit_413(loop, case):
    async def main():
        async with serving(echo, max_body_size=100) as (server, port), connect(port) as (reader, writer):
            if case == "length":
                writer.write(b"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n")
            else:
                writer.write(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                for _ in range(3):
                    writer.write(b"40\r\n" + b"x" * 64 + b"\r\n")
            assert await expect_error_and_close(reader, 413) == "Request Entity Too Large"
    loop.run(main())


@pytest.mark.parametrize("case", ["size", "count", "one-huge-header-byte-at-a-time", "url"])
def test_header_limits_431(loop, case):
    async def main():
        async with serving(echo, max_header_size=1024, max_headers=10) as (server, port), \
                connect(port) as (reader, writer):
            if case == "size":
                writer.write(b"GET / HTTP/1.1\r\nX-Big: " + b"v" * 2000 + b"\r\n\r\n")
            elif case == "count":
                writer.write(b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(11)) + b"\r\n")
            elif case == "url":
                writer.write(b"GET /" + b"u" * 2000 + b" HTTP/1.1\r\n\r\n")
            else:
                # a header llhttp keeps accumulating: never completes, still bounded
                writer.write(b"GET / HTTP/1.1\r\nX-Big: ")
                for _ in range(3000):
                    if writer.transport.is_closing() or reader.at_eof():
                        break
                    writer.write(b"v")
                    await writer.drain()
                    if len(reader._buffer):
                        break
            assert await expect_error_and_close(reader, 431) == "Request Header Fields Too Large"
    loop.run(main())


@pytest.mark.parametrize("timeouts", [{}, {"read_timeout": 0, "write_timeout": 0, "idle_timeout": 0}])
def test_malformed_request_400(loop, timeouts):
    async def main():
        async with serving(echo, **timeouts) as (server, port), connect(port) as (reader, writer):
            writer.write(post(body=b"ok") + b"NOT HTTP AT ALL\r\n\r\n")
            assert (await read_response(reader))[::2] == (200, b"ok")
            reason = await expect_error_and_close(reader, 400)
            assert reason
    loop.run(main())


def test_handler_errors_answer_500_and_keep_serving(loop, caplog):
    async def failing(req):
        raise RuntimeError("async boom")

    def handler(req):
        if req.path == b"/sync":
            raise RuntimeError("sync boom")
        if req.path == b"/async":
            return failing(req)
        if req.path == b"/wrong":
            return 42
        return echo(req)

    async def main():
        async with serving(handler) as (server, port), connect(port) as (reader, writer):
            for path in (b"/sync", b"/async", b"/wrong"):
                writer.write(post(path))
                status, headers, body = await read_response(reader)
                assert (status, orjson.loads(body)) == (500, {"error": "Internal Server Error"})
            writer.write(post(b"/ok", b"fine"))
            assert (await read_response(reader))[::2] == (200, b"fine")

    with caplog.at_level(logging.ERROR, logger="engine.http.server"):
        loop.run(main())
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3
    assert "sync boom" in str(errors[0].exc_info[1]) and "async boom" in str(errors[1].exc_info[1])


def test_large_response_body_and_statuses(loop):
    big = bytes(range(256)) * 4096            # 1 MiB, written without concatenation

    def handler(req):
        if req.path == b"/big":
            return _core.HttpResponse(200, memoryview(big))
        return _core.HttpResponse(204)

    async def main():
        async with serving(handler) as (server, port), connect(port) as (reader, writer):
            writer.write(b"GET /big HTTP/1.1\r\n\r\nGET /none HTTP/1.1\r\n\r\n")
            status, headers, body = await read_response(reader)
            assert status == 200 and body == big
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 204 No Content\r\n") and b"Content-Length" not in head
    loop.run(main())


def test_read_timeout_closes_a_slow_request(loop):
    async def main():
        async with serving(echo, read_timeout=0.2, idle_timeout=30) as (server, port), \
                connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
            assert await asyncio.wait_for(reader.read(), 5) == b""
    loop.run(main())


def test_idle_timeout_closes_keep_alive_connection(loop):
    async def main():
        async with serving(echo, read_timeout=30, idle_timeout=0.2) as (server, port), \
                connect(port) as (reader, writer):
            writer.write(post(body=b"1"))
            assert (await read_response(reader))[::2] == (200, b"1")
            assert await asyncio.wait_for(reader.read(), 5) == b""
    loop.run(main())


def test_write_timeout_aborts_when_peer_does_not_read(loop):
    big = b"x" * (64 * 1024 * 1024)

    async def main():
        async with serving(lambda req: _core.HttpResponse(200, big), write_timeout=0.2) as (server, port), \
                connect(port) as (reader, writer):
            writer.write(b"GET / HTTP/1.1\r\n\r\n")
            # drain() returns once the stalled connection is aborted by the write timeout
            await asyncio.wait_for(server.drain(None), 10)
            received = 0
            with contextlib.suppress(ConnectionError):
                for _ in range(100000):
                    chunk = await reader.read(1 << 20)
                    if not chunk:
                        break
                    received += len(chunk)
            assert received < len(big)
    loop.run(main())


def test_answer_later_than_write_timeout_is_never_written(loop):
    """Go's WriteTimeout runs from the end of the request head: a handler slower than
    it gets its connection closed, no answer written (as KServe's router behaves)."""
    async def slow(req):
        await asyncio.sleep(0.4 if req.path == b"/slow" else 0.0)
        return _core.HttpResponse(200, b"late" if req.path == b"/slow" else b"soon")

    async def main():
        async with serving(slow, write_timeout=0.2) as (server, port):
            async with connect(port) as (reader, writer):
                writer.write(post(path=b"/fast"))
                assert (await read_response(reader))[::2] == (200, b"soon")
                writer.write(post(path=b"/slow"))
                assert await asyncio.wait_for(reader.read(), 5) == b""

    loop.run(main())


def test_drain_finishes_in_flight_then_closes(loop):
    async def main():
        lp = asyncio.get_running_loop()
        release = lp.create_future()
        started = lp.create_future()

        async def handler(req):
            if req.path == b"/slow":
                started.set_result(None)
                await release
            return echo(req)

        async with serving(handler) as (server, port), connect(port) as (r1, w1), \
                connect(port) as (r2, w2):
            w2.write(post(b"/fast", b"f"))
            assert (await read_response(r2))[::2] == (200, b"f")       # now idle
            w1.write(post(b"/slow", b"s"))
            await started
            drain = lp.create_task(server.drain(5.0))
            assert await asyncio.wait_for(r2.read(), 5) == b""          # idle: closed now
            assert not drain.done() and server.active_requests == 1
            async with connect(port) as (r3, w3):                      # accepted while draining
                assert await asyncio.wait_for(r3.read(), 5) == b""
            release.set_result(None)
            status, headers, body = await read_response(r1)
            assert (status, body, headers[b"connection"]) == (200, b"s", b"close")
            assert await r1.read() == b""
            await asyncio.wait_for(drain, 5)
            assert server.open_connections == 0
    loop.run(main())


def test_drain_grace_force_closes(loop):
    async def main():
        lp = asyncio.get_running_loop()
        never = lp.create_future()
        async with serving(lambda req: never) as (server, port), connect(port) as (reader, writer):
            writer.write(post())
            for _ in range(100):
                if server.active_requests:
                    break
                await asyncio.sleep(0)
            await asyncio.wait_for(server.drain(0.1), 5)
            assert server.open_connections == 0 and server.active_requests == 0
            with contextlib.suppress(ConnectionError):
                assert await reader.read() == b""
            assert never.cancelled()
    loop.run(main())


def test_response_validation():
    with pytest.raises(ValueError):
        _core.HttpResponse(42)
    r = _core.HttpResponse(200, b"x", [(b"A", b"b")])
    assert (r.status, r.body, r.headers) == (200, b"x", [(b"A", b"b")])


def test_connection_close_request_ends_the_connection(loop):
    seen = []

    def handler(req):
        seen.append(req.path)
        return echo(req)

    async def main():
        async with serving(handler) as (server, port), connect(port) as (reader, writer):
            writer.write(post(b"/last", b"1", b"Connection: close\r\n") + post(b"/ignored", b"2"))
            status, headers, body = await read_response(reader)
            assert (body, headers[b"connection"]) == (b"1", b"close")
            assert await reader.read() == b""
        assert seen == [b"/last"]
    loop.run(main())


def test_expect_continue_with_too_large_body_gets_413_only(loop):
    async def main():
        async with serving(echo, max_body_size=10) as (server, port), connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
            assert await expect_error_and_close(reader, 413) == "Request Entity Too Large"
    loop.run(main())


@pytest.mark.parametrize("hang_up", ["close", "half-close", "reset"])
@pytest.mark.parametrize("extra", [b"", b"Connection: close\r\n"], ids=["keep-alive", "connection-close"])
def test_client_hang_up_cancels_pending_handler(loop, hang_up, extra):
    # the read side stays armed during a request, also when the connection closes after it
    async def main():
        lp = asyncio.get_running_loop()
        never = lp.create_future()
        async with serving(lambda req: never) as (server, port):
            async with connect(port) as (reader, writer):
                writer.write(post(extra=extra))
                for _ in range(100):
                    if server.active_requests:
                        break
                    await asyncio.sleep(0)
                assert server.active_requests == 1
                if hang_up == "half-close":
                    writer.write_eof()
                    assert await reader.read() == b""
                elif hang_up == "reset":
                    writer.get_extra_info("socket").setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            for _ in range(100):
                if never.cancelled():
                    break
                await asyncio.sleep(0)
            assert never.cancelled() and server.active_requests == 0
            assert server.open_connections == 0
    loop.run(main())


def test_hang_up_cancels_every_pipelined_handler(loop):
    async def main():
        lp = asyncio.get_running_loop()
        futures = []

        def handler(req):
            futures.append(lp.create_future())
            return futures[-1]
        async with serving(handler) as (server, port):
            async with connect(port) as (reader, writer):
                writer.write(post() * 2 + post(extra=b"Connection: close\r\n"))
                for _ in range(100):
                    if server.active_requests == 3:
                        break
                    await asyncio.sleep(0)
                assert server.active_requests == 3
            for _ in range(100):
                if all(f.cancelled() for f in futures):
                    break
                await asyncio.sleep(0)
            assert [f.cancelled() for f in futures] == [True] * 3
            assert server.active_requests == 0 and server.open_connections == 0
    loop.run(main())


def test_request_constructor_for_embedded_callers():
    req = _core.HttpRequest(b"GET", b"/readyz", [(b"A", b"1")], b"", False, ("h", 1))
    assert (req.method, req.path, req.headers, req.body, req.keep_alive, req.transport_info) == \
        (b"GET", b"/readyz", [(b"A", b"1")], b"", False, ("h", 1))
    assert _core.HttpRequest().headers == [] and _core.HttpRequest().method == b"POST"


# ---- large Content-Length bodies: read into one bytes object past the parser ----

def body_readers():
    """Live body readers: one exists per connection that has switched to one."""
    return sum(type(o) is _core._BufferedBodyReader for o in gc.get_objects())


def digest_handler(seen):
    def handler(req):
        seen.append(type(req.body))
        return _core.HttpResponse(200, hashlib.sha256(req.body).hexdigest().encode() + b" %d" % len(req.body))
    return handler


def digest(body):
    return hashlib.sha256(body).hexdigest().encode() + b" %d" % len(body)


def big_body(size, seed):
    return random.Random(seed).randbytes(size)


@pytest.mark.parametrize("size", [1 << 20, 5 << 20])
def test_large_body_in_random_fragments_then_pipelined_request(loop, size):
    body = big_body(size, size)
    rng = random.Random(7)

    async def main():
        seen = []
        gc.collect()
        before = body_readers()
        async with serving(digest_handler(seen)) as (server, port), connect(port) as (reader, writer):
            message = post(b"/big", body)
            cut = len(message) - len(body)
            # byte by byte across the head/body boundary, then random fragments; the
            # last fragment carries a pipelined small request
            for i in range(cut - 5, cut + 5):
                if i == cut - 5:
                    writer.write(message[:i])
                writer.write(message[i:i + 1])
                await writer.drain()
            i = cut + 5
            while i < len(message):
                step = rng.randint(1, 300_000)
                chunk = message[i:i + step]
                i += step
                writer.write(chunk + (post(b"/next", b"[1]") if i >= len(message) else b""))
                await writer.drain()
            assert (await read_response(reader))[::2] == (200, digest(body))
            assert (await read_response(reader))[::2] == (200, digest(b"[1]"))
            # the same connection takes another large body sent in one write
            writer.write(post(b"/again", body[::-1]))
            assert (await read_response(reader))[::2] == (200, digest(body[::-1]))
            assert body_readers() == before + 1     # one reader per connection, reused
        assert seen == [bytes, bytes, bytes]
    loop.run(main())


@pytest.mark.parametrize("first", ["large", "small", "chunked"])
def test_requests_pipelined_around_large_bodies_in_one_write(loop, first):
    large = big_body(300_000, 1)
    firsts = {"large": post(b"/a", large[:100_000]), "small": post(b"/a", b"x" * 20_000),
              "chunked": b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"}
    first_body = {"large": large[:100_000], "small": b"x" * 20_000, "chunked": b"abc"}[first]

    async def main():
        seen = []
        async with serving(digest_handler(seen)) as (server, port), connect(port) as (reader, writer):
            writer.write(firsts[first] + post(b"/b", large) + post(b"/c", b"{}") + post(b"/d", large[:70_000]))
            for expected in (first_body, large, b"{}", large[:70_000]):
                assert (await read_response(reader))[::2] == (200, digest(expected))
        assert seen == [bytes] * 4
    loop.run(main())


def test_large_body_at_the_size_limit_and_past_it(loop):
    body = big_body(1 << 20, 3)

    async def main():
        async with serving(digest_handler([]), max_body_size=len(body)) as (server, port):
            async with connect(port) as (reader, writer):
                writer.write(post(b"/ok", body))
                assert (await read_response(reader))[::2] == (200, digest(body))
            async with connect(port) as (reader, writer):
                writer.write(post(b"/big", body + b"!")[:-100_000])
                assert await expect_error_and_close(reader, 413) == "Request Entity Too Large"
    loop.run(main())


@pytest.mark.parametrize("hang_up", ["close", "half-close"])
def test_client_disconnects_mid_large_body(loop, hang_up):
    body = big_body(1 << 20, 4)

    async def main():
        seen = []
        async with serving(digest_handler(seen)) as (server, port):
            async with connect(port) as (reader, writer):
                writer.write(post(b"/big", body)[:600_000])
                await writer.drain()
                if hang_up == "half-close":
                    writer.write_eof()
                    assert await asyncio.wait_for(reader.read(), 5) == b""
            for _ in range(1000):
                if not server.open_connections:
                    break
                await asyncio.sleep(0)
            assert server.open_connections == 0 and server.active_requests == 0
        assert seen == []
    loop.run(main())


def test_read_timeout_during_a_large_body(loop):
    async def main():
        async with serving(echo, read_timeout=0.2, idle_timeout=30) as (server, port), \
                connect(port) as (reader, writer):
            writer.write(post(b"/big", bytes(1 << 20))[:300_000])
            assert await asyncio.wait_for(reader.read(), 5) == b""
    loop.run(main())


def test_expect_continue_before_a_large_body(loop):
    body = big_body(200_000, 5)

    async def main():
        async with serving(digest_handler([])) as (server, port), connect(port) as (reader, writer):
            writer.write(b"POST / HTTP/1.1\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body))
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(body)
            assert (await read_response(reader))[::2] == (200, digest(body))
    loop.run(main())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_mixed_pipeline_in_random_fragments(loop, seed):
    rng = random.Random(seed)
    bodies = [big_body(100_000, seed), b"{}", b"chunked!", big_body(70_000, seed + 1),
              b"y" * 20_000, big_body(300_000, seed + 2)]
    stream = b"".join(
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nchu\r\n5\r\nnked!\r\n0\r\n\r\n"
        if body == b"chunked!" else post(b"/%d" % i, body) for i, body in enumerate(bodies))

    async def main():
        seen = []
        async with serving(digest_handler(seen)) as (server, port), connect(port) as (reader, writer):
            i = 0
            while i < len(stream):
                step = rng.choice((1, 2, 7, rng.randint(1, 100_000)))
                writer.write(stream[i:i + step])
                i += step
                await writer.drain()
            for body in bodies:
                assert (await read_response(reader))[::2] == (200, digest(body))
        assert seen == [bytes] * len(bodies)
    loop.run(main())
