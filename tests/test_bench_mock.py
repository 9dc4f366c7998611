"""The mock model server: answers, status, echo, pipelining, keep-alive, CLI."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest

from bench.mock_server import MockConfig, _MockProtocol, _protocol_class, _Shared, start_mock
from bench_client import _Collector, exchange, request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_fixed_answer_keeps_the_connection_alive(loop):
    async def main():
        async with await start_mock(answer=b'{"predictions":[7]}') as mock:
            assert mock.url == f"http://127.0.0.1:{mock.port}"
            assert mock.predict_url("m") == f"{mock.url}/v1/models/m:predict"
            answers, closed = await exchange(mock.port, request(b'{"instances":[1]}') * 2, 2)
            assert not closed
            assert [a.status for a in answers] == [200, 200]
            assert all(a.body == b'{"predictions":[7]}' for a in answers)
            assert answers[0].headers["content-type"] == "application/json"
            assert answers[0].keep_alive
            assert (mock.requests, mock.connections) == (2, 1)
    loop.run(main())


def test_configured_status(loop):
    async def main():
        async with await start_mock(status=503, answer=b'{"error":"down"}') as mock:
            (answer,), _ = await exchange(mock.port, request(b"{}"), 1)
            assert (answer.status, answer.body) == (503, b'{"error":"down"}')
    loop.run(main())


def test_fail_every_answers_503_to_every_nth_request(loop):
    async def main():
        async with await start_mock(fail_every=2, answer=b'{"predictions":[7]}') as mock:
            answers, closed = await exchange(mock.port, request(b"{}") * 6, 6)
            assert not closed
            assert [a.status for a in answers] == [200, 503] * 3
            assert answers[1].body == b'{"error":"busy"}' and answers[1].keep_alive
    loop.run(main())


@pytest.mark.parametrize("size", [0, 100, 1 << 20])
def test_echo_body_content_length(loop, size):
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)

    async def main():
        async with await start_mock(echo_body=True) as mock:
            (answer,), _ = await exchange(mock.port, request(body), 1)
            assert answer.status == 200
            assert answer.body == body
    loop.run(main())


def test_echo_body_chunked(loop):
    body = b'{"instances":[[1,2,3],[4,5,6]]}' * 50

    async def main():
        async with await start_mock(echo_body=True) as mock:
            (answer,), _ = await exchange(mock.port, request(body, chunked=True, chunk=7), 1)
            assert answer.body == body
            assert answer.headers["content-length"] == str(len(body))
    loop.run(main())


@pytest.mark.parametrize("delay_ms", [0, 5])
def test_pipelined_requests_answered_in_order(loop, delay_ms):
    bodies = [b'{"n":%d}' % i for i in range(5)]

    async def main():
        async with await start_mock(echo_body=True, delay_ms=delay_ms) as mock:
            data = b"".join(request(b, chunked=i % 2 == 1) for i, b in enumerate(bodies))
            answers, _ = await exchange(mock.port, data, len(bodies))
            assert [a.body for a in answers] == bodies
    loop.run(main())


def test_echo_headers_as_json(loop):
    async def main():
        async with await start_mock(echo_headers="json") as mock:
            raw = request(b"{}", path="/v1/models/x:predict", headers={"X-Trace": "a", "Authorization": "b"})
            (answer,), _ = await exchange(mock.port, raw, 1)
            echoed = json.loads(answer.body)
            assert echoed["method"] == "POST"
            assert echoed["path"] == "/v1/models/x:predict"
            assert echoed["headers"]["x-trace"] == "a"
            assert echoed["headers"]["authorization"] == "b"
    loop.run(main())


def test_echo_headers_as_response_headers(loop):
    async def main():
        async with await start_mock(echo_headers="headers", answer=b'{"ok":1}') as mock:
            (answer,), _ = await exchange(mock.port, request(b"{}", headers={"X-Request-Id": "42"}), 1)
            assert answer.headers["x-echo-x-request-id"] == "42"
            assert answer.body == b'{"ok":1}'
    loop.run(main())


def test_no_keep_alive_closes_after_one_answer(loop):
    async def main():
        async with await start_mock(keep_alive=False) as mock:
            answers, closed = await exchange(mock.port, request(b"{}") * 2, 1, expect_close=True)
            assert closed
            assert len(answers) == 1
            assert answers[0].headers["connection"] == "close"
    loop.run(main())


def test_client_connection_close_is_honoured(loop):
    async def main():
        async with await start_mock() as mock:
            answers, closed = await exchange(mock.port, request(b"{}", headers={"Connection": "close"}), 1,
                                             expect_close=True)
            assert closed and answers[0].status == 200
    loop.run(main())


def test_malformed_http_gets_400_and_close(loop):
    async def main():
        async with await start_mock() as mock:
            answers, closed = await exchange(mock.port, b"NOT HTTP AT ALL\r\n\r\n", 1, expect_close=True)
            assert closed
            assert answers[0].status == 400
    loop.run(main())


class _FakeTransport:
    def __init__(self):
        self.writes: list = []
        self.closed = False

    def write(self, data):
        self.writes.append([data])

    def writelines(self, parts):
        self.writes.append(list(parts))

    def close(self):
        self.closed = True


def test_one_byte_at_a_time(loop):
    bodies = [b'{"a":1}', b'{"b":[1,2,3]}', b""]
    data = b"".join(request(b, chunked=i == 1) for i, b in enumerate(bodies))

    async def main():
        config = MockConfig(echo_body=True)
        protocol = _protocol_class(config)(_Shared(config))
        transport = _FakeTransport()
        protocol.connection_made(transport)
        for i in range(len(data)):
            protocol.data_received(data[i:i + 1])
        collector = _Collector()
        for parts in transport.writes:
            collector.parser.feed_data(b"".join(parts))
        assert [a.body for a in collector.answers] == bodies
        assert not transport.closed
    loop.run(main())


def test_echo_writes_the_received_chunks_without_joining(loop):
    body = b"x" * 3000

    async def main():
        config = MockConfig(echo_body=True)
        protocol = _protocol_class(config)(_Shared(config))
        transport = _FakeTransport()
        protocol.connection_made(transport)
        raw = request(body)
        head_len = len(raw) - len(body)
        pieces = [raw[:head_len + 1000], raw[head_len + 1000:head_len + 2000], raw[head_len + 2000:]]
        for piece in pieces:
            protocol.data_received(piece)
        (parts,) = transport.writes
        assert len(parts) == 4  # head + the three body chunks as the parser delivered them
        assert b"".join(parts[1:]) == body
    loop.run(main())


@pytest.mark.parametrize("fields", [dict(echo_headers="xml"), dict(echo_body=True, echo_headers="json"),
                                    dict(status=42), dict(delay_ms=-1), dict(fail_every=1),
                                    dict(fail_every=-2)])
def test_invalid_config_is_refused(fields):
    with pytest.raises(ValueError):
        MockConfig(**fields)


def test_cli_refuses_answers_not_matching_ports():
    r = subprocess.run([sys.executable, "-m", "bench.mock_server", "--port", "0", "--port", "0", "--port", "0",
                        "--answer", "{}", "--answer", "[]"], cwd=REPO, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "once per --port" in r.stderr


def test_cli_serves_several_ports_and_stops_on_sigterm():
    proc = subprocess.Popen([sys.executable, "-m", "bench.mock_server", "--port", "0", "--port", "0",
                             "--answer", '{"predictions":[3]}', "--answer", '{"predictions":[4]}',
                             "--status", "201"],
                            cwd=REPO, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("listening http://127.0.0.1:")
        assert lines[1].startswith("listening http://127.0.0.1:")
        assert lines[2] == "ready"
        ports = [int(line.rsplit(":", 1)[1]) for line in lines[:2]]
        assert ports[0] != ports[1]

        async def ask(port):
            return await exchange(port, request(b"{}"), 1)
        for port, value in zip(ports, (3, 4)):
            (answer,), _ = asyncio.run(ask(port))
            assert (answer.status, answer.body) == (201, b'{"predictions":[%d]}' % value)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()


def test_fixed_answers_skip_the_parser_callbacks_they_do_not_need():
    assert _protocol_class(MockConfig()) is _MockProtocol
    lean = _MockProtocol
    assert not any(hasattr(lean, name) for name in ("on_header", "on_url", "on_body"))
    both = _protocol_class(MockConfig(echo_body=True, echo_headers="headers"))
    assert all(hasattr(both, name) for name in ("on_header", "on_url", "on_body"))


@pytest.mark.parametrize("mode", ["json", "headers"])
def test_echo_headers_with_a_body(loop, mode):
    async def main():
        fields = dict(echo_headers=mode, echo_body=mode == "headers")
        async with await start_mock(**fields) as mock:
            (answer,), _ = await exchange(mock.port, request(b'{"x":1}', headers={"X-A": "1"}), 1)
            if mode == "json":
                assert json.loads(answer.body)["headers"]["x-a"] == "1"
            else:
                assert answer.headers["x-echo-x-a"] == "1" and answer.body == b'{"x":1}'
    loop.run(main())
