"""--enable-tls: HTTPS on the HTTP port (TLS 1.2 at least, ALPN http/1.1), the
certificate reloaded without dropping connections, and SSL_CERT_FILE trusted for
https:// steps (docs/security.md)."""
from __future__ import annotations

import asyncio
import ssl

import orjson
import pytest

from engine import _core
from engine.errors import ServeError
from engine.server.tls import CertReloader, TlsConfig, server_context

from routerkit import ModelServer, running_router, split_response, static
from tlskit import TestCA, peer_serial


def seq_graph(*urls):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": u} for u in urls]}}}


def tls_options(tmp_path, ca, serial=None, interval=0.0):
    cert, key = ca.write_pair(tmp_path, serial)
    return {"tls": TlsConfig(cert_file=cert, key_file=key, reload_interval=interval)}


async def open_tls(port, ca, alpn=("http/1.1",), **kw):
    ctx = ca.client_context()
    ctx.set_alpn_protocols(list(alpn))
    for name, value in kw.items():
        setattr(ctx, name, value)
    return await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")


async def exchange(reader, writer, request: bytes):
    """One request on an open connection; its (status, headers, body)."""
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, headers, _ = split_response(head)
    body = await asyncio.wait_for(reader.readexactly(int(headers[b"content-length"])), 5)
    return status, headers, body


