"""HTTP/2 conformance of the native gRPC front end over raw sockets (what h2spec
checks, as far as a gRPC server is concerned): the preface and SETTINGS, frames split
at every byte, CONTINUATION, padding, PRIORITY and unknown frames ignored, PING,
stream state errors, malformed frames and HPACK answered with the right GOAWAY or
RST_STREAM code, flow control both ways. Every read is bounded; after each case the
server still serves other connections."""
from __future__ import annotations

import asyncio
import struct

import hpack
import numpy as np
import pytest

from engine.oip import InferRequest, InferResponse, from_numpy, join
from h2kit import (ACK, CONTINUATION, COMPRESSION_ERROR, DATA, END_HEADERS, END_STREAM,
                   FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, GOAWAY, HEADERS, MODEL_INFER, NO_ERROR, PADDED,
                   PING, PREFACE, PRIORITY, PRIORITY_FLAG, PROTOCOL_ERROR, RST_STREAM, SETTINGS,
                   STREAM_CLOSED, WINDOW_UPDATE, Peer, client_start, frame, grpc_message, live_ok,
                   request_block, settings, unary_request)
from oipkit import V2HttpModel, numpy_model
from routerkit import running_router


@pytest.fixture
def port(loop):
    """A native gRPC front end over an echo model; checks afterwards that it still
    answers a new connection."""
    state = {}

    async def start():
        state["model"] = await V2HttpModel(numpy_model(lambda x: x)).start()
        cm = running_router({"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": state["model"].url()}]}}}, grpc=True, options={"grpc_impl": "native"})
        state["cm"] = cm
        state["router"] = await cm.__aenter__()

    async def stop():
        try:
            await state["cm"].__aexit__(None, None, None)
        finally:
            await state["model"].close()

    loop.run(start())
    port = state["router"].grpc_port
    try:
        yield port
        loop.run(blocking(still_serving, port))
    finally:
        loop.run(stop())


async def blocking(fn, *args):
    """Run a blocking socket check in a thread while the loop serves."""
    return await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, fn, *args), 60)


def still_serving(port):
    with Peer(port) as p:
        p.send(client_start() + unary_request())
        assert live_ok(p.answer())


def check(loop, fn, port):
    return loop.run(blocking(fn, port))


# ---- the connection preface, SETTINGS, PING ----------------------------------------------

def test_preface_settings_and_their_ack(loop, port):
    def go(port):
        with Peer(port) as p:
            p.send(client_start())
            first = p.read_frame()
            assert first[0] == SETTINGS and not first[1] & ACK
            values = dict(struct.unpack(">HI", first[3][i:i + 6]) for i in range(0, len(first[3]), 6))
            assert values[3] == 1000 and values[4] == 1 << 20      # streams, stream window
            frames = p.frames_until(lambda f: f[0] == SETTINGS and f[1] & ACK)
            assert any(f[0] == WINDOW_UPDATE and f[2] == 0 for f in frames)   # connection window
    check(loop, go, port)


def test_ping_is_answered_with_its_payload(loop, port):
    def go(port):
        with Peer(port) as p:
            p.send(client_start() + frame(PING, 0, 0, b"12345678"))
            f = p.frames_until(lambda f: f[0] == PING)[-1]
            assert f[1] & ACK and f[3] == b"12345678"
    check(loop, go, port)


def test_a_bad_preface_closes_the_connection(loop, port):
    def go(port):
        with Peer(port) as p:
            p.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert p.closed()
    check(loop, go, port)


# ---- framing -------------------------------------------------------------------------------

def test_a_request_fed_one_byte_at_a_time(loop, port):
    def go(port):
        with Peer(port) as p:
            for b in client_start() + unary_request():
                p.send(bytes([b]))
            assert live_ok(p.answer())
    check(loop, go, port)


def test_continuation_frames(loop, port):
    def go(port):
        block = request_block()
        with Peer(port) as p:
            p.send(client_start() + frame(HEADERS, 0, 1, block[:3]) + frame(CONTINUATION, 0, 1, block[3:7])
                   + frame(CONTINUATION, END_HEADERS, 1, block[7:])
                   + frame(DATA, END_STREAM, 1, grpc_message(b"")))
            assert live_ok(p.answer())
    check(loop, go, port)


