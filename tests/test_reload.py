"""Hot reload: a new graph (and policy) is loaded, validated and compiled off the
request path and swapped in; requests already running finish on the old plan, new
ones start on the new one, the backend pools are kept; an invalid file changes
nothing but a counter and a log record."""
from __future__ import annotations

import asyncio
import http.client
import logging
import os
import signal
import subprocess
import sys
import time

import orjson
import pytest

import engine
from engine import Policy
from routerkit import ModelServer, ThreadedModel, free_port, raw_exchange, running_router, split_response, static


def graph_for(url: str, name: str = "step") -> bytes:
    return orjson.dumps({"nodes": {"root": {"routerType": "Sequence",
                                            "steps": [{"serviceUrl": url, "name": name}]}}})


def write(path, data: bytes) -> None:
    """Replace the file at once (write beside it, rename), as editors and Kubernetes do."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


async def scrape(port: int) -> str:
    raw = await raw_exchange(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return split_response(raw)[2].decode()


def loader(path):
    def load():
        return engine.load(str(path)), Policy()
    return load


def test_rewrites_under_load_switch_answers_and_drop_nothing(loop, tmp_path):
    path = tmp_path / "graph.json"

    async def go():
        a = await ModelServer(static({"model": "a"})).start()
        b = await ModelServer(static({"model": "b"})).start()
        write(path, graph_for(a.url))
        results: list = []          # (monotonic time, status, body)
        stop = asyncio.Event()
        try:
            async with running_router(
                    orjson.loads(path.read_bytes()),
                    options={"reload_source": loader(path), "watch_files": (str(path),),
                             "watch_interval": 0.02}) as router:
                async def client():
                    while not stop.is_set():
                        try:
                            r = await router.post(b'{"x": 1}')
                            results.append((time.monotonic(), r.status, bytes(r.body)))
                        except Exception as e:      # a dropped request is a failure here
                            results.append((time.monotonic(), -1, repr(e).encode()))
                clients = [asyncio.ensure_future(client()) for _ in range(4)]
                client_before = router.instance.plan.http_client
                switches = []
                expect = b'{"model":"a"}'
                for i in range(20):
                    if i % 5 == 4:
                        # an invalid graph: nothing changes, the error is counted
                        errors = router.instance.app.reload_errors
                        write(path, b'{"nodes": {"root": {"routerType": "Sequence", "steps": []}}}')
                        await wait_for(lambda: router.instance.app.reload_errors == errors + 1)
                        await asyncio.sleep(0.05)
                        assert results[-1][2] == expect
                        continue
                    target, expect = (b, b'{"model":"b"}') if expect == b'{"model":"a"}' else (a, b'{"model":"a"}')
                    written = time.monotonic()
                    write(path, graph_for(target.url))
                    await wait_for(lambda: any(t > written and body == expect for t, _, body in results[-8:]))
                    first = next(t for t, _, body in reversed(results) if body == expect)
                    switches.append(first - written)
                    # every answer after the switch is the new graph's
                    await asyncio.sleep(0.05)
                    later = [body for t, _, body in results if t > first + 0.01]
                    assert later and set(later) == {expect}
                stop.set()
                await asyncio.gather(*clients)
                metrics = await scrape(router.port)
                assert router.instance.plan.http_client is client_before
        finally:
            await a.close()
            await b.close()
        return results, switches, metrics

    results, switches, metrics = loop.run(go())
    statuses = {status for _, status, _ in results}
    assert statuses == {200}, [r for r in results if r[1] != 200][:3]
    assert len(results) > 200
    assert len(switches) == 16 and max(switches) < 1.0
    assert 'ige_graph_reloads_total{result="ok"} 16\n' in metrics
    assert 'ige_graph_reloads_total{result="error"} 4\n' in metrics


async def wait_for(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def test_a_request_running_during_a_swap_finishes_on_its_plan(loop, tmp_path):
    path = tmp_path / "graph.json"

    async def go():
        started = asyncio.Event()
        release = asyncio.Event()

        async def slow(request):
            started.set()
            await release.wait()
            return 200, {"model": "slow"}

        a = await ModelServer(slow).start()
        b = await ModelServer(static({"model": "b"})).start()
        write(path, graph_for(a.url))
        try:
            async with running_router(orjson.loads(path.read_bytes()),
                                      options={"reload_source": loader(path)}) as router:
                old = router.instance.plan
                running = asyncio.ensure_future(router.post(b"{}"))
                await started.wait()
                write(path, graph_for(b.url))
                assert await router.instance.reload()
                assert router.instance.plan is not old
                fresh = await router.post(b"{}")
                release.set()
                first = await running
        finally:
            await a.close()
            await b.close()
        return first, fresh

    first, fresh = loop.run(go())
    assert (first.status, bytes(first.body)) == (200, b'{"model":"slow"}')
    assert (fresh.status, bytes(fresh.body)) == (200, b'{"model":"b"}')


def test_an_invalid_reload_logs_its_field_paths_and_keeps_serving(loop, tmp_path, caplog):
    path = tmp_path / "graph.json"

    async def go():
        a = await ModelServer(static({"model": "a"})).start()
        write(path, graph_for(a.url))
        try:
            async with running_router(orjson.loads(path.read_bytes()),
                                      options={"reload_source": loader(path)}) as router:
                write(path, b'{"nodes": {"root": {"routerType": "Sequence", "steps": [{"nodeName": "gone"}]}}}')
                with caplog.at_level(logging.ERROR, logger="engine.server"):
                    assert not await router.instance.reload()
                r = await router.post(b"{}")
        finally:
            await a.close()
        return r

    r = loop.run(go())
    assert (r.status, bytes(r.body)) == (200, b'{"model":"a"}')
    (record,) = [rec for rec in caplog.records if rec.getMessage().startswith("reload failed")]
    assert any("spec.nodes.root.steps[0].nodeName" in d for d in record.diagnostics)


def test_the_policy_file_reloads_too(loop, tmp_path):
    # a TrafficPolicy's data path (needs no switch) appears on reload
    path, policy_path = tmp_path / "graph.json", tmp_path / "policy.yaml"

    async def go():
        a = await ModelServer(lambda req: (200, req.body)).start()
        write(path, graph_for(a.url, "echo"))
        write(policy_path, b"apiVersion: ige/v1alpha1\nkind: TrafficPolicy\nspec: {}\n")

        def load():
            return engine.load(str(path)), Policy(traffic=engine.load_policy(str(policy_path)))

        try:
            async with running_router(orjson.loads(path.read_bytes()),
                                      options={"reload_source": load}) as router:
                before = await router.post(b'{"keep": {"this": 1}}')
                write(policy_path, b"apiVersion: ige/v1alpha1\nkind: TrafficPolicy\n"
                                   b"spec: {steps: {root/echo: {data: $request.keep}}}\n")
                assert await router.instance.reload()
                after = await router.post(b'{"keep": {"this": 1}}')
        finally:
            await a.close()
        return before, after

    before, after = loop.run(go())
    assert bytes(before.body) == b'{"keep": {"this": 1}}'
    assert bytes(after.body) == b'{"this": 1}'


def test_a_graph_app_swap_keeps_its_buckets():
    g = engine.load(orjson.loads(graph_for("http://127.0.0.1:1/v1/models/m:predict")))
    plan = g.compile()
    app = engine._core.GraphApp(plan.compiled, plan.propagation)
    other = g.compile(policy=Policy(metrics_buckets="0.1,1"))
    with pytest.raises(ValueError, match="buckets"):
        app.swap(other.compiled, other.propagation)
    same = g.compile(reuse=plan)
    assert same.http_client is plan.http_client
    app.swap(same.compiled, same.propagation)
    assert app.plan is same.compiled and app.reloads == 1


# ---- ige serve: SIGHUP, --watch, --workers ---------------------------------------------

def get(port: int, path: str = "/v1/models/g:predict", body: bytes = b"{}"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def serve(path, *extra):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(path), "--http-port", str(port),
                             "--grpc-port", "0", "--drain-seconds", "0", "--host", "127.0.0.1", *extra],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            get(port, "/readyz", None)
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(proc.stderr.read().decode()[-2000:])
            time.sleep(0.05)


def until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


@pytest.mark.parametrize("workers", [1, 2])
def test_sighup_reloads_every_worker(tmp_path, workers):
    path = tmp_path / "graph.json"
    with ThreadedModel(static({"model": "a"})) as a, ThreadedModel(static({"model": "b"})) as b:
        write(path, graph_for(a.url))
        proc, port = serve(path, "--workers", str(workers))
        try:
            assert get(port) == (200, b'{"model":"a"}')
            write(path, graph_for(b.url))
            proc.send_signal(signal.SIGHUP)
            # every new connection (the kernel picks a worker per connection) gets b
            until(lambda: all(get(port) == (200, b'{"model":"b"}') for _ in range(20 * workers)))
            write(path, b"nodes: [not a graph")
            proc.send_signal(signal.SIGHUP)
            until(lambda: 'ige_graph_reloads_total{result="error"} 1' in get(port, "/metrics", None)[1].decode())
            assert all(get(port) == (200, b'{"model":"b"}') for _ in range(10))
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()[-2000:]
        assert b"reload failed" in err


def test_watch_reloads_when_the_file_changes(tmp_path):
    path = tmp_path / "graph.json"
    with ThreadedModel(static({"model": "a"})) as a, ThreadedModel(static({"model": "b"})) as b:
        write(path, graph_for(a.url))
        proc, port = serve(path, "--watch")
        try:
            assert get(port) == (200, b'{"model":"a"}')
            write(path, graph_for(b.url))
            until(lambda: get(port) == (200, b'{"model":"b"}'))
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
        assert proc.returncode == 0
