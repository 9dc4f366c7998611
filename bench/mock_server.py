"""A cheap mock model server: raw asyncio.Protocol + httptools, no framework.

Each port has a `MockConfig`: a fixed JSON answer, a status, a delay, and optionally
the request body or headers echoed back. Any method and path are answered, so a
mock stands for `http://host:port/v1/models/<name>:predict` of any model.

From code (tests, harness)::

    mock = await start_mock(answer=b'{"predictions":[1]}')
    ... mock.url, mock.port, mock.predict_url("m") ...
    await mock.close()

From a shell (one process may serve several ports, alike but for their answers;
`--port 0` picks a free port, and one `listening http://127.0.0.1:PORT` line per port
is printed, then `ready`)::

    python -m bench.mock_server --port 0 --port 0 --answer '{"predictions":[1]}'
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import json
import signal
import sys
from http import HTTPStatus

import httptools

DEFAULT_ANSWER = b'{"predictions":[1]}'
ECHO_HEADER_MODES = (None, "json", "headers")


@dataclasses.dataclass(frozen=True)
class MockConfig:
    """How one port answers.

    `echo_body` answers the request body itself (with the request's content type);
    `echo_headers="json"` answers `{"method","path","headers":{lower-name: value}}`;
    `echo_headers="headers"` adds one `X-Echo-<name>: <value>` response header per
    request header to the normal answer. `keep_alive=False` closes after each answer.
    `fail_every=n` answers 503 to every n-th request of the port (the 2nd, 4th, ... for
    2), so a fault scenario fails exactly as often on every run.
    """

    answer: bytes = DEFAULT_ANSWER
    status: int = 200
    delay_ms: float = 0.0
    echo_body: bool = False
    echo_headers: str | None = None
    keep_alive: bool = True
    content_type: bytes = b"application/json"
    fail_every: int = 0

    def __post_init__(self):
        if self.echo_headers not in ECHO_HEADER_MODES:
            raise ValueError(f"echo_headers must be one of {ECHO_HEADER_MODES}, not {self.echo_headers!r}")
        if self.echo_body and self.echo_headers == "json":
            raise ValueError("echo_body and echo_headers='json' both want the answer body")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")
        if self.delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        if self.fail_every < 0 or self.fail_every == 1:
            raise ValueError("fail_every must be 0 (never) or at least 2")


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def _head(status: int, content_type: bytes, length: int, keep_alive: bool, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s%s\r\n" % (
        status, _reason(status), content_type, length, extra,
        b"" if keep_alive else b"Connection: close\r\n")


_BUSY_BODY = b'{"error":"busy"}'
_BAD_REQUEST_BODY = b'{"error":"malformed HTTP"}'
_BAD_REQUEST = _head(400, b"application/json", len(_BAD_REQUEST_BODY), False) + _BAD_REQUEST_BODY


class _Shared:
    """State shared by the connections of one port: config, counters, live transports."""

    __slots__ = ("config", "requests", "connections", "transports", "fixed_keep", "fixed_close", "delay_s",
                 "busy_keep", "busy_close")

    def __init__(self, config: MockConfig):
        self.config = config
        self.requests = 0
        self.connections = 0
        self.transports: set = set()
        self.delay_s = config.delay_ms / 1000.0
        # The common case (fixed answer) is one precomputed buffer and one write.
        self.fixed_keep = _head(config.status, config.content_type, len(config.answer), True) + config.answer
        self.fixed_close = _head(config.status, config.content_type, len(config.answer), False) + config.answer
        self.busy_keep = _head(503, b"application/json", len(_BUSY_BODY), True) + _BUSY_BODY
        self.busy_close = _head(503, b"application/json", len(_BUSY_BODY), False) + _BUSY_BODY


class _MockProtocol(asyncio.Protocol):
    __slots__ = ("_shared", "_cfg", "_parser", "_transport", "_url", "_headers", "_body",
                 "_pending", "_closing", "_loop")

    def __init__(self, shared: _Shared):
        self._shared = shared
        self._cfg = shared.config
        self._parser = httptools.HttpRequestParser(self)
        self._transport = None
        self._url = b""
        self._headers: list = []
        self._body: list = []
        # Responses in request order; a slot is [ready, parts, keep_alive].
        self._pending: collections.deque = collections.deque()
        self._closing = False
        self._loop = asyncio.get_running_loop()

    # asyncio.Protocol
    def connection_made(self, transport):
        self._transport = transport
        self._shared.connections += 1
        self._shared.transports.add(transport)

    def connection_lost(self, exc):
        self._shared.transports.discard(self._transport)
        self._closing = True

    def data_received(self, data):
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._closing = True
            self._pending.clear()
            self._transport.write(_BAD_REQUEST)
            self._transport.close()

    # httptools callbacks: only on_message_complete here; the echo mixins below add
    # the others, since every callback httptools finds costs a Python call per use.
    def on_message_complete(self):
        shared = self._shared
        shared.requests += 1
        keep = self._cfg.keep_alive and self._parser.should_keep_alive()
        every = self._cfg.fail_every
        if every and shared.requests % every == 0:
            parts = [shared.busy_keep if keep else shared.busy_close]
        else:
            parts = self._answer(keep)
        if shared.delay_s > 0.0:
            slot = [False, parts, keep]
            self._pending.append(slot)
            self._loop.call_later(shared.delay_s, self._ready, slot)
        elif self._pending:
            self._pending.append([True, parts, keep])
        else:
            self._send(parts, keep)

    # answers
    def _answer(self, keep: bool) -> list:
        cfg = self._cfg
        if cfg.echo_body:
            body = self._body
            length = sum(map(len, body))
            extra = self._echo_header_lines() if cfg.echo_headers == "headers" else b""
            # The request's chunks go out as they came in: no join, no copy.
            return [_head(cfg.status, cfg.content_type, length, keep, extra), *body]
        if cfg.echo_headers == "json":
            headers: dict[str, str] = {}
            for name, value in self._headers:
                key = name.decode("latin-1").lower()
                value = value.decode("latin-1")
                headers[key] = headers[key] + ", " + value if key in headers else value
            body = json.dumps({"method": self._parser.get_method().decode(), "path": self._url.decode("latin-1"),
                               "headers": headers}, separators=(",", ":")).encode()
            return [_head(cfg.status, cfg.content_type, len(body), keep), body]
        if cfg.echo_headers == "headers":
            return [_head(cfg.status, cfg.content_type, len(cfg.answer), keep, self._echo_header_lines()), cfg.answer]
        return [self._shared.fixed_keep if keep else self._shared.fixed_close]

    def _echo_header_lines(self) -> bytes:
        return b"".join(b"X-Echo-%s: %s\r\n" % (name, value) for name, value in self._headers)

    def _ready(self, slot):
        slot[0] = True
        pending = self._pending
        while pending and pending[0][0] and not self._closing:
            _, parts, keep = pending.popleft()
            self._send(parts, keep)

    def _send(self, parts: list, keep: bool):
        if self._closing:
            return
        if len(parts) == 1:
            self._transport.write(parts[0])
        else:
            self._transport.writelines(parts)
        if not keep:
            self._closing = True
            self._pending.clear()
            self._transport.close()


class _BodyEcho:
    __slots__ = ()

    def on_message_begin(self):
        self._body = []
        self._headers = []
        self._url = b""

    def on_body(self, body: bytes):
        self._body.append(body)


class _HeaderEcho:
    __slots__ = ()

    def on_message_begin(self):
        self._body = []
        self._headers = []
        self._url = b""

    def on_url(self, url: bytes):
        self._url += url

    def on_header(self, name: bytes, value: bytes):
        self._headers.append((name, value))


def _protocol_class(config: MockConfig) -> type:
    """The protocol with just the parser callbacks `config` needs."""
    mixins = ([_BodyEcho] if config.echo_body else []) + ([_HeaderEcho] if config.echo_headers else [])
    if not mixins:
        return _MockProtocol
    return type("_EchoMockProtocol", (*mixins, _MockProtocol), {"__slots__": ()})


class MockServer:
    """A running mock on the current loop: `.url`, `.port`, `.requests`, `await .close()`."""

    def __init__(self, server: asyncio.AbstractServer, shared: _Shared, host: str, port: int):
        self._server = server
        self._shared = shared
        self.host = host
        self.port = port
        self.url = f"http://{host}:{port}"
        self.config = shared.config

    @property
    def requests(self) -> int:
        """Requests answered (or scheduled, when delayed) so far."""
        return self._shared.requests

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._shared.connections

    def predict_url(self, name: str) -> str:
        """The KServe v1 predict URL of model `name` on this mock."""
        return f"{self.url}/v1/models/{name}:predict"

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        self._server.close()
        for transport in list(self._shared.transports):
            transport.close()
        await self._server.wait_closed()

    async def __aenter__(self) -> MockServer:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


async def start_mock(config: MockConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                     **fields) -> MockServer:
    """Start a mock on the running loop; `fields` are `MockConfig` fields."""
    if config is None:
        config = MockConfig(**fields)
    elif fields:
        config = dataclasses.replace(config, **fields)
    shared = _Shared(config)
    loop = asyncio.get_running_loop()
    protocol = _protocol_class(config)
    server = await loop.create_server(lambda: protocol(shared), host, port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    return MockServer(server, shared, host, bound)


def _parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m bench.mock_server", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, action="append", help="port to serve (repeatable; 0 picks one)")
    p.add_argument("--answer", action="append",
                   help="JSON answer body: once for every port, or once per --port in the same order")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--delay-ms", type=float, default=0.0)
    p.add_argument("--echo-body", action="store_true", help="answer the request body")
    p.add_argument("--echo-headers", choices=["json", "headers"])
    p.add_argument("--no-keep-alive", action="store_true", help="close after each answer")
    p.add_argument("--fail-every", type=int, action="append",
                   help="answer 503 to every N-th request (0: never): once for every port, or once per --port")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    args = p.parse_args(argv)
    args.port = args.port or [0]
    args.answer = args.answer or [DEFAULT_ANSWER.decode()]
    if len(args.answer) == 1:
        args.answer *= len(args.port)
    elif len(args.answer) != len(args.port):
        p.error("give --answer once, or once per --port")
    args.fail_every = args.fail_every or [0]
    if len(args.fail_every) == 1:
        args.fail_every *= len(args.port)
    elif len(args.fail_every) != len(args.port):
        p.error("give --fail-every once, or once per --port")
    return args


async def _serve(args) -> None:
    config = MockConfig(status=args.status, delay_ms=args.delay_ms, echo_body=args.echo_body,
                        echo_headers=args.echo_headers, keep_alive=not args.no_keep_alive)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    mocks = []
    try:
        for port, answer, every in zip(args.port, args.answer, args.fail_every):
            mock = await start_mock(config, host=args.host, port=port, answer=answer.encode(), fail_every=every)
            mocks.append(mock)
            print(f"listening {mock.url}", flush=True)
        print("ready", flush=True)
        await stop
    finally:
        for mock in mocks:
            await mock.close()


def main(argv=None) -> int:
    """CLI entry point."""
    args = _parse_args(argv)
    if args.loop == "uvloop":
        import uvloop
        uvloop.run(_serve(args))
    else:
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
