"""The native gRPC front end (ext/h2/ on libnghttp2, ext/front/grpc.pyx) against
grpcio clients: every RPC answers what the grpc.aio front end answers, Health Check
and Watch, deadlines, cancellation, large messages, many streams on one connection,
drain with GOAWAY, TLS with ALPN h2, and requests that are not gRPC."""
from __future__ import annotations

import asyncio
import datetime
import socket
import ssl

import grpc
import grpc.aio
import h2.config
import h2.connection
import h2.events
import numpy as np
import pytest

from engine.oip import InferRequest, InferResponse, from_numpy, join
from engine.protos import grpc_predict_v2_pb2 as pb
from engine.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from engine.server.grpc_native import NativeGrpcFrontEnd
from oipkit import GrpcClient, V2HttpModel, numpy_model
from routerkit import ModelServer, running_router
from test_cancel import HoldingModel, eventually

MiB = 1 << 20
INFER = "/inference.GRPCInferenceService/ModelInfer"


def seq(url):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}}


def fp32(n, tag=""):
    return InferRequest("graph", [from_numpy("x", np.arange(n, dtype=np.float32))], id=tag)


async def outcome(coro):
    """The answer, or (status code, details) of a failed call."""
    try:
        return await coro
    except grpc.aio.AioRpcError as e:
        return e.code(), e.details()


# ---- the same answers as the grpc.aio front end ---------------------------------------

