"""The router over real sockets: HTTP model servers behind it on loopback."""
from __future__ import annotations

import asyncio

import orjson
from engine import _core
import pytest

from routerkit import (ModelServer, closed_port, raw_exchange, running_router,
                       split_response, static)


def seq_graph(*urls, **step_extra):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": u, **step_extra} for u in urls]}}}


def test_sequence_forwards_the_request_bytes_unchanged(loop):
    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        body = b'{"instances": [1, 2.50, "\\u00e9"],   "x": null}'
        try:
            async with running_router(seq_graph(m.url)) as router:
                r = await router.post(body)
                assert (r.status, orjson.loads(r.body)) == (200, {"predictions": [1]})
        finally:
            await m.close()
        assert bytes(m.requests[0].body) == body
        names = {k.lower(): v for k, v in m.requests[0].headers}
        assert names[b"content-type"] == b"application/json"
    loop.run(go())


def test_refused_connection_is_500_with_go_cause(loop):
    port = closed_port()
    url = f"http://127.0.0.1:{port}/v1/models/m:predict"

    async def go():
        async with running_router(seq_graph(url)) as router:
            return await router.post({"instances": []})
    r = loop.run(go())
    assert r.status == 500
    assert orjson.loads(r.body) == {
        "error": "Failed to process request",
        "cause": f'Post "{url}": dial tcp 127.0.0.1:{port}: connect: connection refused'}


def test_service_client_timeout_is_500(loop):
    async def slow(request):
        await asyncio.sleep(3)
        return 200, {"late": True}

    async def go():
        m = await ModelServer(slow).start()
        doc = seq_graph(m.url)
        doc["routerTimeouts"] = {"serviceClient": 1}
        try:
            async with running_router(doc) as router:
                return m.url, await router.post({})
        finally:
            await m.close()
    url, r = loop.run(go())
    assert r.status == 500
    cause = orjson.loads(r.body)["cause"]
    assert cause.startswith(f'Post "{url}": ') and "Client.Timeout exceeded" in cause


def test_malformed_service_url_answers_500_per_request(loop):
    url = "http://single-1.default.{$your-domain}/switch"

    async def go():
        async with running_router(seq_graph(url)) as router:
            return await router.post({})
    r = loop.run(go())
    assert r.status == 500
    assert orjson.loads(r.body)["cause"] == f'parse "{url}": invalid character "{{" in host name'


def test_headers_propagate_to_http_steps(loop):
    def echo_headers(request):
        return 200, {k.decode(): v.decode() for k, v in request.headers
                     if k.lower().startswith(b"test-") or k.lower() == b"authorization"}

    async def go():
        m = await ModelServer(echo_headers).start()
        try:
            async with running_router(seq_graph(m.url), propagate_headers="Test-Header-*,Auth*") as router:
                return await router.post({}, headers=[(b"authorization", b"Bearer Token"),
                                                      (b"test-header-1", b"one"), (b"other", b"no")])
        finally:
            await m.close()
    r = loop.run(go())
    assert orjson.loads(r.body) == {"Authorization": "Bearer Token", "Test-Header-1": "one"}


