"""The resilience runtime (ext/backends/policy.pyx) against misbehaving backends:
flapping, slow, 503, reset, refused. Plans are built here by hand so that each test
sets exactly the policy it checks; tests/test_traffic_policy*.py cover the document
and the compiler's wiring. Jitter is seeded; every wait is bounded."""
from __future__ import annotations

import asyncio

import pytest

from engine import _core
from faultkit import FaultyModel, ResettingServer, refused_url

OK = (200, {"ok": True})
BUSY = (503, {"error": "busy"})


def plan_for(backend, name="g"):
    step = _core.PlanStep(0, "", _core.StepTarget.TARGET_BACKEND, -1, backend, None, "",
                          False, False, False, 0)
    node = _core.PlanNode(0, "root", _core.RouterType.ROUTER_SEQUENCE, (step,))
    return _core.CompiledPlan((node,), 0.0, name)


def endpoint(client, url, failures=0, open_for=0.0):
    return _core.EndpointState(_core.HttpBackend(_core.Endpoint(url), client), url, failures, open_for)


async def run(plan, n=1, timeout=0.0):
    out = []
    for _ in range(n):
        out.append(await _core.execute(plan, b'{"x":1}', _core.RunContext([], timeout)))
    return out


def policy(endpoints, **kw):
    kw.setdefault("initial_delay", 0.001)
    kw.setdefault("max_delay", 0.004)
    return _core.PolicyBackend(tuple(endpoints), site=("root", "0"), **kw)


@pytest.fixture(autouse=True)
def seeded():
    _core.seed_router_rng(1234)


def test_flapping_503_is_retried_and_never_seen(loop):
    async def body():
        flappy = await FaultyModel(lambda n: BUSY if n % 2 == 0 else OK).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, flappy.url)], max_retries=1)
            answers = await run(plan_for(pb), 50)
            assert [r.status for r in answers] == [200] * 50
            assert flappy.calls == 100 and pb.retries_total == 50
        finally:
            await client.close()
            await flappy.close()
    loop.run(body())


def test_retries_are_bounded_and_the_last_answer_is_kept(loop):
    async def body():
        down = await FaultyModel(lambda n: (503, {"error": f"busy {n}"})).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, down.url)], max_retries=3)
            (r,) = await run(plan_for(pb))
            # KServe's answer for a step's 5xx: the model's own status and body
            assert r.status == 503 and r.json() == {"error": "busy 3"}
            assert down.calls == 4 and pb.retries_total == 3
        finally:
            await client.close()
            await down.close()
    loop.run(body())


def test_4xx_is_never_retried(loop):
    async def body():
        bad = await FaultyModel(lambda n: (400, {"error": "bad input"})).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, bad.url, failures=1, open_for=60.0)], max_retries=5)
            answers = await run(plan_for(pb), 3)
            assert [r.status for r in answers] == [400] * 3
            assert bad.calls == 3 and pb.retries_total == 0
            # a 4xx is the model's answer: the breaker stays closed
            assert pb.endpoints[0].breaker_state == "closed"
        finally:
            await client.close()
            await bad.close()
    loop.run(body())


@pytest.mark.parametrize("kind", ["refused", "reset"])
def test_transport_failures_are_retried_on_the_other_endpoint(loop, kind):
    async def body():
        good = await FaultyModel(lambda n: OK).start()
        bad = await ResettingServer().start() if kind == "reset" else None
        bad_url = bad.url if bad else refused_url()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, bad_url), endpoint(client, good.url)], max_retries=1)
            answers = await run(plan_for(pb), 20)
            assert [r.status for r in answers] == [200] * 20
            # round-robin starts half the requests on the bad endpoint; each of
            # those is retried once, on the good one
            assert pb.retries_total == 10 and good.calls == 20
        finally:
            await client.close()
            await good.close()
            if bad:
                await bad.close()
    loop.run(body())


def test_without_retries_a_transport_failure_is_kserves_500(loop):
    async def body():
        client = _core.HttpClient()
        try:
            url = refused_url()
            pb = policy([endpoint(client, url)], max_retries=0)
            (r,) = await run(plan_for(pb))
            assert r.status == 500
            doc = r.json()
            assert doc["error"] == "Failed to process request" and url in doc["cause"]
        finally:
            await client.close()
    loop.run(body())