def test_every_rpc_answers_as_the_grpcio_front_end(loop):
    async def answers(impl):
        model = await V2HttpModel(numpy_model(lambda x: x * 2)).start()
        try:
            async with running_router(seq(model.url()), grpc=True,
                                      options={"grpc_impl": impl}) as router:
                assert type(router.instance.grpc).__name__ == \
                    ("NativeGrpcFrontEnd" if impl == "native" else "GrpcFrontEnd")
                client = GrpcClient(router.grpc_port)
                try:
                    out = [await outcome(client.call(m, b"")) for m in
                           ("ServerLive", "ServerReady", "ServerMetadata")]
                    out.append(await outcome(client.call("ModelReady", pb.ModelReadyRequest(
                        name="x", version="3").SerializeToString())))
                    out.append(await outcome(client.call("ModelMetadata", pb.ModelMetadataRequest(
                        name="x", version="3").SerializeToString())))
                    out.append(await outcome(client.call("ModelReady", b"\x0a\x05ab")))   # truncated
                    out.append(await outcome(client.call("ModelInfer", b"\xff\xff")))     # not a message
                    out.append(await outcome(client.call("ModelInfer", join(fp32(5, "id-1").to_grpc()))))
                    out.append(await outcome(client.channel.unary_unary(
                        "/inference.GRPCInferenceService/Nope")(b"")))
                    # the generated stub, as every standard client calls it
                    stub = pb_grpc.GRPCInferenceServiceStub(client.channel)
                    resp = await stub.ModelInfer(pb.ModelInferRequest.FromString(
                        join(fp32(3).to_grpc())), timeout=10)
                    out.append(resp.SerializeToString(deterministic=True))
                finally:
                    await client.close()
        finally:
            await model.close()
        return out

    native, grpcio = loop.run(answers("native")), loop.run(answers("grpcio"))
    assert native == grpcio
    assert native[0] == b"\x08\x01" and native[5][0] == grpc.StatusCode.INVALID_ARGUMENT
    assert native[8] == (grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
    resp = InferResponse.from_grpc(native[7])
    assert resp.id == "id-1"
    np.testing.assert_array_equal(resp.as_numpy("output0"), np.arange(5, dtype=np.float32) * 2)


@pytest.mark.parametrize("impl", ["native", "grpcio"])
def test_model_failures_map_to_the_same_status(loop, impl):
    model = ModelServer(lambda request: (503, {"error": "busy"}))

    async def go():
        await model.start()
        try:
            async with running_router(seq(model.url), grpc=True,
                                      options={"grpc_impl": impl}) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    return await outcome(client.infer(fp32(2)))
                finally:
                    await client.close()
        finally:
            await model.close()

    code, details = loop.run(go())
    assert code == grpc.StatusCode.UNAVAILABLE and "busy" in details


def test_metadata_reaches_the_backend_and_status_messages_are_percent_encoded(loop):
    seen = []

    def answer(request):
        seen.append(dict((k.lower(), v) for k, v in request.headers))
        return 404, {"error": "nope: 100% \u00e9\nnext"}

    model = ModelServer(answer)

    async def go():
        await model.start()
        try:
            async with running_router(seq(model.url), grpc=True, propagate_headers="X-.*") as router:
                client = GrpcClient(router.grpc_port)
                try:
                    return await outcome(client.infer(fp32(2), metadata=(
                        ("x-user", "alice"), ("x-blob-bin", b"\x00\x01\xff"))))
                finally:
                    await client.close()
        finally:
            await model.close()

    code, details = loop.run(go())
    assert code == grpc.StatusCode.NOT_FOUND and details == "nope: 100% \u00e9\nnext"
    assert seen[0][b"x-user"] == b"alice"
    assert seen[0][b"x-blob-bin"] == b"AAH/"      # base64 as the wire carries it, unpadded


# ---- health --------------------------------------------------------------------------

HEALTH = "/grpc.health.v1.Health/"


def test_health_check_and_watch_follow_readiness(loop):
    async def go():
        model = await V2HttpModel(numpy_model(lambda x: x)).start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                check = client.channel.unary_unary(HEALTH + "Check")
                watch = client.channel.unary_stream(HEALTH + "Watch")
                try:
                    before = [await check(b"", timeout=5),
                              await check(b"\x0a\x1einference.GRPCInferenceService", timeout=5),
                              await outcome(check(b"\x0a\x03foo", timeout=5))]
                    stream = watch(b"", timeout=10)
                    unknown = watch(b"\x0a\x03foo", timeout=10)
                    first = await asyncio.wait_for(stream.read(), 5)
                    first_unknown = await asyncio.wait_for(unknown.read(), 5)
                    router.instance.app.start_draining()
                    router.instance._readiness_changed()
                    second = await asyncio.wait_for(stream.read(), 5)
                    after = await check(b"", timeout=5)
                    stream.cancel()
                    unknown.cancel()
                finally:
                    await client.close()
        finally:
            await model.close()
        return before, first, first_unknown, second, after

    before, first, first_unknown, second, after = loop.run(go())
    assert before[:2] == [b"\x08\x01", b"\x08\x01"]
    assert before[2][0] == grpc.StatusCode.NOT_FOUND
    assert (first, first_unknown, second, after) == (b"\x08\x01", b"\x08\x03", b"\x08\x02", b"\x08\x02")


def test_a_watch_ends_when_the_front_end_stops(loop):
    async def go():
        async with running_router(seq("http://127.0.0.1:1/v2/models/m/infer"), grpc=True) as router:
            client = GrpcClient(router.grpc_port)
            try:
                stream = client.channel.unary_stream(HEALTH + "Watch")(b"", timeout=30)
                first = await asyncio.wait_for(stream.read(), 5)
                stopping = asyncio.ensure_future(router.instance.grpc.stop(10))
                second = await asyncio.wait_for(stream.read(), 5)
                try:
                    await asyncio.wait_for(stream.read(), 5)
                    code = None
                except grpc.aio.AioRpcError as e:
                    code = e.code()
                await asyncio.wait_for(stopping, 10)
            finally:
                await client.close()
        return first, second, code

    first, second, code = loop.run(go())
    assert (first, second, code) == (b"\x08\x01", b"\x08\x02", grpc.StatusCode.UNAVAILABLE)


# ---- deadlines, cancellation ----------------------------------------------------------

def test_client_deadline_bounds_the_backend_call_and_cancels_it(loop):
    async def go():
        model = await HoldingModel().start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                app = router.instance.app
                client = GrpcClient(router.grpc_port)
                try:
                    got = await outcome(client.call("ModelInfer", join(fp32(1, "hold").to_grpc()),
                                                    timeout=0.5))
                    await eventually(lambda: model.lost == 1, "the held step call closed")
                    await eventually(lambda: app.in_flight == 0, "nothing in flight")
                finally:
                    await client.close()
        finally:
            await model.close()
        return got

    code, _ = loop.run(go())
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_client_cancel_cancels_the_step_call(loop):
    async def go():
        model = await HoldingModel().start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                app = router.instance.app
                client = GrpcClient(router.grpc_port)
                try:
                    call = client.call("ModelInfer", join(fp32(1, "hold").to_grpc()), timeout=60)
                    await eventually(lambda: model.held == 1, "the step at the model")
                    call.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await call
                    await eventually(lambda: model.lost == 1, "the step's connection closed")
                    await eventually(lambda: app.in_flight == 0, "nothing in flight")
                    assert app.requests_cancelled == 1
                    # the connection serves on
                    ok = await client.infer(fp32(2))
                finally:
                    await client.close()
        finally:
            await model.close()
        return ok

    assert [t.name for t in loop.run(go()).outputs] == ["y"]


# ---- sizes and concurrency ------------------------------------------------------------

def test_large_messages_both_ways_bit_exact(loop):
    # 8 MiB each way: many DATA frames and WINDOW_UPDATEs past the 1 MiB stream window
    n = 8 * MiB // 4

    async def go():
        model = await V2HttpModel(numpy_model(lambda x: x + 1)).start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                client = GrpcClient(router.grpc_port, options=[("grpc.max_receive_message_length", -1)])
                try:
                    return await client.infer(fp32(n))
                finally:
                    await client.close()
        finally:
            await model.close()

    resp = loop.run(go())
    np.testing.assert_array_equal(resp.as_numpy("output0"), np.arange(n, dtype=np.float32) + 1)


def test_many_concurrent_streams_on_one_connection(loop):
    async def go():
        model = await V2HttpModel(numpy_model(lambda x: x * 3)).start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    return await asyncio.wait_for(asyncio.gather(
                        *(client.infer(fp32(i % 7 + 1, f"r{i}")) for i in range(300))), 60)
                finally:
                    await client.close()
        finally:
            await model.close()

    out = loop.run(go())
    for i, resp in enumerate(out):
        assert resp.id == f"r{i}"
        np.testing.assert_array_equal(resp.as_numpy("output0"),
                                      np.arange(i % 7 + 1, dtype=np.float32) * 3)


# ---- drain -----------------------------------------------------------------------------

def test_drain_sends_goaway_lets_the_call_in_flight_finish_and_refuses_new_ones(loop):
    release = None

    async def answer(request):
        await release.wait()
        return 200, {"outputs": [{"name": "y", "shape": [1], "datatype": "FP32", "data": [1.0]}]}

    async def go():
        nonlocal release
        release = asyncio.Event()
        model = await ModelServer(answer).start()
        try:
            async with running_router(seq(model.url.replace("/v1/models/m:predict", "/v2/models/m/infer")),
                                      grpc=True) as router:
                app = router.instance.app
                front = router.instance.grpc
                client = GrpcClient(router.grpc_port)
                try:
                    held = asyncio.ensure_future(client.infer(fp32(1)))
                    await eventually(lambda: app.in_flight == 1, "the call in flight")
                    stopping = asyncio.ensure_future(front.stop(10.0))
                    await eventually(lambda: front.h2.draining, "draining")
                    # a new connection is refused: the listener is closed
                    other = GrpcClient(router.grpc_port)
                    try:
                        refused = await outcome(other.call("ServerLive", b"", timeout=2))
                    finally:
                        await other.close()
                    assert not held.done()
                    release.set()
                    resp = await asyncio.wait_for(held, 10)
                    await asyncio.wait_for(stopping, 10)
                    assert front.h2.open_connections == 0
                finally:
                    await client.close()
        finally:
            await model.close()
        return resp, refused

    resp, refused = loop.run(go())
    assert resp.as_numpy("y").tolist() == [1.0]
    assert refused[0] == grpc.StatusCode.UNAVAILABLE


def test_drain_grace_aborts_calls_that_do_not_finish(loop):
    async def go():
        model = await HoldingModel().start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                app = router.instance.app
                client = GrpcClient(router.grpc_port)
                try:
                    held = asyncio.ensure_future(outcome(client.call(
                        "ModelInfer", join(fp32(1, "hold").to_grpc()), timeout=30)))
                    await eventually(lambda: model.held == 1, "the step at the model")
                    await asyncio.wait_for(router.instance.grpc.stop(0.2), 10)
                    got = await asyncio.wait_for(held, 10)
                    await eventually(lambda: app.in_flight == 0, "the call cancelled")
                finally:
                    await client.close()
        finally:
            await model.close()
        return got

    assert loop.run(go())[0] == grpc.StatusCode.UNAVAILABLE


# ---- TLS --------------------------------------------------------------------------------

def _self_signed(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"), cert_pem


def test_tls_with_alpn_h2(loop, tmp_path):
    cert, key, cert_pem = _self_signed(tmp_path)

    async def go():
        model = await V2HttpModel(numpy_model(lambda x: -x)).start()
        try:
            async with running_router(seq(model.url()), grpc=True, options={
                    "grpc_tls_cert": cert, "grpc_tls_key": key}) as router:
                creds = grpc.ssl_channel_credentials(root_certificates=cert_pem)
                channel = grpc.aio.secure_channel(f"localhost:{router.grpc_port}", creds)
                try:
                    resp = await channel.unary_unary(INFER)(join(fp32(3).to_grpc()), timeout=10)
                finally:
                    await channel.close()
                # a TLS client that does not offer h2 is refused
                ctx = ssl.create_default_context(cadata=cert_pem.decode())
                ctx.set_alpn_protocols(["http/1.1"])
                try:
                    reader, writer = await asyncio.wait_for(asyncio.open_connection(
                        "localhost", router.grpc_port, ssl=ctx), 5)
                except (ssl.SSLError, ConnectionError):
                    closed = True
                else:
                    closed = await asyncio.wait_for(reader.read(), 5) == b""
                    writer.close()
        finally:
            await model.close()
        return InferResponse.from_grpc(resp), closed

    resp, closed = loop.run(go())
    np.testing.assert_array_equal(resp.as_numpy("output0"), -np.arange(3, dtype=np.float32))
    assert closed


def test_grpc_impl_option_is_checked():
    from engine.errors import GraphSpecError
    from engine.server.runner import ServeOptions
    with pytest.raises(GraphSpecError, match="expected one of native, grpcio"):
        ServeOptions(grpc_impl="go")
    with pytest.raises(GraphSpecError, match="go together"):
        ServeOptions(grpc_tls_cert="c.pem")


# ---- requests that are not gRPC -----------------------------------------------------------

def h2_exchange(port, headers, body=None, timeout=5.0):
    """One request with the h2 library as the peer: [(kind, payload)] of the answer."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        conn.initiate_connection()
        conn.send_headers(1, headers, end_stream=body is None)
        if body is not None:
            conn.send_data(1, body, end_stream=True)
        s.sendall(conn.data_to_send())
        out = []
        while True:
            data = s.recv(65536)
            if not data:
                return out
            for e in conn.receive_data(data):
                if isinstance(e, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    out.append(("headers", dict(e.headers)))
                elif isinstance(e, h2.events.DataReceived):
                    out.append(("data", e.data))
                    conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, h2.events.StreamReset):
                    out.append(("reset", e.error_code))
                    return out
                elif isinstance(e, h2.events.StreamEnded):
                    return out
            s.sendall(conn.data_to_send())


def request_headers(path=b"/inference.GRPCInferenceService/ServerLive", method=b"POST",
                    content_type=b"application/grpc", extra=()):
    return [(b":method", method), (b":scheme", b"http"), (b":path", path),
            (b":authority", b"127.0.0.1"), (b"content-type", content_type), (b"te", b"trailers"),
            *extra]


@pytest.fixture
def native_front(loop):
    """A native front end on a graph nothing calls: for transport-level requests."""
    state = {}

    async def start():
        cm = running_router(seq("http://127.0.0.1:1/v2/models/m/infer"), grpc=True)
        state["cm"] = cm
        state["router"] = await cm.__aenter__()

    loop.run(start())
    try:
        yield state["router"]
    finally:
        loop.run(state["cm"].__aexit__(None, None, None))


def test_requests_that_are_not_grpc(loop, native_front):
    port = native_front.grpc_port

    async def go():
        run = asyncio.get_running_loop().run_in_executor
        ok = await run(None, h2_exchange, port, request_headers(), b"\x00\x00\x00\x00\x00")
        plus = await run(None, h2_exchange, port, request_headers(content_type=b"application/grpc+proto"),
                         b"\x00\x00\x00\x00\x00")
        wrong = await run(None, h2_exchange, port, request_headers(content_type=b"application/json"), b"{}")
        get = await run(None, h2_exchange, port, request_headers(method=b"GET"))
        compressed = await run(None, h2_exchange, port, request_headers(), b"\x01\x00\x00\x00\x01a")
        gzip = await run(None, h2_exchange, port, request_headers(extra=[(b"grpc-encoding", b"gzip")]),
                         b"\x00\x00\x00\x00\x00")
        empty = await run(None, h2_exchange, port, request_headers())
        partial = await run(None, h2_exchange, port, request_headers(), b"\x00\x00\x00\x00\x05ab")
        bad_timeout = await run(None, h2_exchange, port, request_headers(extra=[(b"grpc-timeout", b"1x")]),
                                b"\x00\x00\x00\x00\x00")
        return ok, plus, wrong, get, compressed, gzip, empty, partial, bad_timeout

    ok, plus, wrong, get, compressed, gzip, empty, partial, bad_timeout = loop.run(go())
    assert ok[0] == ("headers", {b":status": b"200", b"content-type": b"application/grpc"})
    assert ok[1] == ("data", b"\x00\x00\x00\x00\x02\x08\x01")
    assert ok[2] == ("headers", {b"grpc-status": b"0"})
    assert plus == ok
    assert wrong[0][1][b":status"] == b"415"
    assert get == [("reset", 1)]       # PROTOCOL_ERROR
    for answer, code in ((compressed, b"13"), (gzip, b"12"), (empty, b"13"), (partial, b"13"),
                         (bad_timeout, b"13")):
        assert answer[0][0] == "headers" and answer[0][1][b":status"] == b"200", answer
        assert answer[0][1][b"grpc-status"] == code, answer     # trailers-only


# ---- a client that never reads ------------------------------------------------------------

def test_a_client_that_never_reads_is_not_buffered_for(loop):
    # The client opens every window wide, asks for 32 answers of 512 KiB and never
    # reads its socket. The router answers them all, but hands the transport at most
    # about one round of writing (1 MiB) past what the kernel took, stops reading the
    # connection, and keeps the rest as the answers' own buffers, not copies; when the
    # client goes, its calls are gone and the router serves on.
    import struct

    from h2kit import DATA, END_HEADERS, END_STREAM, HEADERS, MODEL_INFER, PREFACE, WINDOW_UPDATE, \
        frame, grpc_message, request_block, settings

    calls = 32
    message = join(fp32(2).to_grpc())
    big = np.zeros(128 * 1024, dtype=np.float32)

    async def go():
        model = await V2HttpModel(numpy_model(lambda x: big)).start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                app = router.instance.app
                reader, writer = await asyncio.open_connection("127.0.0.1", router.grpc_port)
                writer.transport.pause_reading()       # never reads
                enc = __import__("hpack").Encoder()
                out = [PREFACE + settings((4, 0x7FFFFFFF)),
                       frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535))]
                for i in range(calls):
                    out.append(frame(HEADERS, END_HEADERS, 2 * i + 1, request_block(MODEL_INFER, encoder=enc)))
                    out.append(frame(DATA, END_STREAM, 2 * i + 1, grpc_message(message)))
                writer.write(b"".join(out))
                await eventually(lambda: app.requests_total == calls, "every call answered", timeout=30)
                await eventually(lambda: not router.instance.grpc.h2.transports()[0].is_reading(),
                                 "the connection no longer read")
                buffered = [t.get_write_buffer_size() for t in router.instance.grpc.h2.transports()]
                writer.close()
                await eventually(lambda: router.instance.grpc.h2.open_connections == 0, "closed")
                client = GrpcClient(router.grpc_port)
                try:
                    ok = await client.infer(fp32(2))
                finally:
                    await client.close()
        finally:
            await model.close()
        return buffered, ok

    buffered, ok = loop.run(go())
    assert len(buffered) == 1 and buffered[0] <= 2 * MiB, buffered
    assert ok.as_numpy("output0").shape == (128 * 1024,)


def test_grpc_impl_and_tls_flags(monkeypatch, capsys):
    import orjson

    import engine.logs
    import engine.server.runner as runner
    from engine.cli import main
    seen = []
    monkeypatch.setattr(runner, "serve", lambda graph, options: seen.append(options) or 0)
    monkeypatch.setattr(engine.logs, "configure", lambda level=None: None)
    monkeypatch.delenv("IGE_GRPC_IMPL", raising=False)
    graph = orjson.dumps(seq("http://127.0.0.1:1/v1/models/m:predict")).decode()
    assert main(["serve", "--graph-json", graph]) == 0
    assert main(["serve", "--graph-json", graph, "--grpc-impl", "grpcio"]) == 0
    monkeypatch.setenv("IGE_GRPC_IMPL", "grpcio")
    assert main(["serve", "--graph-json", graph]) == 0
    assert main(["serve", "--graph-json", graph, "--grpc-impl", "native",
                 "--grpc-tls-cert", "c.pem", "--grpc-tls-key", "k.pem"]) == 0
    assert [(o.grpc_impl, o.grpc_tls_cert, o.grpc_tls_key) for o in seen] == [
        ("native", None, None), ("grpcio", None, None), ("grpcio", None, None),
        ("native", "c.pem", "k.pem")]
    assert main(["serve", "--graph-json", graph, "--grpc-tls-cert", "c.pem", "--grpc-tls-key", "k.pem"]) == 1
    assert "needs the native gRPC front end" in capsys.readouterr().err