def test_any_path_and_method_runs_the_graph(loop):
    async def go():
        m = await ModelServer(static({"ok": True})).start()
        try:
            async with running_router(seq_graph(m.url)) as router:
                post = await router.post({}, path="/anything/at/all")
                raw = await raw_exchange(router.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                # not clean: Go's ServeMux would redirect (docs/semantics.md)
                unclean = [await router.post({}, path=p) for p in ("//x", "/a/../b", "/./c")]
                return post, split_response(raw), unclean
        finally:
            await m.close()
    post, (status, headers, body), unclean = loop.run(go())
    assert post.status == 200 and orjson.loads(post.body) == {"ok": True}
    assert [(r.status, orjson.loads(r.body)) for r in unclean] == [(200, {"ok": True})] * 3
    assert status == 200 and orjson.loads(body) == {"ok": True}
    assert headers[b"content-type"] == b"application/json"


# every path the engine answers itself by default (docs/semantics.md, "Paths")
ENGINE_PATHS = [
    ("GET", "/healthz", b""), ("POST", "/healthz", b"{}"), ("GET", "/v2/health/live", b""),
    ("GET", "/v2/health/ready", b""), ("GET", "/metrics", b""), ("GET", "/v2/models/g", b""),
    ("GET", "/v2/models/g/versions/1/ready", b""), ("GET", "/v2/models/g/ready?x=1", b""),
    ("POST", "/v2/models/g/infer", b'{"inputs":[],"parameters":{"binary_data_size":4}}abcd'),
]


def _request(method, path, body):
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\nInference-Header-Content-Length: {len(body) - 4}\r\n"
    return head.encode() + b"\r\n" + body


@pytest.mark.parametrize("mode", ["engine", "kserve"])
def test_reserved_paths_engine_or_kserve(loop, mode):
    async def go():
        m = await ModelServer(static(b'{"graph": "ran"}')).start()
        out = []
        try:
            async with running_router(seq_graph(m.url), reserved_paths=mode) as router:
                for method, path, body in ENGINE_PATHS + [("GET", "/readyz", b"")]:
                    out.append(split_response(await raw_exchange(router.port, _request(method, path, body))))
                router.instance.app.start_draining()
                draining = split_response(await raw_exchange(router.port, _request("POST", "/readyz", b"")))
        finally:
            await m.close()
        return out, draining, m.requests

    out, draining, requests = loop.run(go())
    *engine_paths, readyz = out
    assert (readyz[0], readyz[2]) == (200, b"") and draining[:1] == (503,) and draining[2] == b"shutting down\n"
    ran = [body == b'{"graph": "ran"}' for _, _, body in engine_paths]
    if mode == "engine":
        assert not any(ran) and not requests
    else:
        # path-for-path KServe's router: the graph runs, on the raw bytes
        assert all(ran) and [s for s, _, _ in engine_paths] == [200] * len(ENGINE_PATHS)
        assert [bytes(r.body) for r in requests] == [body for _, _, body in ENGINE_PATHS]


def test_readiness_and_drain(loop):
    async def slow(request):
        await asyncio.sleep(0.3)
        return 200, {"done": True}

    async def go():
        m = await ModelServer(slow).start()
        try:
            async with running_router(seq_graph(m.url), drain_seconds=0.2) as router:
                ready = split_response(await raw_exchange(
                    router.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
                in_flight = asyncio.ensure_future(router.post({}))
                while not m.requests:
                    await asyncio.sleep(0.01)
                router.instance.request_stop()
                draining = split_response(await raw_exchange(
                    router.port, b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
                finished = await in_flight
                await asyncio.wait_for(router.task, 5)
                return ready, draining, finished
        finally:
            await m.close()
    ready, draining, finished = loop.run(go())
    assert ready[0] == 200 and ready[2] == b""
    assert draining[0] == 503 and draining[2] == b"shutting down\n"
    assert finished.status == 200 and orjson.loads(finished.body) == {"done": True}


def test_metrics_count_requests(loop):
    async def go():
        m = await ModelServer(static({"ok": 1})).start()
        try:
            async with running_router(seq_graph(m.url)) as router:
                for _ in range(3):
                    await router.post({})
                raw = await raw_exchange(router.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return split_response(raw)
        finally:
            await m.close()
    status, _, body = loop.run(go())
    assert status == 200
    assert 'ige_requests_total{graph="graph"} 3' in body.decode()


def test_ensemble_over_http_merges_raw_bodies(loop):
    async def go():
        a = await ModelServer(static(b'{"p": [1, 2.50]}')).start()
        b = await ModelServer(static({"p": "b"})).start()
        doc = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"name": "b", "serviceUrl": b.url}, {"name": "a", "serviceUrl": a.url}]}}}
        try:
            async with running_router(doc) as router:
                return await router.post({})
        finally:
            await a.close()
            await b.close()
    r = loop.run(go())
    assert r.status == 200
    assert bytes(r.body) == b'{"a":{"p": [1, 2.50]},"b":{"p":"b"}}'


def test_plan_infer_in_a_task_awaits_http_steps(loop):
    """Embedded use: plan.infer runs in an asyncio Task (not the router's Flow)."""
    import engine

    async def go():
        m = await ModelServer(static({"predictions": [7]})).start()
        try:
            plan = engine.load(seq_graph(m.url, m.url)).compile()
            try:
                results = await asyncio.gather(*(plan.infer({"i": i}) for i in range(5)))
            finally:
                await plan.aclose()
            return results
        finally:
            await m.close()
    results = loop.run(go())
    assert [(r.status, r.json()) for r in results] == [(200, {"predictions": [7]})] * 5


def test_cancelling_an_embedded_request_cancels_its_wait(loop):
    import engine

    async def slow(request):
        await asyncio.sleep(5)
        return 200, {}

    async def go():
        m = await ModelServer(slow).start()
        try:
            plan = engine.load(seq_graph(m.url)).compile()
            task = asyncio.ensure_future(plan.infer({}))
            while not m.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await plan.aclose()
        finally:
            await m.close()
    loop.run(go())


def test_head_runs_the_graph_and_answers_without_a_body(loop):
    """As Go's server: the graph runs (its models are called), the head says what GET
    would, Content-Length only for a non-empty answer of at most 2048 bytes, and no
    body, so the next answer on the same connection is framed right."""
    big = {"predictions": ["x" * 3000]}

    async def go():
        small_model = await ModelServer(static({"predictions": [1]})).start()
        big_model = await ModelServer(static(big)).start()
        try:
            async with running_router(seq_graph(small_model.url)) as router:
                raw = await raw_exchange(router.port, (
                    b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"HEAD /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
                    b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            async with running_router(seq_graph(big_model.url)) as router:
                raw_big = await raw_exchange(router.port, (
                    b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        finally:
            await small_model.close()
            await big_model.close()
        return raw, raw_big, small_model.requests

    raw, raw_big, calls = loop.run(go())
    answers = raw.split(b"HTTP/1.1 ")[1:]
    assert len(answers) == 3
    head1, _, body1 = answers[0].partition(b"\r\n\r\n")
    assert body1 == b"" and b"Content-Length: 19" in head1 and b"application/json" in head1
    head2, _, body2 = answers[1].partition(b"\r\n\r\n")
    assert head2.startswith(b"200") and b"Content-Length" not in head2 and body2 == b""
    assert answers[2].endswith(b'\r\n\r\n{"predictions":[1]}')
    assert [r.method for r in calls] == [b"POST", b"POST"]
    status, headers, body = split_response(raw_big)
    assert status == 200 and body == b""
    assert b"content-length" not in headers and b"transfer-encoding" not in headers


def test_default_limits_accept_what_kserve_accepts(loop):
    """Go's server takes a request head up to 1 MiB with any number of header lines;
    the router's defaults take 500 headers and a 200 KB header value."""
    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        try:
            async with running_router(seq_graph(m.url)) as router:
                many = b"".join(b"X-H%d: v\r\n" % i for i in range(500))
                long = b"X-Long: " + b"a" * 200_000 + b"\r\n"
                return await raw_exchange(router.port, (
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n" + many + long
                    + b"Connection: close\r\n\r\n{}"))
        finally:
            await m.close()
    status, _, body = split_response(loop.run(go()))
    assert (status, body) == (200, b'{"predictions":[1]}')


def test_zero_means_no_limit_and_negative_limits_are_refused():
    from engine.cli_router import _limit
    from engine.errors import GraphSpecError
    import sys
    assert _limit(0, "--max-body-size") == sys.maxsize
    assert _limit(10, "--max-body-size") == 10
    with pytest.raises(GraphSpecError, match="--max-headers -1: must be 0"):
        _limit(-1, "--max-headers")


def test_no_connection_cap_when_asked_as_kserve(loop):
    """max_connections_per_host=0: as Go's default transport, every concurrent call
    gets its own connection; the model answers only once all 80 are in flight
    (beyond the default cap of 64)."""
    n = 80

    async def go():
        arrived = asyncio.Event()
        seen = []

        async def barrier(request):
            seen.append(request)
            if len(seen) == n:
                arrived.set()
            await asyncio.wait_for(arrived.wait(), 10)
            return 200, {"ok": True}

        m = await ModelServer(barrier).start()
        try:
            async with running_router(seq_graph(m.url), max_connections_per_host=0) as router:
                clients = [_core.HttpClient() for _ in range(n)]
                try:
                    answers = await asyncio.gather(*(
                        c.request(_core.Endpoint(router.url("/")), b"{}", []) for c in clients))
                finally:
                    for c in clients:
                        await c.close()
        finally:
            await m.close()
        return answers

    assert [a.status for a in loop.run(go())] == [200] * n
