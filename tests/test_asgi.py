"""engine.asgi.GraphASGI under uvicorn, mounted in FastAPI, and in process through
httpx's ASGITransport: it answers as the router does (the router runs beside it in the
same test, on the same graph and models), and lifespan closes the plan's pools."""
from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from engine import Policy
from engine.asgi import GraphASGI

from routerkit import ModelServer, running_router

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")


def doubled(payload):
    """An in-process step: {"instances": [x...]} -> {"instances": [2x...]}."""
    return {"instances": [2 * x for x in payload["instances"]]}


def graph(url_sum, url_fail, url_text):
    return {"nodes": {
        "root": {"routerType": "Switch", "steps": [
            {"nodeName": "ok", "condition": "instances"},
            {"nodeName": "soft", "condition": "soft"},
            {"nodeName": "hard", "condition": "hard"},
            {"serviceUrl": url_text, "condition": "text"},
        ]},
        "ok": {"routerType": "Sequence", "steps": [
            {"serviceName": "double"},
            {"serviceUrl": url_sum, "data": "$response"},
        ]},
        "soft": {"routerType": "Sequence", "steps": [
            {"serviceUrl": url_fail},
            {"serviceUrl": url_sum, "data": "$request"},
        ]},
        "hard": {"routerType": "Sequence", "steps": [
            {"serviceUrl": url_fail, "dependency": "Hard"},
            {"serviceUrl": url_sum},
        ]},
    }}


def sum_model(request):
    import orjson
    doc = orjson.loads(request.body)
    headers = {k.lower(): v for k, v in request.headers}
    return 200, {"predictions": [sum(doc.get("instances", []))],
                 "trace": headers.get(b"x-trace-id", b"").decode()}


CASES = [
    ({"instances": [1, 2, 3]}, {}),                        # success through both steps
    ({"instances": [1], "soft": 1}, {}),                   # Switch takes ok first
    ({"soft": 1, "instances_": [4]}, {}),                  # Soft failure: goes on
    ({"hard": 1}, {}),                                     # Hard failure: its answer
    ({"nothing": 1}, {}),                                  # Switch miss: KServe's 404
    ({"text": 1}, {}),                                     # a non-JSON answer
    ({"instances": [5]}, {"X-Trace-Id": "abc"}),           # a propagated header
]


@contextlib.asynccontextmanager
async def models():
    servers = [ModelServer(sum_model), ModelServer(lambda r: (503, {"error": "overloaded"})),
               ModelServer(lambda r: (200, b"plain words"))]
    for s in servers:
        await s.start()
    try:
        yield [s.url for s in servers]
    finally:
        for s in servers:
            await s.close()


@contextlib.asynccontextmanager
async def uvicorn_serving(app, **config):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", loop="none", **config))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(1000):      # bounded: uvicorn has no started event
            if server.started or task.done():
                break
            await asyncio.sleep(0.005)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def answer(r):
    return r.status_code, r.headers.get("content-type"), r.content


POLICY = dict(propagate_headers="X-Trace.*")


def test_answers_like_the_router_under_uvicorn(loop):
    async def go():
        async with models() as urls:
            doc = graph(*urls)
            services = {"double": doubled}
            app = GraphASGI(doc, services=services, policy=Policy(**POLICY))
            async with running_router(doc, services=services, reserved_paths="kserve",
                                      **POLICY) as router, \
                    uvicorn_serving(app, lifespan="on") as base, \
                    httpx.AsyncClient() as client:
                for body, headers in CASES:
                    want = answer(await client.post(router.url(), json=body, headers=headers))
                    for path in ("/v1/models/graph:predict", "/anything/else"):
                        got = answer(await client.post(base + path, json=body, headers=headers))
                        assert got == want, (body, path)
                statuses = [answer(await client.post(base, json=b))[0] for b, _ in CASES]
                plan = app.plan
            # lifespan shutdown closed the plan's pools
            assert plan.http_client.closed
            assert app.plan is None
        return statuses, want

    statuses, last = loop.run(go())
    assert statuses == [200, 200, 200, 503, 404, 200, 200]
    assert b'"trace":"abc"' in last[2]


def test_bodies_statuses_and_types(loop):
    async def go():
        async with models() as urls:
            app = GraphASGI(graph(*urls), services={"double": doubled}, policy=Policy(**POLICY))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:
                ok = await client.post("/", json={"instances": [1, 2, 3]},
                                       headers={"X-Trace-Id": "t1"})
                miss = await client.put("/x", json={"nothing": 1})
                hard = await client.post("/", json={"hard": 1})
                text = await client.post("/", json={"text": 1})
                get = await client.get("/", params={"q": 1})
            await app.aclose()
            return ok, miss, hard, text, get

    ok, miss, hard, text, get = loop.run(go())
    assert ok.status_code == 200 and ok.json() == {"predictions": [12], "trace": "t1"}
    assert ok.headers["content-type"] == "application/json"
    assert miss.status_code == 404
    assert miss.json() == {"error": "Failed to process request",
                           "cause": "None of the routes matched with the switch condition"}
    assert hard.status_code == 503 and hard.json() == {"error": "overloaded"}
    assert text.status_code == 200 and text.content == b"plain words"
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    # a GET with no body is a request like any other: the graph's Switch misses
    assert get.status_code == 404


