"""KServe's Istio rule for https steps (#4031, isInIstioMesh in cmd/router/main.go): at the
first https step call the router probes the sidecar's admin port once; a 200 sends every
https step over plain HTTP (same host, port and path), a refused connection keeps TLS,
and any other probe failure fails that one call with 500 (keeping TLS afterwards).

The "sidecar" is a loopback HTTP server, the probe URL comes from the Policy, and the
https step URLs point at a plain HTTP model: it answers only when the router drops TLS.
"""
from __future__ import annotations

import asyncio

import orjson
import pytest

from engine import _core
from engine.backends import mesh
from routerkit import ModelServer, closed_port, running_router, static


@pytest.fixture(autouse=True)
def fresh_probes():
    # the probe's answer is kept per process and probe URL; ports are reused by tests
    mesh.forget_probes()
    yield
    mesh.forget_probes()


def https_url(model: ModelServer) -> str:
    return f"https://127.0.0.1:{model.port}/v1/models/m:predict"


def graph(*urls):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": u} for u in urls]}}}


async def _sidecar(answer):
    server = await ModelServer(answer).start()
    return server, f"http://127.0.0.1:{server.port}"


def test_in_the_mesh_https_steps_go_over_plain_http(loop):
    async def go():
        model = await ModelServer(static({"predictions": [1]})).start()
        sidecar, probe_url = await _sidecar(static(b"envoy admin"))
        try:
            async with running_router(graph(https_url(model)), istio_probe_url=probe_url) as router:
                first = await router.post({"instances": [1]})
                second = await router.post({"instances": [2]})
        finally:
            await model.close()
            await sidecar.close()
        return first, second, model, sidecar
    first, second, model, sidecar = loop.run(go())
    assert (first.status, orjson.loads(first.body)) == (200, {"predictions": [1]})
    assert second.status == 200
    assert [orjson.loads(r.body) for r in model.requests] == [{"instances": [1]}, {"instances": [2]}]
    # probed once, with Go's GET, before the first https call and never again
    assert [(r.method, r.path) for r in sidecar.requests] == [(b"GET", b"/")]
    host = {k.lower(): v for k, v in model.requests[0].headers}[b"host"]
    assert host == f"127.0.0.1:{model.port}".encode()


def test_concurrent_first_calls_share_one_probe(loop):
    async def slow_admin(request):
        await asyncio.sleep(0.05)
        return 200, b"ok"

    async def go():
        model = await ModelServer(static({"ok": True})).start()
        sidecar, probe_url = await _sidecar(slow_admin)
        try:
            async with running_router(graph(https_url(model)), istio_probe_url=probe_url) as router:
                answers = await asyncio.gather(*(router.post({"i": i}) for i in range(5)))
        finally:
            await model.close()
            await sidecar.close()
        return answers, sidecar
    answers, sidecar = loop.run(go())
    assert [r.status for r in answers] == [200] * 5
    assert len(sidecar.requests) == 1


def test_no_sidecar_keeps_tls(loop):
    probe_url = f"http://127.0.0.1:{closed_port()}"

    async def go():
        model = await ModelServer(static({"predictions": [1]})).start()
        try:
            async with running_router(graph(https_url(model)), istio_probe_url=probe_url) as router:
                return model, await router.post({"instances": [1]})
        finally:
            await model.close()
    model, r = loop.run(go())
    # TLS to a plain HTTP server fails: KServe's error body, with the https URL
    body = orjson.loads(r.body)
    assert r.status == 500 and body["error"] == "Failed to process request"
    assert body["cause"].startswith(f'Post "{https_url(model)}": ')
    assert mesh.probe_for(probe_url).in_mesh is False


def test_a_sidecar_answering_other_than_200_is_no_mesh(loop):
    async def go():
        model = await ModelServer(static({"predictions": [1]})).start()
        sidecar, probe_url = await _sidecar(static(b"no", status=404))
        try:
            async with running_router(graph(https_url(model)), istio_probe_url=probe_url) as router:
                return await router.post({}), probe_url
        finally:
            await model.close()
            await sidecar.close()
    r, probe_url = loop.run(go())
    assert r.status == 500
    assert mesh.probe_for(probe_url).in_mesh is False