def post(path=b"/", body=b"{}", extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_https_serves_the_graph_with_tls12_and_alpn_http11(loop, tmp_path):
    ca = TestCA()

    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        try:
            async with running_router(seq_graph(m.url), options=tls_options(tmp_path, ca)) as router:
                client = _core.HttpClient(ssl_context=ca.client_context())
                try:
                    r = await client.request(_core.Endpoint(f"https://127.0.0.1:{router.port}/"), b"{}")
                finally:
                    await client.close()
                assert (r.status, orjson.loads(r.body)) == (200, {"predictions": [1]})
                # a client offering h2 first still gets HTTP/1.1, the only protocol here
                reader, writer = await open_tls(router.port, ca, alpn=("h2", "http/1.1"))
                try:
                    sslobj = writer.get_extra_info("ssl_object")
                    assert sslobj.selected_alpn_protocol() == "http/1.1"
                    assert sslobj.version() in ("TLSv1.2", "TLSv1.3")
                    assert (await exchange(reader, writer, post()))[0] == 200
                finally:
                    writer.close()
                # TLS 1.1 and older: no handshake
                with pytest.raises((ssl.SSLError, ConnectionError)):
                    _, w = await open_tls(router.port, ca, minimum_version=ssl.TLSVersion.TLSv1,
                                          maximum_version=ssl.TLSVersion.TLSv1_1)
                    w.close()
                # plain HTTP on the HTTPS port gets no answer that parses as HTTP
                reader, writer = await asyncio.open_connection("127.0.0.1", router.port)
                try:
                    writer.write(post())
                    got = await asyncio.wait_for(reader.read(-1), 5)
                    assert not got.startswith(b"HTTP/1.1 200")
                finally:
                    writer.close()
        finally:
            await m.close()
    loop.run(go())


def test_keep_alive_pipelining_large_answers_and_close_over_tls(loop, tmp_path):
    """The HTTP protocol over an SSL transport: keep-alive, pipelined requests in
    order, an answer large enough to pause writing, Connection: close."""
    ca = TestCA()
    big = {"predictions": ["x" * 1000] * 4000}

    async def go():
        small = await ModelServer(static({"predictions": [1]})).start()
        large = await ModelServer(static(big)).start()
        # instances [1] gets the large answer, [2] the small one
        doc = {"nodes": {"root": {"routerType": "Switch", "steps": [
            {"serviceUrl": large.url, "condition": "instances.#(==1)"},
            {"serviceUrl": small.url, "condition": "instances.#(==2)"}]}}}
        try:
            async with running_router(doc, options=tls_options(tmp_path, ca)) as router:
                reader, writer = await open_tls(router.port, ca)
                try:
                    for _ in range(3):
                        status, _, body = await exchange(reader, writer, post(body=b'{"instances":[2]}'))
                        assert (status, orjson.loads(body)) == (200, {"predictions": [1]})
                    writer.write(post(body=b'{"instances":[2]}') * 5)
                    for _ in range(5):
                        assert (await exchange(reader, writer, b""))[0] == 200
                    # read the large answer slowly: the server's writes pause and resume
                    writer.write(post(body=b'{"instances":[1]}'))
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                    n = int(split_response(head)[1][b"content-length"])
                    got = b""
                    while len(got) < n:
                        got += await asyncio.wait_for(reader.read(65536), 5)
                        await asyncio.sleep(0)
                    assert orjson.loads(got) == big
                    status, headers, _ = await exchange(
                        reader, writer, post(body=b'{"instances":[2]}', extra=b"Connection: close\r\n"))
                    assert (status, headers[b"connection"]) == (200, b"close")
                    assert await asyncio.wait_for(reader.read(-1), 5) == b""
                finally:
                    writer.close()
        finally:
            await small.close()
            await large.close()
    loop.run(go())


def test_a_rotated_certificate_serves_new_handshakes_and_keeps_old_connections(loop, tmp_path):
    ca = TestCA()

    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        try:
            async with running_router(seq_graph(m.url),
                                      options=tls_options(tmp_path, ca, serial=1001)) as router:
                old_reader, old_writer = await open_tls(router.port, ca)
                try:
                    assert peer_serial(old_writer.get_extra_info("ssl_object")) == 1001
                    assert (await exchange(old_reader, old_writer, post()))[0] == 200
                    certs = router.instance.certs
                    assert not certs.check()        # nothing changed
                    ca.write_pair(tmp_path, 2002)   # the service CA renews the secret
                    assert certs.check() and certs.reloads == 1
                    reader, writer = await open_tls(router.port, ca)
                    try:
                        assert peer_serial(writer.get_extra_info("ssl_object")) == 2002
                        assert (await exchange(reader, writer, post()))[0] == 200
                    finally:
                        writer.close()
                    # the connection opened before the rotation goes on, with its certificate
                    assert (await exchange(old_reader, old_writer, post()))[0] == 200
                    assert peer_serial(old_writer.get_extra_info("ssl_object")) == 1001
                finally:
                    old_writer.close()
        finally:
            await m.close()
    loop.run(go())


def test_the_reloader_polls_and_a_mismatched_pair_keeps_the_old_certificate(loop, tmp_path):
    ca = TestCA()

    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        try:
            async with running_router(seq_graph(m.url),
                                      options=tls_options(tmp_path, ca, serial=1, interval=0.01)) as router:
                certs = router.instance.certs
                # a key that does not match the certificate: refused, the old one serves
                _, other_key = TestCA().issue()
                (tmp_path / "tls.key").write_bytes(other_key)
                for _ in range(500):
                    if certs.errors:
                        break
                    await asyncio.sleep(0.01)
                assert certs.errors >= 1 and certs.reloads == 0
                reader, writer = await open_tls(router.port, ca)
                writer.close()
                assert peer_serial(writer.get_extra_info("ssl_object")) == 1
                # then a good pair: the poller picks it up
                ca.write_pair(tmp_path, 3)
                for _ in range(500):
                    if certs.reloads:
                        break
                    await asyncio.sleep(0.01)
                assert certs.reloads == 1
                reader, writer = await open_tls(router.port, ca)
                writer.close()
                assert peer_serial(writer.get_extra_info("ssl_object")) == 3
        finally:
            await m.close()
    loop.run(go())


def test_a_missing_certificate_fails_at_start(tmp_path):
    with pytest.raises(ServeError, match="cannot load the certificate"):
        server_context(TlsConfig(cert_file=str(tmp_path / "no.crt"), key_file=str(tmp_path / "no.key")))


def test_https_steps_trust_the_bundle_in_ssl_cert_file(loop, tmp_path, monkeypatch):
    """As Go's router: SSL_CERT_FILE (the controller points it at the service CA)
    is where an https:// step's server certificate is verified."""
    ca = TestCA("model CA")
    ca_file = ca.write(tmp_path / "service-ca.crt")
    model_dir = tmp_path / "model"
    model_dir.mkdir()

    async def go():
        m = ModelServer(static({"predictions": [7]}))
        m.http = _core.HttpServer(m._handle)
        m.server = await asyncio.get_running_loop().create_server(
            m.http.protocol_factory, "127.0.0.1", 0, ssl=ca.server_context(model_dir))
        m.port = m.server.sockets[0].getsockname()[1]
        url = f"https://127.0.0.1:{m.port}/v1/models/m:predict"
        try:
            monkeypatch.delenv("SSL_CERT_FILE", raising=False)
            async with running_router(seq_graph(url)) as router:
                untrusted = await router.post({})
            monkeypatch.setenv("SSL_CERT_FILE", ca_file)
            async with running_router(seq_graph(url)) as router:
                trusted = await router.post({})
        finally:
            await m.close()
        return untrusted, trusted
    untrusted, trusted = loop.run(go())
    assert untrusted.status == 500 and b"certificate" in bytes(untrusted.body)
    assert (trusted.status, orjson.loads(trusted.body)) == (200, {"predictions": [7]})


def test_server_context_is_tls12_minimum_with_http11_alpn(tmp_path):
    ca = TestCA()
    cert, key = ca.write_pair(tmp_path)
    ctx = server_context(TlsConfig(cert_file=cert, key_file=key))
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert isinstance(CertReloader(ctx, TlsConfig(cert_file=cert, key_file=key)).last, list)


def test_the_cli_fails_at_start_without_the_certificate(tmp_path):
    import io
    from engine.cli import main
    err = io.StringIO()
    graph = '{"nodes":{"root":{"routerType":"Sequence","steps":[]}}}'
    code = main(["--enable-tls", "--graph-json", graph, "--tls-cert", str(tmp_path / "x.crt"),
                 "--tls-key", str(tmp_path / "x.key")], stdout=io.StringIO(), stderr=err)
    assert code != 0 and "cannot load the certificate" in err.getvalue()
    err = io.StringIO()
    code = main(["serve", "--graph-json", graph, "--tls-cert", "a.crt"], stdout=io.StringIO(), stderr=err)
    assert code != 0 and "need --enable-tls" in err.getvalue()


def test_a_client_that_never_answers_close_notify_does_not_hold_the_stop(loop, tmp_path, monkeypatch):
    """Closing a TLS connection waits for the client's close_notify only briefly (Go
    does not wait at all): a client that keeps its socket and never answers must not
    hold the router's stop for asyncio's default 30 s."""
    import socket
    from engine.server import tls as tls_module
    monkeypatch.setattr(tls_module, "SHUTDOWN_SECONDS", 0.2)
    ca = TestCA()

    def request(port):
        s = ca.client_context().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                            server_hostname="localhost")
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(1000).startswith(b"HTTP/1.1 200")
        return s    # kept open, never read again: no close_notify goes back

    async def go():
        async with running_router(seq_graph("http://127.0.0.1:9/"), options=tls_options(tmp_path, ca)) as router:
            s = await asyncio.get_running_loop().run_in_executor(None, request, router.port)
            try:
                router.instance.request_stop()
                await asyncio.wait_for(asyncio.shield(router.task), 5)
            finally:
                s.close()
    loop.run(go())