def test_padding_on_headers_and_data(loop, port):
    def go(port):
        block = request_block()
        with Peer(port) as p:
            p.send(client_start() + frame(HEADERS, END_HEADERS | PADDED, 1, b"\x07" + block + b"\x00" * 7)
                   + frame(DATA, END_STREAM | PADDED, 1, b"\x03" + grpc_message(b"") + b"\x00" * 3))
            assert live_ok(p.answer())
    check(loop, go, port)


def test_priority_and_unknown_frames_are_ignored(loop, port):
    def go(port):
        block = request_block()
        with Peer(port) as p:
            p.send(client_start() + frame(PRIORITY, 0, 3, b"\x00\x00\x00\x00\x10")
                   + frame(0xEE, 0xFF, 0, b"whatever") + frame(0xEE, 0, 1, b"x")
                   + frame(HEADERS, END_HEADERS | PRIORITY_FLAG, 1, b"\x00\x00\x00\x00\x20" + block)
                   + frame(PRIORITY, 0, 1, b"\x00\x00\x00\x00\x10")
                   + frame(DATA, END_STREAM, 1, grpc_message(b"")))
            assert live_ok(p.answer())
    check(loop, go, port)


def test_a_message_split_over_many_data_frames(loop, port):
    def go(port):
        message = join(InferRequest("g", [from_numpy("x", np.arange(70_000, dtype=np.float32))],
                                    id="split").to_grpc())
        body = grpc_message(message)
        with Peer(port, timeout=20) as p:
            p.handshake()
            p.send(frame(HEADERS, END_HEADERS, 1, request_block(MODEL_INFER)))
            sizes = [1, 4, 2, 16384, 3]
            pos = 0
            for i in range(10_000):
                n = sizes[i % len(sizes)]
                last = pos + n >= len(body)
                p.send(frame(DATA, END_STREAM if last else 0, 1, body[pos:pos + n]))
                pos += n
                if last:
                    break
            answer = p.answer()
        heads = [a for a in answer if a[0] == HEADERS]
        assert heads[-1][2][b"grpc-status"] == b"0"
        data = b"".join(a[2] for a in answer if a[0] == DATA)
        resp = InferResponse.from_grpc(data[5:])
        assert resp.id == "split"
        np.testing.assert_array_equal(resp.as_numpy("output0"), np.arange(70_000, dtype=np.float32))
    check(loop, go, port)


# ---- errors: the right GOAWAY or RST_STREAM code -------------------------------------------

@pytest.mark.parametrize("name, frames, code", [
    ("DATA on stream 0", frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
    ("HEADERS on stream 0", frame(HEADERS, END_HEADERS, 0, request_block()), PROTOCOL_ERROR),
    ("an even stream id", frame(HEADERS, END_HEADERS, 2, request_block()), PROTOCOL_ERROR),
    ("SETTINGS not a multiple of 6", frame(SETTINGS, 0, 0, b"\x00\x03\x00\x00\x00"), FRAME_SIZE_ERROR),
    ("SETTINGS ACK with a payload", frame(SETTINGS, ACK, 0, b"\x00\x03\x00\x00\x00\x01"), FRAME_SIZE_ERROR),
    ("PING of 7 bytes", frame(PING, 0, 0, b"1234567"), FRAME_SIZE_ERROR),
    ("a frame over SETTINGS_MAX_FRAME_SIZE", frame(DATA, 0, 1, b"\x00" * 16385), FRAME_SIZE_ERROR),
    ("HPACK index 0", frame(HEADERS, END_HEADERS, 1, b"\x80"), COMPRESSION_ERROR),
    ("HPACK index past the tables", frame(HEADERS, END_HEADERS, 1, b"\xff\x7f"), COMPRESSION_ERROR),
    ("HPACK truncated literal", frame(HEADERS, END_HEADERS, 1, b"\x00\x05ab"), COMPRESSION_ERROR),
    ("connection window past 2^31-1", frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF)),
     FLOW_CONTROL_ERROR),
    ("SETTINGS_INITIAL_WINDOW_SIZE past 2^31-1", settings((4, 0x80000000)), FLOW_CONTROL_ERROR),
    ("WINDOW_UPDATE of 0 on the connection", frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x00\x00"), PROTOCOL_ERROR),
    ("CONTINUATION without HEADERS", frame(CONTINUATION, END_HEADERS, 1, request_block()), PROTOCOL_ERROR),
    ("a frame between HEADERS and CONTINUATION",
     frame(HEADERS, 0, 1, request_block()[:2]) + frame(PING, 0, 0, b"12345678"), PROTOCOL_ERROR),
    ("a SETTINGS_ENABLE_PUSH of 2", settings((2, 2)), PROTOCOL_ERROR),
    ("a client PUSH_PROMISE", frame(5, END_HEADERS, 1, b"\x00\x00\x00\x02" + request_block()), PROTOCOL_ERROR),
])
def test_connection_errors_get_goaway_with_their_code(loop, port, name, frames, code):
    def go(port):
        with Peer(port) as p:
            p.send(client_start() + frames)
            assert p.goaway() == code, name
            assert p.closed()
    check(loop, go, port)


