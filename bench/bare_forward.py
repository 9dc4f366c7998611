"""The floor a router is compared with: a bare uvloop + httptools HTTP forward.

Each POST body goes to the upstream URLs in turn over pooled keep-alive connections;
with `--chain response` each hop's response body is the next hop's request body,
with `--chain request` every hop gets the original body. The last answer (status and
body) is returned. No graph semantics, no validation, no header propagation: only
the unavoidable work of a forward. Any other method (`GET /readyz`) answers 200.

    python -m bench.bare_forward --port 8080 --chain response http://127.0.0.1:9001/v1/models/a:predict ...
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import signal
import sys
import urllib.parse

import httptools
import numpy

# Heads and small bodies are read into this one buffer (asyncio.BufferedProtocol):
# the parser copies what it keeps before the next read, so all connections share it.
_READ_BUFFER = memoryview(bytearray(256 * 1024))
# With --direct-bodies, a Content-Length body at least this large is read from the
# socket straight into its own buffer and forwarded as is: no copy in user space.
_DIRECT_MIN = 64 * 1024
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
_BAD_GATEWAY = b'{"error":"upstream failed"}'


def _uninitialized(size: int):
    # bytearray(size) zero-fills: a megabyte of memset per body that the socket read
    # overwrites anyway (measured: ~300 us of user CPU per request in seq3-1mb).
    return numpy.empty(size, numpy.uint8)


def _head(status: int, length: int) -> bytes:
    # wrk and KServe clients read the code, not the phrase: one constant phrase keeps this cheap.
    return b"HTTP/1.1 %d -\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (status, length)


class _Reader(asyncio.BufferedProtocol):
    """Reading side shared by server and client connections: httptools parses every
    read out of `_READ_BUFFER`, body pieces are kept as the parser hands them out."""

    __slots__ = ("transport", "parser", "body", "length", "direct", "filled")

    def new_parser(self):
        raise NotImplementedError

    def message_done(self, parser, body: list) -> None:
        raise NotImplementedError

    def on_message_begin(self):
        self.body = []

    def on_body(self, body: bytes):
        self.body.append(body)

    def on_message_complete(self):
        self.message_done(self.parser, self.body)

    def get_buffer(self, sizehint):
        return _READ_BUFFER

    def buffer_updated(self, nbytes):
        try:
            self.parser.feed_data(_READ_BUFFER[:nbytes])
        except httptools.HttpParserError:
            self.transport.close()


class _DirectReader(_Reader):
    """A reader that takes large bodies off the parser: once the head of a message with
    a large Content-Length is parsed, the rest of its body is read directly into
    `direct` (get_buffer hands out its unfilled tail), and the parser, left mid-body,
    is replaced by a fresh one. This saves a copy of every large body; the header
    callbacks it needs cost a few microseconds per small message in Python, hence
    the choice (`--direct-bodies`)."""

    __slots__ = ()

    def on_message_begin(self):
        self.body, self.length, self.direct = [], -1, None

    def on_header(self, name: bytes, value: bytes):
        if len(name) == 14 and name.lower() == b"content-length":
            self.length = int(value)

    def on_headers_complete(self):
        if self.length >= _DIRECT_MIN:
            self.direct, self.filled = memoryview(_uninitialized(self.length)), 0

    def on_body(self, body: bytes):
        if self.direct is None:
            self.body.append(body)
        else:  # the part of the body that came in with the head
            self.direct[self.filled:self.filled + len(body)] = body
            self.filled += len(body)

    def on_message_complete(self):
        direct, self.direct = self.direct, None
        self.message_done(self.parser, self.body if direct is None else [direct])

    def get_buffer(self, sizehint):
        return _READ_BUFFER if self.direct is None else self.direct[self.filled:]

    def buffer_updated(self, nbytes):
        if self.direct is None:
            _Reader.buffer_updated(self, nbytes)
            return
        self.filled += nbytes
        if self.filled == self.length:
            parser, direct, self.direct = self.parser, self.direct, None
            self.parser = self.new_parser()
            self.message_done(parser, [direct])


class _Upstream:
    """One upstream URL and its pool of idle keep-alive connections."""

    def __init__(self, url: str, client_class):
        self.client_class = client_class
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"only http:// upstreams are supported: {url!r}")
        self.host, self.port = u.hostname, u.port or 80
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        self.prefix = (f"POST {path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
                       "Content-Type: application/json\r\nContent-Length: ").encode()
        self.idle: list[_Client] = []

    def send(self, parts: list, length: int, callback) -> None:
        """Send one request; `callback(status, body_parts)` gets the answer (status 0: failure)."""
        head = b"%s%d\r\n\r\n" % (self.prefix, length)
        if self.idle:
            self.idle.pop().send(head, parts, callback)
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.create_connection(lambda: self.client_class(self), self.host, self.port))

        def connected(t):
            if t.cancelled() or t.exception() is not None:
                callback(0, [])
            else:
                t.result()[1].send(head, parts, callback)
        task.add_done_callback(connected)


class _Client(_Reader):
    __slots__ = ("upstream", "callback")

    def __init__(self, upstream: _Upstream):
        self.upstream = upstream
        self.transport = None
        self.parser = self.new_parser()
        self.direct = None
        self.callback = None

    def new_parser(self):
        return httptools.HttpResponseParser(self)

    def send(self, head: bytes, parts: list, callback) -> None:
        self.callback = callback
        self.transport.writelines([head, *parts])

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if self in self.upstream.idle:
            self.upstream.idle.remove(self)
        callback, self.callback = self.callback, None
        if callback is not None:
            callback(0, [])

    def message_done(self, parser, body: list) -> None:
        callback, self.callback = self.callback, None
        if parser.should_keep_alive():
            self.upstream.idle.append(self)
        else:
            self.transport.close()
        callback(parser.get_status_code(), body)


class _DirectClient(_Client, _DirectReader):
    __slots__ = ()


class _Exchange:
    """One client request walking the upstream list; `slot` keeps answers in request order."""

    __slots__ = ("server", "original", "length", "hop", "slot")

    def __init__(self, server, original, length, slot):
        self.server, self.original, self.length, self.slot, self.hop = server, original, length, slot, 0

    def answered(self, status: int, parts: list) -> None:
        upstreams = self.server.upstreams
        self.hop += 1
        if status == 0:
            self.server.finish(self.slot, [_head(502, len(_BAD_GATEWAY)), _BAD_GATEWAY])
        elif self.hop == len(upstreams):
            self.server.finish(self.slot, [_head(status, sum(map(len, parts))), *parts])
        elif self.server.chain_response:
            upstreams[self.hop].send(parts, sum(map(len, parts)), self.answered)
        else:
            upstreams[self.hop].send(self.original, self.length, self.answered)


class _Server(_Reader):
    __slots__ = ("upstreams", "chain_response", "transports", "pending", "closed")

    def __init__(self, upstreams: list, chain_response: bool, transports: set):
        self.upstreams, self.chain_response, self.transports = upstreams, chain_response, transports
        self.parser = self.new_parser()
        self.transport = None
        self.direct = None
        self.pending: collections.deque = collections.deque()
        self.closed = False

    def new_parser(self):
        return httptools.HttpRequestParser(self)

    def connection_made(self, transport):
        self.transport = transport
        self.transports.add(transport)

    def connection_lost(self, exc):
        self.closed = True
        self.transports.discard(self.transport)

    def message_done(self, parser, body: list) -> None:
        slot = [None]
        self.pending.append(slot)
        if parser.get_method() == b"POST":
            length = sum(map(len, body))
            self.upstreams[0].send(body, length, _Exchange(self, body, length, slot).answered)
        else:
            self.finish(slot, [_OK])

    def finish(self, slot: list, parts: list) -> None:
        slot[0] = parts
        pending = self.pending
        while pending and pending[0][0] is not None:
            parts = pending.popleft()[0]
            if not self.closed:
                self.transport.writelines(parts)


class _DirectServer(_Server, _DirectReader):
    __slots__ = ()


class Forward:
    """A running forward on the current loop: `.url`, `.port`, `await .close()`."""

    def __init__(self, server: asyncio.AbstractServer, upstreams: list, transports: set, host: str):
        self._server, self._upstreams, self._transports = server, upstreams, transports
        self.port = server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{self.port}"

    async def close(self) -> None:
        """Stop listening; close client connections and pooled upstream connections."""
        self._server.close()
        for transport in list(self._transports):
            transport.close()
        for upstream in self._upstreams:
            for client in list(upstream.idle):
                client.transport.close()
        await self._server.wait_closed()


async def start_forward(upstream_urls: list[str], *, chain: str = "response", host: str = "127.0.0.1",
                        port: int = 0, direct_bodies: bool = False) -> Forward:
    """Serve the forward on the running loop; `direct_bodies`: see `_DirectReader`."""
    if chain not in ("response", "request"):
        raise ValueError("chain must be 'response' or 'request'")
    if not upstream_urls:
        raise ValueError("at least one upstream URL is needed")
    upstreams = [_Upstream(u, _DirectClient if direct_bodies else _Client) for u in upstream_urls]
    server_class = _DirectServer if direct_bodies else _Server
    transports: set = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: server_class(upstreams, chain == "response", transports), host, port,
                                      backlog=1024)
    return Forward(server, upstreams, transports, host)


async def _serve(args) -> None:
    forward = await start_forward(args.upstream, chain=args.chain, host=args.host, port=args.port,
                                  direct_bodies=args.direct_bodies)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    print(f"listening {forward.url}", flush=True)
    try:
        await stop
    finally:
        await forward.close()


def main(argv=None) -> int:
    """CLI entry point."""
    p = argparse.ArgumentParser(prog="python -m bench.bare_forward", description=__doc__.split("\n\n")[0])
    p.add_argument("upstream", nargs="+", help="upstream URLs, called in order")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--chain", choices=["response", "request"], default="response")
    p.add_argument("--direct-bodies", action="store_true",
                   help="read large Content-Length bodies straight into their own buffer (cheaper for large "
                        "bodies, dearer for small ones)")
    args = p.parse_args(argv)
    import uvloop
    uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