def test_enable_tls_serves_grpc_over_tls_with_the_same_rotated_certificate(loop, tmp_path):
    import grpc
    import numpy as np
    from engine.oip import InferRequest, from_numpy
    from oipkit import GrpcModel, numpy_model

    ca = TestCA()

    async def go():
        m = await GrpcModel(numpy_model(lambda v: v + np.float32(1))).start()
        doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": m.url("inc")}]}}}
        try:
            async with running_router(doc, grpc=True, options=tls_options(tmp_path, ca, serial=11)) as router:
                port = router.grpc_port
                # ALPN h2 only, the HTTP port's certificate
                reader, writer = await open_tls(port, ca, alpn=("h2",))
                ssl_object = writer.get_extra_info("ssl_object")
                assert ssl_object.selected_alpn_protocol() == "h2" and peer_serial(ssl_object) == 11
                writer.close()
                # a real gRPC client over TLS, trusting the test CA
                creds = grpc.ssl_channel_credentials(root_certificates=ca.pem)
                async with grpc.aio.secure_channel(f"localhost:{port}", creds) as channel:
                    call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
                    req = InferRequest("graph", [from_numpy("x", np.ones((1, 4), np.float32))])
                    from engine.oip import InferResponse, join
                    answer = InferResponse.from_grpc(await call(join(req.to_grpc()), timeout=10))
                    np.testing.assert_array_equal(answer.as_numpy(answer.outputs[0].name),
                                                  np.full((1, 4), 2, np.float32))
                # rotation reaches the gRPC port's next handshake
                ca.write_pair(tmp_path, 22)
                assert router.instance.grpc_certs.check()
                reader, writer = await open_tls(port, ca, alpn=("h2",))
                assert peer_serial(writer.get_extra_info("ssl_object")) == 22
                writer.close()
        finally:
            await m.close()
    loop.run(go())