def test_data_on_a_closed_stream_is_stream_closed(loop, port):
    def go(port):
        with Peer(port) as p:
            p.send(client_start() + unary_request())
            assert live_ok(p.answer())
            p.send(frame(DATA, 0, 1, b"late"))
            frames = p.frames_until(lambda f: f[0] in (GOAWAY, RST_STREAM))
            last = frames[-1]
            assert int.from_bytes(last[3][4:8] if last[0] == GOAWAY else last[3][:4], "big") == STREAM_CLOSED
    check(loop, go, port)


def test_headers_after_end_stream_reset_the_stream(loop, port):
    def go(port):
        enc = hpack.Encoder()
        with Peer(port) as p:
            # a stream the client has half-closed gets no second HEADERS without END_STREAM
            p.send(client_start() + frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block(encoder=enc))
                   + frame(DATA, 0, 1, b"x"))
            frames = p.frames_until(lambda f: f[0] in (GOAWAY, RST_STREAM) or (f[2] == 1 and f[1] & END_STREAM))
            codes = [int.from_bytes(f[3][:4] if f[0] == RST_STREAM else f[3][4:8], "big")
                     for f in frames if f[0] in (GOAWAY, RST_STREAM)]
            answered = [f for f in frames if f[0] == HEADERS]
            assert codes == [STREAM_CLOSED] or answered
    check(loop, go, port)


def test_a_malformed_request_resets_only_its_stream(loop, port):
    def go(port):
        bad = hpack.Encoder().encode([(b":method", b"POST"), (b":path", SERVER_LIVE_PATH)])   # no :scheme
        enc = hpack.Encoder()
        with Peer(port) as p:
            p.send(client_start() + frame(HEADERS, END_HEADERS | END_STREAM, 1, bad))
            first = p.answer(1)
            assert first[-1][0] == RST_STREAM and int.from_bytes(first[-1][2], "big") == PROTOCOL_ERROR
            p.send(unary_request(3, encoder=enc))
            assert live_ok(p.answer(3))
    check(loop, go, port)


SERVER_LIVE_PATH = b"/inference.GRPCInferenceService/ServerLive"


def test_client_reset_then_more_streams_on_the_connection(loop, port):
    def go(port):
        enc = hpack.Encoder()
        with Peer(port) as p:
            p.send(client_start() + frame(HEADERS, END_HEADERS, 1, request_block(encoder=enc))
                   + frame(RST_STREAM, 0, 1, struct.pack(">I", 8)) + unary_request(3, encoder=enc))
            assert live_ok(p.answer(3))
    check(loop, go, port)


# ---- flow control --------------------------------------------------------------------------

def test_answers_respect_the_clients_window(loop, port):
    # the client's stream window is 10 bytes: the answer's DATA stops there until a
    # WINDOW_UPDATE opens it
    def go(port):
        message = join(InferRequest("g", [from_numpy("x", np.arange(64, dtype=np.float32))]).to_grpc())
        enc = hpack.Encoder()
        with Peer(port) as p:
            p.ack_data = False
            p.send(PREFACE + settings((4, 10)) + frame(HEADERS, END_HEADERS, 1, request_block(MODEL_INFER, encoder=enc))
                   + frame(DATA, END_STREAM, 1, grpc_message(message)))
            got = 0
            frames = p.frames_until(lambda f: f[0] == DATA and f[2] == 1)
            got += len(frames[-1][3])
            assert got <= 10
            p.sock.settimeout(0.3)
            try:
                more = p.read_frame()
            except TimeoutError:
                more = None
            assert more is None or more[0] != DATA, more   # nothing past the window
            p.sock.settimeout(5)
            p.send(frame(WINDOW_UPDATE, 0, 1, struct.pack(">I", 1 << 20)))
            rest = p.answer(1)
            data = frames[-1][3] + b"".join(a[2] for a in rest if a[0] == DATA)
        resp = InferResponse.from_grpc(data[5:])
        np.testing.assert_array_equal(resp.as_numpy("output0"), np.arange(64, dtype=np.float32))
    check(loop, go, port)


