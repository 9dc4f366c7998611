"""Property tests: the server protocol fed arbitrary bytes in arbitrary fragments never
crashes and answers only well-formed responses; the client scanner reassembles any split."""
from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import _core


class FakeTransport:
    """Just enough of an asyncio transport to drive the server protocol without sockets."""

    def __init__(self):
        self.out = bytearray()
        self.closed = False

    def write(self, data):
        self.out += data

    def writelines(self, parts):
        for part in parts:
            self.out += part

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    abort = close

    def can_write_eof(self):
        return True

    def write_eof(self):
        self.closed = True

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


def responses(out: bytes):
    """Split the server's output into (status, body) pairs; asserts the framing."""
    got = []
    while out:
        head, sep, rest = out.partition(b"\r\n\r\n")
        assert sep, out[:200]
        lines = head.split(b"\r\n")
        assert lines[0].startswith(b"HTTP/1.1 ")
        status = int(lines[0][9:12])
        if status == 100:
            out = rest
            continue
        length = [int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")]
        n = length[0] if length else 0
        got.append((status, rest[:n]))
        out = rest[n:]
    return got


REQUEST_PARTS = st.sampled_from([
    b"POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nContent-Length: 1\r\n\r\nq",
    b"\r\n", b"GARBAGE", b"\x00\xff", b"Content-Length: -5\r\n", b" HTTP/9.9\r\n",
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(REQUEST_PARTS, min_size=1, max_size=6), cut=st.integers(1, 9))
def test_server_survives_any_input(parts, cut):
    data = b"".join(parts)

    async def main():
        server = _core.HttpServer(lambda req: _core.HttpResponse(200, req.body), max_header_size=256)
        proto = server.protocol_factory()
        transport = FakeTransport()
        proto.connection_made(transport)
        for i in range(0, len(data), cut):
            if transport.closed:
                break
            proto.data_received(data[i:i + cut])
        answers = responses(bytes(transport.out))
        proto.connection_lost(None)
        assert server.open_connections == 0 and server.active_requests == 0
        for status, body in answers:
            assert status in (200, 400, 413, 431)
        return answers

    loop = asyncio.new_event_loop()
    errors = []
    loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert not errors


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), chunk_sizes=st.lists(st.integers(1, 40), min_size=1, max_size=8),
       cuts=st.lists(st.integers(1, 50), min_size=1, max_size=30))
def test_scanner_reassembles_any_split(body, chunk_sizes, cuts):
    framed = bytearray()
    rest = body
    i = 0
    while rest:
        size = chunk_sizes[i % len(chunk_sizes)]
        framed += b"%x\r\n" % len(rest[:size]) + rest[:size] + b"\r\n"
        rest = rest[size:]
        i += 1
    framed += b"0\r\n\r\n"
    for raw in (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bytes(framed),
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body):
        pieces, pos, k = [], 0, 0
        while pos < len(raw):
            step = cuts[k % len(cuts)]
            pieces.append(raw[pos:pos + step])
            pos += step
            k += 1
        resp, reusable = _core._scan_response(pieces)
        assert (resp.status, resp.body, reusable) == (200, body, True)