def test_a_slow_attempt_times_out_and_the_retry_succeeds(loop):
    async def body():
        slow_first = await FaultyModel(lambda n: ("slow", 2.0, 200, {"late": True}) if n == 0 else OK).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, slow_first.url)], timeout=0.05, max_retries=1)
            started = asyncio.get_running_loop().time()
            (r,) = await run(plan_for(pb))
            assert r.status == 200 and r.json() == {"ok": True}
            assert asyncio.get_running_loop().time() - started < 1.5
            assert pb.retries_total == 1
        finally:
            await client.close()
            await slow_first.close()
    loop.run(body())


def test_a_final_timeout_is_a_transport_failure(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 2.0, 200, {})).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, slow.url)], timeout=0.05, max_retries=1)
            (r,) = await run(plan_for(pb))
            assert r.status == 500 and r.json()["error"] == "Failed to process request"
            assert slow.calls == 2
        finally:
            await client.close()
            await slow.close()
    loop.run(body())


def test_the_step_timeout_wins_when_it_is_shorter(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 2.0, 200, {})).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, slow.url)], timeout=30.0)
            started = asyncio.get_running_loop().time()
            (r,) = await run(plan_for(pb), timeout=0.05)
            assert r.status == 500
            assert asyncio.get_running_loop().time() - started < 1.5
        finally:
            await client.close()
            await slow.close()
    loop.run(body())


def test_the_breaker_opens_fails_fast_probes_and_closes(loop):
    async def body():
        healthy = {"now": False}
        model = await FaultyModel(lambda n: OK if healthy["now"] else BUSY).start()
        client = _core.HttpClient()
        try:
            ep = endpoint(client, model.url, failures=3, open_for=0.2)
            pb = policy([ep])
            plan = plan_for(pb)
            answers = await run(plan, 3)
            assert [r.status for r in answers] == [503] * 3 and ep.breaker_state == "open"
            # open: at once, without touching the network
            (r,) = await run(plan)
            assert r.status == 503
            assert r.json() == {"error": "Failed to process request",
                                "cause": f"circuit open: {model.url}"}
            assert model.calls == 3 and ep.rejected_total == 1 and ep.opened_total == 1
            await asyncio.sleep(0.25)           # the open time passes
            # half-open: one probe goes through; it fails, so the breaker opens again
            (r,) = await run(plan)
            assert r.status == 503 and model.calls == 4 and ep.breaker_state == "open"
            assert ep.opened_total == 2
            await asyncio.sleep(0.25)
            healthy["now"] = True
            (r,) = await run(plan)
            assert r.status == 200 and ep.breaker_state == "closed"
            answers = await run(plan, 3)
            assert [r.status for r in answers] == [200] * 3 and model.calls == 8
        finally:
            await client.close()
            await model.close()
    loop.run(body())


def test_half_open_lets_exactly_one_call_through(loop):
    async def body():
        model = await FaultyModel(lambda n: BUSY if n == 0 else ("slow", 0.1, 200, {})).start()
        client = _core.HttpClient()
        try:
            ep = endpoint(client, model.url, failures=1, open_for=0.05)
            plan = plan_for(policy([ep]))
            await run(plan)
            assert ep.breaker_state == "open"
            await asyncio.sleep(0.08)
            answers = await asyncio.gather(*(_core.execute(plan, b"{}", _core.RunContext([], 0.0))
                                             for _ in range(3)))
            statuses = sorted(r.status for r in answers)
            assert statuses == [200, 503, 503] and model.calls == 2
        finally:
            await client.close()
            await model.close()
    loop.run(body())


def test_an_open_endpoint_is_skipped_while_another_is_closed(loop):
    async def body():
        down = await FaultyModel(lambda n: BUSY).start()
        up = await FaultyModel(lambda n: OK).start()
        client = _core.HttpClient()
        try:
            bad = endpoint(client, down.url, failures=2, open_for=60.0)
            good = endpoint(client, up.url, failures=2, open_for=60.0)
            pb = policy([bad, good], max_retries=1)
            answers = await run(plan_for(pb), 20)
            assert [r.status for r in answers] == [200] * 20
            assert bad.breaker_state == "open" and down.calls == 2 and up.calls == 20
        finally:
            await client.close()
            await down.close()
            await up.close()
    loop.run(body())


def test_round_robin_spreads_calls_evenly(loop):
    async def body():
        models = [await FaultyModel(lambda n: OK).start() for _ in range(3)]
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, m.url) for m in models])
            await run(plan_for(pb), 30)
            assert [m.calls for m in models] == [10, 10, 10]
        finally:
            await client.close()
            for m in models:
                await m.close()
    loop.run(body())


