"""The bare forward: chaining, pooling, order, failures."""
from __future__ import annotations

import socket

import pytest

from bench.bare_forward import start_forward
from bench.mock_server import start_mock
from bench_client import exchange, request


def test_chain_response_feeds_each_answer_to_the_next_hop(loop):
    async def main():
        first = await start_mock(answer=b'{"predictions":[1,2]}')
        second = await start_mock(echo_body=True)
        fwd = await start_forward([first.predict_url("a"), second.predict_url("b")], chain="response")
        try:
            (answer,), _ = await exchange(fwd.port, request(b'{"instances":[0]}'), 1)
            assert (answer.status, answer.body) == (200, b'{"predictions":[1,2]}')
            assert (first.requests, second.requests) == (1, 1)
        finally:
            await fwd.close()
            await first.close()
            await second.close()
    loop.run(main())


def test_chain_request_resends_the_original(loop):
    async def main():
        first = await start_mock(answer=b'{"predictions":[1,2]}')
        second = await start_mock(echo_body=True)
        fwd = await start_forward([first.url + "/", second.url + "/"], chain="request")
        try:
            (answer,), _ = await exchange(fwd.port, request(b'{"instances":[0]}'), 1)
            assert answer.body == b'{"instances":[0]}'
        finally:
            await fwd.close()
            await first.close()
            await second.close()
    loop.run(main())


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("chunked", [False, True])
def test_one_megabyte_through_three_echo_hops(loop, chunked, direct):
    body = b'{"instances":[' + b",".join([b"[0.125,0.25,0.5,1.0]"] * 50000) + b"]}"

    async def main():
        mocks = [await start_mock(echo_body=True) for _ in range(3)]
        fwd = await start_forward([m.predict_url(f"m{i}") for i, m in enumerate(mocks)], direct_bodies=direct)
        try:
            (answer,), _ = await exchange(fwd.port, request(body, chunked=chunked, chunk=1 << 16), 1)
            assert answer.body == body
        finally:
            await fwd.close()
            for m in mocks:
                await m.close()
    loop.run(main())


def test_upstream_connections_are_pooled_and_status_passed_through(loop):
    async def main():
        mock = await start_mock(status=500, answer=b'{"error":"boom"}')
        fwd = await start_forward([mock.predict_url("m")])
        try:
            for _ in range(5):
                (answer,), _ = await exchange(fwd.port, request(b"{}"), 1)
                assert (answer.status, answer.body) == (500, b'{"error":"boom"}')
            assert (mock.requests, mock.connections) == (5, 1)
        finally:
            await fwd.close()
            await mock.close()
    loop.run(main())


def test_pipelined_requests_answered_in_order(loop):
    bodies = [b'{"n":%d}' % i for i in range(6)]

    async def main():
        mock = await start_mock(echo_body=True)
        fwd = await start_forward([mock.predict_url("m")])
        try:
            answers, _ = await exchange(fwd.port, b"".join(map(request, bodies)), len(bodies))
            assert [a.body for a in answers] == bodies
        finally:
            await fwd.close()
            await mock.close()
    loop.run(main())


@pytest.mark.parametrize("direct", [False, True])
def test_large_and_small_bodies_pipelined(loop, direct):
    # large Content-Length bodies bypass the parser; the message after one must still parse
    bodies = [b"a" * (1 << 20), b'{"small":1}', b"b" * (100 * 1024), b"c" * (64 * 1024), b"{}"]

    async def main():
        mock = await start_mock(echo_body=True)
        fwd = await start_forward([mock.predict_url("m"), mock.predict_url("m")], direct_bodies=direct)
        try:
            answers, _ = await exchange(fwd.port, b"".join(map(request, bodies)), len(bodies))
            assert [a.body for a in answers] == bodies
        finally:
            await fwd.close()
            await mock.close()
    loop.run(main())


def test_refused_upstream_is_502_and_readyz_is_200(loop):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # bound, never listening: connections are refused

        async def main():
            fwd = await start_forward([f"http://127.0.0.1:{dead}/v1/models/m:predict"])
            try:
                answers, _ = await exchange(fwd.port, request(b"{}") + request(method="GET", path="/readyz"), 2)
                assert [a.status for a in answers] == [502, 200]
            finally:
                await fwd.close()
        loop.run(main())


@pytest.mark.parametrize("args", [([], "response"), (["http://127.0.0.1:1/"], "both"), (["https://x:1/"], "request")])
def test_bad_arguments_are_refused(loop, args):
    urls, chain = args

    async def main():
        with pytest.raises(ValueError):
            await start_forward(urls, chain=chain)
    loop.run(main())


class _RecordingUpstream:
    def __init__(self):
        self.sent: list = []

    def send(self, parts, length, callback):
        assert length == sum(map(len, parts))
        self.sent.append((b"".join(parts), callback))


class _FakeTransport:
    def __init__(self):
        self.data = b""

    def writelines(self, parts):
        self.data += b"".join(parts)

    def close(self):
        raise AssertionError("the connection must stay open")


@pytest.mark.parametrize("direct", [False, True])
def test_reads_of_any_size_one_byte_at_a_time(direct):
    from bench.bare_forward import _DirectServer, _Server
    big = bytes(range(256)) * 300  # 76,800 bytes: over the direct-read threshold
    data = request(big) + request(b'{"small":1}', chunked=True) + request(big[:70000])
    upstream = _RecordingUpstream()
    server = (_DirectServer if direct else _Server)([upstream], True, set())
    transport = _FakeTransport()
    server.connection_made(transport)
    for i in range(len(data)):
        buf = server.get_buffer(-1)
        buf[0:1] = data[i:i + 1]
        server.buffer_updated(1)
    assert [body for body, _ in upstream.sent] == [big, b'{"small":1}', big[:70000]]
    for n, (_, callback) in enumerate(upstream.sent):
        callback(200, [b'{"n":%d}' % n])
    assert transport.data.count(b"HTTP/1.1 200") == 3
    positions = [transport.data.index(b'{"n":%d}' % n) for n in range(3)]
    assert positions == sorted(positions)