def test_mounted_in_fastapi_beside_a_route(loop):
    fastapi = pytest.importorskip("fastapi")

    async def go():
        async with models() as urls:
            graph_app = GraphASGI(graph(*urls), services={"double": doubled})

            @contextlib.asynccontextmanager
            async def lifespan(_app):
                yield
                await graph_app.aclose()      # mounted apps get no lifespan events

            app = fastapi.FastAPI(lifespan=lifespan)

            @app.get("/health")
            def health():
                return {"ok": True}

            app.mount("/graph", graph_app)
            plan = graph_app.plan
            async with uvicorn_serving(app, lifespan="on") as base, httpx.AsyncClient() as client:
                health_r = await client.get(base + "/health")
                graph_r = await client.post(base + "/graph/v1/models/g:predict",
                                            json={"instances": [1, 2]})
                root_r = await client.post(base + "/graph", json={"instances": [1]},
                                           follow_redirects=True)
            return health_r, graph_r, root_r, plan

    health_r, graph_r, root_r, plan = loop.run(go())
    assert health_r.json() == {"ok": True}
    assert graph_r.status_code == 200 and graph_r.json()["predictions"] == [6]
    assert root_r.status_code == 200 and root_r.json()["predictions"] == [2]
    assert plan.http_client.closed


def test_body_limit_is_413(loop):
    async def go():
        app = GraphASGI({"nodes": {"root": {"routerType": "Sequence",
                                            "steps": [{"serviceName": "echo"}]}}},
                        services={"echo": lambda p: p}, max_body_size=16)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://graph") as client:
            small = await client.post("/", content=b'{"a":1}')
            big = await client.post("/", content=b"x" * 17)

            async def chunks():
                for _ in range(4):
                    yield b"xxxxxx"
            streamed = await client.post("/", content=chunks())
        await app.aclose()
        return small, big, streamed

    small, big, streamed = loop.run(go())
    assert small.status_code == 200 and small.json() == {"a": 1}
    assert big.status_code == 413 and big.json() == {"error": "Request Entity Too Large"}
    assert streamed.status_code == 413


def test_client_disconnect_cancels_the_graph_run(loop):
    async def go():
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def hang(payload):
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise

        app = GraphASGI({"nodes": {"root": {"routerType": "Sequence",
                                            "steps": [{"serviceName": "hang"}]}}},
                        services={"hang": hang})
        disconnect = asyncio.Event()
        messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

        async def receive():
            if messages:
                return messages.pop(0)
            await disconnect.wait()
            return {"type": "http.disconnect"}

        sent = []

        async def send(message):
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/", "headers": [],
                 "query_string": b"", "asgi": {"version": "3.0"}}
        call = asyncio.ensure_future(app(scope, receive, send))
        await asyncio.wait_for(started.wait(), 5)
        disconnect.set()
        await asyncio.wait_for(call, 5)
        await asyncio.wait_for(cancelled.wait(), 5)
        await app.aclose()
        return sent

    assert loop.run(go()) == []        # nothing is answered to a client that left


def test_lifespan_startup_compiles_again_after_shutdown(loop):
    async def go():
        app = GraphASGI({"nodes": {"root": {"routerType": "Sequence",
                                            "steps": [{"serviceName": "echo"}]}}},
                        services={"echo": lambda p: p})
        for _ in range(2):
            events = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
            sent = []

            async def receive():
                return events.pop(0)

            async def send(message):
                sent.append(message["type"])
                if message["type"] == "lifespan.startup.complete":
                    assert app.plan is not None

            await app({"type": "lifespan"}, receive, send)
            assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
            assert app.plan is None

    loop.run(go())


def test_embedding_doc_plan_example(capsys):
    """docs/embedding.md's Plan.infer example runs and prints what it says."""
    import re
    from pathlib import Path
    src = (Path(__file__).resolve().parent.parent / "docs" / "embedding.md").read_text()
    code = re.search(r"```python\n(.*?)```", src, re.S).group(1)
    exec(compile(code, "docs/embedding.md", "exec"), {})
    assert capsys.readouterr().out.strip() == re.search(r"^# (200 .*)$", code, re.M).group(1)
