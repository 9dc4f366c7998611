"""Resilience end to end (issue 10): graphs loaded with engine.load, compiled with a
TrafficPolicy or KServe's retry fields, served by the router in the test's loop (one
test runs `ige serve --policy FILE` as a process), against misbehaving models
(tests/faultkit.py). tests/test_policy_runtime.py covers the runtime with hand-built
plans; this file checks that the document, the compiler and the router put it to work.
Jitter is seeded, delays are a few milliseconds, every loop and wait is bounded."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import engine
from engine import _core
from faultkit import FaultyModel, refused_url
from routerkit import ThreadedModel, free_port, raw_exchange, running_router, split_response

OK = (200, {"ok": True})
BUSY = (503, {"error": "busy"})
FAST_RETRY = {"maxRetries": 1, "initialDelayMs": 1, "maxDelayMs": 2}


@pytest.fixture(autouse=True)
def seeded():
    _core.seed_router_rng(4321)


def flapping(n):
    """503 on every even call: a retried call always succeeds."""
    return BUSY if n % 2 == 0 else OK


def sequence(*steps, **spec):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": list(steps)}}, **spec}


def traffic(**spec):
    return engine.load_policy({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": spec})


async def statuses(router, n, body=None):
    return [(await router.post(body or {"instances": [1]})).status for _ in range(n)]


def doc(response):
    return json.loads(bytes(response.body))


def backends(plan):
    return [step.backend for node in plan.compiled.nodes for step in node.steps
            if step.backend is not None]


async def metrics(router):
    raw = await raw_exchange(router.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = split_response(raw)
    assert status == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(body.decode()) for s in f.samples}


# ---- KServe's own retry fields (PR #5386) ---------------------------------------------

def test_kserves_default_retry_and_step_retry_with_the_step_winning(loop):
    async def body():
        a = await FaultyModel(flapping).start()
        b = await FaultyModel(flapping).start()
        # fails twice, then answers: only three attempts get through
        c = await FaultyModel(lambda n: OK if n % 3 == 2 else BUSY).start()
        try:
            graph = sequence({"serviceName": "a"}, defaultRetry=FAST_RETRY)
            async with running_router(graph, {"a": a.url}) as router:
                assert await statuses(router, 10) == [200] * 10
            assert a.calls == 20
            # the step's retry replaces the default: maxRetries 0, never retried
            graph = sequence({"serviceName": "b", "retry": {"maxRetries": 0}}, defaultRetry=FAST_RETRY)
            async with running_router(graph, {"b": b.url}) as router:
                assert await statuses(router, 6) == [503, 200] * 3
            assert b.calls == 6
            graph = sequence({"serviceName": "c", "retry": {"maxRetries": 2, "initialDelayMs": 1, "maxDelayMs": 2}},
                             defaultRetry={"maxRetries": 0})
            async with running_router(graph, {"c": c.url}) as router:
                assert await statuses(router, 5) == [200] * 5
            assert c.calls == 15
        finally:
            for m in (a, b, c):
                await m.close()
    loop.run(body())


# ---- the TrafficPolicy through the router ----------------------------------------------

def test_policy_default_timeout_and_retry(loop):
    async def body():
        slow_first = await FaultyModel(lambda n: ("slow", 2.0, 200, {"late": True}) if n == 0 else OK).start()
        try:
            policy = traffic(default={"timeout": "50ms", "retry": FAST_RETRY})
            async with running_router(sequence({"serviceName": "m"}), {"m": slow_first.url},
                                      traffic=policy) as router:
                started = time.monotonic()
                r = await router.post({})
                assert r.status == 200 and doc(r) == {"ok": True}
                assert time.monotonic() - started < 1.5
            assert slow_first.calls == 2
        finally:
            await slow_first.close()
    loop.run(body())


def test_a_services_entry_with_endpoints_round_robin(loop):
    async def body():
        one, two = [await FaultyModel(lambda n: OK).start() for _ in range(2)]
        try:
            # the step's own target is never called: the entry's endpoints replace it
            policy = traffic(services={"model-a": {"endpoints": [one.url, two.url]}})
            async with running_router(sequence({"serviceName": "model-a"}), {"model-a": refused_url()},
                                      traffic=policy) as router:
                assert await statuses(router, 10) == [200] * 10
            assert (one.calls, two.calls) == (5, 5)
        finally:
            await one.close()
            await two.close()
    loop.run(body())


def test_least_outstanding_sends_calls_past_the_busy_endpoint(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 0.3, 200, {"who": "slow"})).start()
        fast = await FaultyModel(lambda n: OK).start()
        try:
            policy = traffic(services={"model-a": {"endpoints": [slow.url, fast.url],
                                                   "loadBalancer": "least-outstanding"}})
            async with running_router(sequence({"serviceName": "model-a"}), {"model-a": refused_url()},
                                      traffic=policy) as router:
                held = []
                for _ in range(20):          # until one call holds the slow endpoint
                    held.append(asyncio.ensure_future(router.post({})))
                    while slow.calls + fast.calls < len(held):
                        await asyncio.sleep(0.002)
                    if slow.calls:
                        break
                assert slow.calls == 1
                before = fast.calls
                answers = [await router.post({}) for _ in range(10)]
                assert all(doc(r) == {"ok": True} for r in answers)
                assert fast.calls - before == 10 and slow.calls == 1
                assert [r.status for r in await asyncio.gather(*held)] == [200] * len(held)
        finally:
            await slow.close()
            await fast.close()
    loop.run(body())


def test_the_breaker_opens_answers_circuit_open_and_recovers(loop):
    async def body():
        healthy = {"now": False}
        model = await FaultyModel(lambda n: OK if healthy["now"] else BUSY).start()
        try:
            policy = traffic(services={"model-a": {
                "endpoints": [model.url], "circuitBreaker": {"consecutiveFailures": 2, "openFor": "200ms"}}})
            async with running_router(sequence({"serviceName": "model-a"}), {"model-a": refused_url()},
                                      traffic=policy) as router:
                assert await statuses(router, 2) == [503, 503]
                r = await router.post({})
                assert r.status == 503
                assert doc(r) == {"error": "Failed to process request", "cause": f"circuit open: {model.url}"}
                assert model.calls == 2         # failed at once, the model never saw it
                await asyncio.sleep(0.25)       # the breaker's open time passes
                healthy["now"] = True
                assert await statuses(router, 3) == [200] * 3
                assert model.calls == 5
                samples = await metrics(router)
                ep = (("endpoint", model.url), ("graph", "graph"))
                assert samples[("ige_endpoint_circuit_state", ep)] == 0
                assert samples[("ige_endpoint_circuit_opened_total", ep)] == 1
                assert samples[("ige_endpoint_circuit_rejected_total", ep)] == 1
        finally:
            await model.close()
    loop.run(body())


def test_the_concurrency_bound_sheds_with_overloaded(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 0.3, 200, {})).start()
        try:
            policy = traffic(services={"model-a": {"concurrency": {"maxInFlight": 1, "maxQueued": 1}}})
            async with running_router(sequence({"serviceName": "model-a"}), {"model-a": slow.url},
                                      traffic=policy) as router:
                answers = await asyncio.gather(*(router.post({}) for _ in range(4)))
                assert sorted(r.status for r in answers) == [200, 200, 503, 503]
                assert all(doc(r) == {"error": "Failed to process request", "cause": "overloaded"}
                           for r in answers if r.status == 503)
                assert slow.max_in_flight == 1
                samples = await metrics(router)
                svc = (("graph", "graph"), ("service", "model-a"))
                assert samples[("ige_service_shed_total", svc)] == 2
                assert samples[("ige_service_in_flight", svc)] == 0
                assert samples[("ige_service_queued", svc)] == 0
        finally:
            await slow.close()
    loop.run(body())


def test_step_keys_by_name_hedge_and_by_index_retry(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 1.0, 200, {"who": "slow"})).start()
        fast = await FaultyModel(lambda n: (200, {"who": "fast"})).start()
        flap = await FaultyModel(flapping).start()
        try:
            policy = traffic(steps={
                "root/classifier": {"endpoints": [slow.url, fast.url], "hedge": {"after": "20ms"}},
                "root/1": {"retry": FAST_RETRY}})
            graph = sequence({"name": "classifier", "serviceName": "m"}, {"serviceName": "flap"})
            g = engine.load(graph, services={"m": refused_url(), "flap": flap.url})
            plan = g.compile(policy=policy)
            assert all(type(b) is _core.PolicyBackend for b in backends(plan))
            assert "hedge 20ms" in plan.explain() and "retry 1x 1..2ms" in plan.explain()
            async with running_router(graph, {"m": refused_url(), "flap": flap.url}, traffic=policy) as router:
                started = time.monotonic()
                r = await router.post({})       # round-robin: the slow endpoint first
                assert r.status == 200 and doc(r) == {"ok": True}
                assert time.monotonic() - started < 0.8
                assert flap.calls == 2 and fast.calls == 1
                samples = await metrics(router)
                assert samples[("ige_step_hedges_total", (("graph", "graph"), ("node", "root"),
                                                          ("step", "classifier")))] == 1
                assert samples[("ige_step_retries_total", (("graph", "graph"), ("node", "root"),
                                                           ("step", "1")))] == 1
        finally:
            for m in (slow, fast, flap):
                await m.close()
    loop.run(body())


def test_steps_inside_an_ensemble_and_a_nested_node(loop):
    async def body():
        a = await FaultyModel(flapping).start()
        b = await FaultyModel(flapping).start()
        try:
            graph = {"nodes": {
                "root": {"routerType": "Ensemble", "steps": [
                    {"name": "a", "serviceName": "a"}, {"name": "b", "nodeName": "inner"}]},
                "inner": {"routerType": "Sequence", "steps": [{"serviceName": "b"}]}}}
            policy = traffic(steps={"root/a": {"retry": FAST_RETRY}, "inner/0": {"retry": FAST_RETRY}})
            services = {"a": a.url, "b": b.url}
            plan = engine.load(graph, services=services).compile(policy=policy)
            kinds = {(node.name, step.index): type(step.backend)
                     for node in plan.compiled.nodes for step in node.steps}
            assert kinds == {("root", 0): _core.PolicyBackend, ("root", 1): type(None),
                             ("inner", 0): _core.PolicyBackend}
            async with running_router(graph, services, traffic=policy) as router:
                for _ in range(5):
                    r = await router.post({})
                    assert r.status == 200 and doc(r) == {"a": {"ok": True}, "b": {"ok": True}}
            assert (a.calls, b.calls) == (10, 10)
        finally:
            await a.close()
            await b.close()
    loop.run(body())


@pytest.mark.parametrize("dependency", ["Hard", "Soft"])
def test_dependencies_act_on_the_answer_after_retries(loop, dependency):
    async def body():
        down = await FaultyModel(lambda n: (503, {"error": f"busy {n}"})).start()
        flap = await FaultyModel(flapping).start()
        after = await FaultyModel(lambda n: (200, {"after": True})).start()
        try:
            retry = {"maxRetries": 2, "initialDelayMs": 1, "maxDelayMs": 2}
            graph = sequence({"serviceName": "down", "dependency": dependency},
                             {"serviceName": "flap", "dependency": "Hard"},
                             {"serviceName": "after"}, defaultRetry=retry)
            async with running_router(graph, {"down": down.url, "flap": flap.url, "after": after.url}) as router:
                r = await router.post({})
            assert down.calls == 3
            if dependency == "Hard":
                # the last attempt's answer stops the sequence
                assert r.status == 503 and doc(r) == {"error": "busy 2"}
                assert flap.calls == 0 and after.calls == 0
            else:
                # Soft goes on; the flapping Hard step's retry succeeded, so it goes on too
                assert r.status == 200 and doc(r) == {"after": True}
                assert flap.calls == 2 and after.calls == 1
        finally:
            for m in (down, flap, after):
                await m.close()
    loop.run(body())


def test_metrics_of_retries_and_breakers_carry_their_labels(loop):
    async def body():
        flap = await FaultyModel(flapping).start()
        try:
            policy = traffic(default={"retry": FAST_RETRY},
                             services={"model-a": {"circuitBreaker": {"consecutiveFailures": 5}}})
            graph = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
                     "metadata": {"name": "shop"}, "spec": sequence({"name": "clf", "serviceName": "model-a"})}
            async with running_router(graph, {"model-a": flap.url}, traffic=policy) as router:
                assert await statuses(router, 4) == [200] * 4
                samples = await metrics(router)
            assert samples[("ige_step_retries_total", (("graph", "shop"), ("node", "root"), ("step", "clf")))] == 4
            assert samples[("ige_step_hedges_total", (("graph", "shop"), ("node", "root"), ("step", "clf")))] == 0
            ep = (("endpoint", flap.url), ("graph", "shop"))
            assert samples[("ige_endpoint_circuit_state", ep)] == 0
            assert samples[("ige_endpoint_outstanding", ep)] == 0
            assert samples[("ige_requests_total", (("graph", "shop"),))] == 4
        finally:
            await flap.close()
    loop.run(body())


def test_no_policy_and_no_retry_fields_is_exactly_kserve(loop):
    async def body():
        flap = await FaultyModel(flapping).start()
        try:
            graph = {"nodes": {
                "root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}, {"nodeName": "ens"}]},
                "ens": {"routerType": "Ensemble", "steps": [{"name": "x", "serviceName": "m"}]}}}
            for policy in (None, {"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": {}}):
                plan = engine.load(graph, services={"m": flap.url}).compile(policy=policy)
                assert all(type(b) is not _core.PolicyBackend for b in backends(plan))
            empty = traffic()
            async with running_router(sequence({"serviceName": "m"}), {"m": flap.url}, traffic=empty) as router:
                # every 503 reaches the client; no policy metrics are exposed
                assert await statuses(router, 6) == [503, 200] * 3
                assert not any(name.startswith(("ige_step_retries", "ige_step_hedges", "ige_endpoint_",
                                                "ige_service_"))
                               for name, _ in await metrics(router))
            assert flap.calls == 6
        finally:
            await flap.close()
    loop.run(body())


# ---- the fault scenario --------------------------------------------------------

FAULT_REQUESTS = 10_000
FAULT_CLIENTS = 16


async def hammer(router, n, clients):
    """``n`` requests over ``clients`` keep-alive connections; the statuses seen."""
    seen: dict = {}
    left = [n]

    async def client():
        while left[0] > 0:
            left[0] -= 1
            status = (await router.post(b'{"instances":[1]}')).status
            seen[status] = seen.get(status, 0) + 1
    await asyncio.wait_for(asyncio.gather(*(client() for _ in range(clients))), 60)
    return seen


def test_one_of_two_endpoints_failing_half_the_time(loop):
    """With retries over both endpoints the client sees no error; without a policy
    the step's target is the flapping endpoint and every one of its 503s is seen."""
    async def body():
        steady = await FaultyModel(lambda n: OK).start()
        half = await FaultyModel(flapping).start()
        try:
            policy = traffic(default={"retry": {"maxRetries": 2, "initialDelayMs": 0, "maxDelayMs": 0}},
                             services={"model-a": {"endpoints": [steady.url, half.url]}})
            graph = sequence({"serviceName": "model-a"})
            async with running_router(graph, {"model-a": half.url}, traffic=policy) as router:
                seen = await hammer(router, FAULT_REQUESTS, FAULT_CLIENTS)
                retried = (await metrics(router))[("ige_step_retries_total", (("graph", "graph"),
                                                                               ("node", "root"), ("step", "0")))]
            assert seen == {200: FAULT_REQUESTS}
            # round-robin sends half the requests to the flapping endpoint first and it
            # fails half of those: each is retried once, on the steady one
            assert retried == half.calls // 2 and 0 < half.calls < FAULT_REQUESTS
            half.calls = 0
            async with running_router(graph, {"model-a": half.url}) as router:
                seen = await hammer(router, FAULT_REQUESTS, FAULT_CLIENTS)
            assert seen == {200: FAULT_REQUESTS // 2, 503: FAULT_REQUESTS // 2}
        finally:
            await steady.close()
            await half.close()
    loop.run(body())


# ---- the command line ------------------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    class Files:
        pass
    f = Files()
    f.policy = tmp_path / "policy.yaml"
    f.policy.write_text(yaml.safe_dump({"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy", "spec": {
        "default": {"timeout": "2s", "retry": {"maxRetries": 1, "initialDelayMs": 1, "maxDelayMs": 2}},
        "services": {"model-a": {"circuitBreaker": {"consecutiveFailures": 5, "openFor": "10s"}}}}}))
    f.tmp = tmp_path
    return f


def test_explain_plan_shows_the_policy_line(files):
    graph = files.tmp / "g.yaml"
    graph.write_text(yaml.safe_dump(sequence({"name": "clf", "serviceName": "model-a"})))
    out = subprocess.run([sys.executable, "-m", "engine", "explain", "--plan", str(graph), "--policy",
                          str(files.policy)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "policy: timeout 2s, retry 1x 1..2ms, breaker 5/10s, service model-a" in out.stdout


def test_serve_with_a_policy_file_retries_a_flapping_model(files):
    calls = [0]

    def flap(request):
        calls[0] += 1
        return (503, {"error": "busy"}) if calls[0] % 2 else (200, {"predictions": [1]})

    with ThreadedModel(flap) as model:
        graph = files.tmp / "served.yaml"
        graph.write_text(yaml.safe_dump(sequence({"serviceName": "model-a"})))
        services = files.tmp / "services.yaml"
        services.write_text(f"model-a: {model.url}\n")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", str(graph), "--services", str(services),
                                 "--policy", str(files.policy), "--host", "127.0.0.1", "--http-port", str(port),
                                 "--grpc-port", "0", "--drain-seconds", "0"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        try:
            from test_serve_cli import post, wait_ready
            wait_ready(port, proc)
            answers = [post(port, {"instances": [1]}) for _ in range(5)]
            assert answers == [(200, {"predictions": [1]})] * 5
            assert calls[0] == 10
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=20)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate(timeout=5)


def test_a_grpc_step_is_retried_and_timed_out_per_attempt(loop):
    """The policy sits behind the Backend seam, so gRPC steps get it too: an
    UNAVAILABLE answer (503) is retried, and a slow first attempt is cut by the
    per-attempt timeout."""
    import grpc
    import numpy as np
    from engine.oip import InferRequest, from_numpy
    from oipkit import GrpcModel, numpy_model

    double = numpy_model(lambda x: x * np.float32(2))

    calls = []

    async def flaky_then_slow(req):
        calls.append(req)
        if len(calls) == 1:
            return grpc.StatusCode.UNAVAILABLE, "warming up"     # a model's own answer: 503
        if len(calls) == 2:
            await asyncio.sleep(2.0)
        return double(req)

    async def go():
        model = await GrpcModel(flaky_then_slow).start()
        url = model.url("m")
        try:
            await attempt(url)
        finally:
            await model.close()

    async def attempt(url):
        graph = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}})
        plan = graph.compile(policy={"apiVersion": "ige/v1alpha1", "kind": "TrafficPolicy",
                                     "metadata": {"name": "grpc"},
                                     "spec": {"default": {"timeout": "200ms",
                                                          "retry": {"maxRetries": 2, "initialDelayMs": 1,
                                                                    "maxDelayMs": 2}}}})
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        try:
            started = asyncio.get_running_loop().time()
            r = await plan.infer(InferRequest("g", [from_numpy("x", x)]))
            assert r.status == 200
            np.testing.assert_array_equal(r.body.as_numpy("output0"), x * 2)
            assert asyncio.get_running_loop().time() - started < 1.5
            (step,) = plan.compiled.nodes[0].steps
            assert step.backend.retries_total == 2 and len(calls) == 3
        finally:
            await plan.aclose()
    loop.run(go())