def test_a_failed_probe_fails_that_call_then_tls_is_kept(loop):
    async def hang_up(reader, writer):
        # reads the whole request first: closing with unread data would send a reset
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def go():
        model = await ModelServer(static({"predictions": [1]})).start()
        sidecar = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        probe_url = f"http://127.0.0.1:{sidecar.sockets[0].getsockname()[1]}"
        try:
            async with running_router(graph(https_url(model)), istio_probe_url=probe_url) as router:
                first = await router.post({})
                second = await router.post({})
        finally:
            await model.close()
            sidecar.close()
            await sidecar.wait_closed()
        return model, probe_url, first, second
    model, probe_url, first, second = loop.run(go())
    assert (first.status, orjson.loads(first.body)) == (
        500, {"error": "Failed to process request", "cause": f'Get "{probe_url}": EOF'})
    # the answer "not in the mesh" was kept: the next call tries TLS, without a probe
    assert second.status == 500
    assert orjson.loads(second.body)["cause"].startswith(f'Post "{https_url(model)}": ')
    assert model.requests == []


def test_http_steps_never_probe(loop):
    async def go():
        model = await ModelServer(static({"predictions": [1]})).start()
        sidecar, probe_url = await _sidecar(static(b"ok"))
        try:
            async with running_router(graph(model.url), istio_probe_url=probe_url) as router:
                r = await router.post({})
        finally:
            await model.close()
            await sidecar.close()
        return r, sidecar
    r, sidecar = loop.run(go())
    assert r.status == 200 and sidecar.requests == []


@pytest.mark.parametrize("off", [None, ""])
def test_the_rule_can_be_turned_off(loop, off):
    async def go():
        model = await ModelServer(static({"predictions": [1]})).start()
        sidecar, probe_url = await _sidecar(static(b"ok"))
        try:
            async with running_router(graph(https_url(model)), istio_probe_url=off) as router:
                r = await router.post({})
        finally:
            await model.close()
            await sidecar.close()
        return r, sidecar
    r, sidecar = loop.run(go())
    assert r.status == 500 and sidecar.requests == []


def test_the_probe_url_defaults_to_envoys_admin_port(monkeypatch):
    import engine
    monkeypatch.delenv("IGE_ISTIO_PROBE_URL", raising=False)
    assert engine.Policy().istio_probe_url == "http://localhost:15000"
    monkeypatch.setenv("IGE_ISTIO_PROBE_URL", "")
    assert engine.Policy().istio_probe_url == ""


def test_https_steps_get_the_mesh_backend_and_its_plain_twin():
    import engine
    g = engine.load(graph("https://svc.ns/v1/models/m:predict", "HTTPS://svc.ns:8443/v2/models/m/infer",
                          "http://svc.ns/v1/models/m:predict"))
    plan = g.compile(policy=engine.Policy(istio_probe_url="http://127.0.0.1:9"))
    backends = [s.backend for s in plan.compiled.nodes[0].steps]
    assert [type(b).__name__ for b in backends] == ["IstioMeshBackend", "IstioMeshBackend", "HttpBackend"]
    # Go replaces only the scheme: a URL without a port now means port 80
    plain = backends[0].plain
    assert isinstance(plain, _core.HttpBackend)
    assert (plain.endpoint.url, plain.endpoint.port, plain.endpoint.tls) == ("http://svc.ns/v1/models/m:predict", 80, False)
    assert backends[0].tls.endpoint.tls and backends[0].description == "https://svc.ns/v1/models/m:predict"
    assert backends[1].plain.description.startswith("http://svc.ns:8443/v2/models/m/infer")
    # a URL Go's client can never call fails at every call, without a probe
    g = engine.load(graph("https:///m"))
    backend = g.compile(policy=engine.Policy(istio_probe_url="http://127.0.0.1:9")).compiled.nodes[0].steps[0].backend
    assert type(backend).__name__ == "FailingBackend"