def test_window_updates_follow_the_data_taken(loop, port):
    # a 3 MiB request through a 1 MiB stream window: the server opens it as it takes
    # the data, or the client could never finish
    def go(port):
        message = join(InferRequest("g", [from_numpy("x", np.zeros(3 << 18, dtype=np.float32))]).to_grpc())
        body = grpc_message(message)
        with Peer(port, timeout=20) as p:
            p.send(client_start() + frame(HEADERS, END_HEADERS, 1, request_block(MODEL_INFER)))
            window = 65535      # the initial window until the server's SETTINGS are acked
            stream_window = 65535
            pos = 0
            updates = 0
            while pos < len(body):
                n = min(16384, len(body) - pos, window, stream_window)
                if n <= 0:
                    kind, flags, sid, payload = p.read_frame()
                    if kind == SETTINGS and not flags & ACK:
                        values = dict(struct.unpack(">HI", payload[i:i + 6]) for i in range(0, len(payload), 6))
                        stream_window += values.get(4, 65535) - 65535
                        p.send(frame(SETTINGS, ACK, 0))
                    elif kind == WINDOW_UPDATE:
                        updates += 1
                        inc = int.from_bytes(payload, "big")
                        if sid == 0:
                            window += inc
                        else:
                            stream_window += inc
                    continue
                last = pos + n >= len(body)
                p.send(frame(DATA, END_STREAM if last else 0, 1, body[pos:pos + n]))
                pos += n
                window -= n
                stream_window -= n
            answer = p.answer(1)
        assert updates > 0
        assert [a for a in answer if a[0] == HEADERS][-1][2][b"grpc-status"] == b"0"
    check(loop, go, port)


def test_goaway_from_the_client_closes_after_its_streams(loop, port):
    def go(port):
        with Peer(port) as p:
            p.ack_data = False      # nothing may cross the server's close
            p.send(client_start() + unary_request() + frame(GOAWAY, 0, 0, struct.pack(">II", 0, NO_ERROR)))
            assert live_ok(p.answer())
            assert p.closed()
    check(loop, go, port)


def test_drain_sends_a_notice_then_goaway_with_the_last_stream(loop):
    # the front end alone, drained while a connection is idle: a GOAWAY notice
    # (last id 2^31-1) and a PING, then, once the PING is answered, the final GOAWAY
    # with the last stream it took; then it closes
    async def go():
        from engine.server.grpc_native import NativeGrpcFrontEnd
        async with running_router({"nodes": {"root": {"routerType": "Sequence", "steps": [
                {"serviceUrl": "http://127.0.0.1:1/v2/models/m/infer"}]}}}, grpc=True) as router:
            front = router.instance.grpc
            assert isinstance(front, NativeGrpcFrontEnd)
            loop_ = asyncio.get_running_loop()
            peer = await loop_.run_in_executor(None, Peer, front.port)
            try:
                def first():
                    peer.send(client_start() + unary_request())
                    assert live_ok(peer.answer())
                await blocking(first)
                stopping = asyncio.ensure_future(front.stop(10))

                def rest():
                    goaways = []
                    for _ in range(1000):
                        f = peer.read_frame()
                        if f is None:
                            return goaways
                        kind, flags, sid, payload = f
                        if kind == PING and not flags & ACK:
                            peer.send(frame(PING, ACK, 0, payload))
                        elif kind == GOAWAY:
                            goaways.append(struct.unpack(">II", payload[:8]))
                    raise AssertionError("the server never closed")
                goaways = await blocking(rest)
                await asyncio.wait_for(stopping, 10)
            finally:
                peer.close()
        return goaways

    goaways = loop.run(go())
    assert goaways == [(0x7FFFFFFF, NO_ERROR), (1, NO_ERROR)]


def test_a_silent_connection_is_closed_after_the_handshake_timeout(loop):
    from engine import _core

    async def go():
        server = _core.H2Server(_core.H2Handler(), handshake_timeout=0.05)
        listener = await asyncio.get_running_loop().create_server(server.protocol_factory, "127.0.0.1", 0)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", listener.sockets[0].getsockname()[1])
            try:
                # the server's SETTINGS, then EOF without the client having said a word
                data = await asyncio.wait_for(reader.read(), 5)
            finally:
                writer.close()
            await server.drain(1.0)
        finally:
            listener.close()
            await listener.wait_closed()
        return data

    data = loop.run(go())
    assert data[3] == SETTINGS