def test_least_outstanding_avoids_the_busy_endpoint(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 0.3, 200, {"who": "slow"})).start()
        fast = await FaultyModel(lambda n: OK).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, slow.url), endpoint(client, fast.url)], least_outstanding=True)
            plan = plan_for(pb)
            # one call holds the slow endpoint; with two endpoints the two choices
            # always compare both, so every later call goes to the idle one
            first = [asyncio.ensure_future(_core.execute(plan, b"{}", _core.RunContext([], 0.0)))
                     for _ in range(1)]
            while slow.calls + fast.calls == 0:
                await asyncio.sleep(0.005)
            if slow.calls == 0:      # the first call went to the fast one: hold slow now
                first.append(asyncio.ensure_future(_core.execute(plan, b"{}", _core.RunContext([], 0.0))))
                while slow.calls == 0:
                    await asyncio.sleep(0.005)
            before = fast.calls
            answers = await run(plan, 10)
            assert all(r.json() == {"ok": True} for r in answers)
            assert fast.calls - before == 10 and slow.calls == 1
            await asyncio.gather(*first)
        finally:
            await client.close()
            await slow.close()
            await fast.close()
    loop.run(body())


def test_concurrency_bound_queues_then_sheds(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 0.2, 200, {})).start()
        client = _core.HttpClient()
        try:
            limiter = _core.ServiceLimiter("model-a", 2, 1)
            plan = plan_for(policy([endpoint(client, slow.url)], limiter=limiter))
            calls = [asyncio.ensure_future(_core.execute(plan, b"{}", _core.RunContext([], 0.0)))
                     for _ in range(5)]
            answers = await asyncio.gather(*calls)
            statuses = sorted(r.status for r in answers)
            assert statuses == [200, 200, 200, 503, 503]
            shed = [r for r in answers if r.status == 503]
            assert all(r.json() == {"error": "Failed to process request", "cause": "overloaded"}
                       for r in shed)
            assert slow.max_in_flight == 2 and limiter.shed_total == 2
            assert limiter.in_flight == 0 and limiter.queued == 0
        finally:
            await client.close()
            await slow.close()
    loop.run(body())


def test_a_cancelled_waiter_leaves_the_queue(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 0.2, 200, {})).start()
        client = _core.HttpClient()
        try:
            limiter = _core.ServiceLimiter("s", 1, 1)
            plan = plan_for(policy([endpoint(client, slow.url)], limiter=limiter))
            holder = asyncio.ensure_future(_core.execute(plan, b"{}", _core.RunContext([], 0.0)))
            waiter = asyncio.ensure_future(_core.execute(plan, b"{}", _core.RunContext([], 0.0)))
            while limiter.queued == 0:
                await asyncio.sleep(0.005)
            waiter.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiter
            assert limiter.queued == 0
            (r,) = await run(plan)       # queued behind the holder, then served
            assert r.status == 200 and (await holder).status == 200
            assert limiter.in_flight == 0 and slow.calls == 2
        finally:
            await client.close()
            await slow.close()
    loop.run(body())


def test_hedge_sends_a_second_attempt_and_the_first_answer_wins(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 1.0, 200, {"who": "slow"})).start()
        fast = await FaultyModel(lambda n: (200, {"who": "fast"})).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, slow.url), endpoint(client, fast.url)], hedge_after=0.02)
            started = asyncio.get_running_loop().time()
            (r,) = await run(plan_for(pb))     # round-robin: the slow endpoint first
            assert r.json() == {"who": "fast"}
            assert asyncio.get_running_loop().time() - started < 0.8
            assert pb.hedges_total == 1
            # the losing attempt was cancelled: nothing is left outstanding
            assert all(ep.outstanding == 0 for ep in pb.endpoints)
        finally:
            await client.close()
            await slow.close()
            await fast.close()
    loop.run(body())


def test_no_hedge_when_the_first_answer_is_in_time(loop):
    async def body():
        fast = await FaultyModel(lambda n: OK).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, fast.url), endpoint(client, fast.url)], hedge_after=0.5)
            answers = await run(plan_for(pb), 5)
            assert [r.status for r in answers] == [200] * 5
            assert pb.hedges_total == 0 and fast.calls == 5
        finally:
            await client.close()
            await fast.close()
    loop.run(body())


def test_full_jitter_delays_stay_under_the_cap(loop):
    async def body():
        down = await FaultyModel(lambda n: BUSY).start()
        client = _core.HttpClient()
        try:
            # initial 10 ms, cap 25 ms: delays in [0,10), [0,20), [0,25), [0,25)
            pb = policy([endpoint(client, down.url)], max_retries=4, initial_delay=0.01, max_delay=0.025)
            started = asyncio.get_running_loop().time()
            (r,) = await run(plan_for(pb))
            elapsed = asyncio.get_running_loop().time() - started
            assert r.status == 503 and down.calls == 5
            assert elapsed < 0.08 + 1.0     # 80 ms of delays at the most, plus slack
        finally:
            await client.close()
            await down.close()
    loop.run(body())


def test_the_same_seed_gives_the_same_delays(loop):
    async def body():
        down = await FaultyModel(lambda n: BUSY).start()
        client = _core.HttpClient()
        try:
            pb = policy([endpoint(client, down.url)], max_retries=3, initial_delay=0.001)
            draws = []
            for _ in range(2):
                _core.seed_router_rng(99)
                await run(plan_for(pb))
                draws.append(_core.router_rng_below(1_000_000))
            assert draws[0] == draws[1]
        finally:
            await client.close()
            await down.close()
    loop.run(body())


def test_policy_metrics_expose_the_state(loop):
    async def body():
        down = await FaultyModel(lambda n: BUSY).start()
        client = _core.HttpClient()
        try:
            ep = endpoint(client, down.url, failures=1, open_for=60.0)
            limiter = _core.ServiceLimiter("model-a", 4, 4)
            plan = plan_for(policy([ep], max_retries=1, limiter=limiter))
            await run(plan, 2)
            text = _core.policy_metrics(plan)
            from prometheus_client.parser import text_string_to_metric_families
            samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
                       for f in text_string_to_metric_families(text) for s in f.samples}
            step = (("graph", "g"), ("node", "root"), ("step", "0"))
            # the first call opened the breaker, so its retry had nowhere to go
            assert samples[("ige_step_retries_total", step)] == 0
            epl = (("endpoint", down.url), ("graph", "g"))
            assert samples[("ige_endpoint_circuit_state", epl)] == 1
            assert samples[("ige_endpoint_circuit_opened_total", epl)] == 1
            assert samples[("ige_endpoint_circuit_rejected_total", epl)] == 1
            svc = (("graph", "g"), ("service", "model-a"))
            assert samples[("ige_service_in_flight", svc)] == 0
            assert samples[("ige_service_shed_total", svc)] == 0
        finally:
            await client.close()
            await down.close()
    loop.run(body())


def test_a_plan_without_policies_has_no_policy_metrics():
    step = _core.PlanStep(0, "", _core.StepTarget.TARGET_BACKEND, -1,
                          _core.FailingBackend("x://y", "no"), None, "", False, False, False, 0)
    plan = _core.CompiledPlan((_core.PlanNode(0, "root", 0, (step,)),), 0.0, "g")
    assert _core.policy_metrics(plan) == ""


def test_circuit_open_inside_an_ensemble_keeps_its_503(loop):
    async def body():
        down = await FaultyModel(lambda n: BUSY).start()
        up = await FaultyModel(lambda n: OK).start()
        client = _core.HttpClient()
        try:
            ep = endpoint(client, down.url, failures=1, open_for=60.0)
            steps = tuple(_core.PlanStep(i, name, _core.StepTarget.TARGET_BACKEND, -1, backend, None, "",
                                         False, False, False, 0)
                          for i, (name, backend) in enumerate(
                              [("a", policy([ep])), ("b", _core.HttpBackend(_core.Endpoint(up.url), client))]))
            node = _core.PlanNode(0, "root", _core.RouterType.ROUTER_ENSEMBLE, steps)
            plan = _core.CompiledPlan((node,), 0.0, "g")
            (first,) = await run(plan)      # a Soft step's 503 is merged, as KServe does
            assert first.status == 200 and first.json()["a"] == {"error": "busy"}
            (second,) = await run(plan)     # now open: the node fails with the breaker's 503
            assert second.status == 503
            assert second.json() == {"error": "Failed to process request", "cause": f"circuit open: {down.url}"}
        finally:
            await client.close()
            await down.close()
            await up.close()
    loop.run(body())


def test_a_cancelled_call_says_nothing_of_the_endpoint(loop):
    async def body():
        slow = await FaultyModel(lambda n: ("slow", 1.0, 200, {})).start()
        client = _core.HttpClient()
        try:
            ep = endpoint(client, slow.url, failures=1, open_for=60.0)
            plan = plan_for(policy([ep]))
            call = asyncio.ensure_future(_core.execute(plan, b"{}", _core.RunContext([], 0.0)))
            while slow.calls == 0:
                await asyncio.sleep(0.005)
            call.cancel()               # the client hung up
            with pytest.raises(asyncio.CancelledError):
                await call
            assert ep.breaker_state == "closed" and ep.failures == 0 and ep.outstanding == 0
        finally:
            await client.close()
            await slow.close()
    loop.run(body())
