"""/metrics: request and step histograms, step errors by kind, pool gauges and bytes,
parsed with prometheus_client's parser and checked against the requests sent."""
from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine import _core
from oipkit import GrpcClient, V2HttpModel, numpy_model
from routerkit import ModelServer, closed_port, raw_exchange, running_router, split_response, static
from test_grpc_router import fp32_request


async def scrape(router):
    raw = await raw_exchange(router.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status, _, body = split_response(raw)
    assert status == 200
    return bytes(body).decode()


def samples(text, metric):
    """{(sample name, frozenset(labels)): value} of one family."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == metric:
            for s in family.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def histogram(text, metric, **labels):
    """(buckets [(le, count)], sum, count) of one labelled series."""
    buckets, total, count = [], None, None
    for family in text_string_to_metric_families(text):
        if family.name != metric:
            continue
        for s in family.samples:
            rest = {k: v for k, v in s.labels.items() if k != "le"}
            if rest != labels:
                continue
            if s.name.endswith("_bucket"):
                buckets.append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_sum"):
                total = s.value
            elif s.name.endswith("_count"):
                count = s.value
    return buckets, total, count


def check_histogram(text, metric, n, **labels):
    buckets, total, count = histogram(text, metric, **labels)
    assert count == n, (metric, labels, count)
    assert buckets and buckets[-1] == (float("inf"), n)
    assert all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:]))
    assert total is not None and total > 0


def errors(text, **labels):
    return {dict(k[1])["kind"]: v for k, v in samples(text, "ige_step_errors").items()
            if all(dict(k[1]).get(n) == v2 for n, v2 in labels.items())}


def test_step_and_request_histograms_count_every_request_per_code(loop):
    async def go():
        ok = await ModelServer(static({"predictions": [1]})).start()
        bad = await ModelServer(static({"error": "no"}, status=503)).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": ok.url, "name": 'a"b\\c'},
            {"serviceUrl": bad.url, "dependency": "Soft"}]}}}
        try:
            async with running_router(graph) as router:
                for _ in range(3):
                    r = await router.post({"instances": [1]})
                    assert r.status == 503
                text = await scrape(router)
        finally:
            await ok.close()
            await bad.close()
        return text
    text = loop.run(go())
    check_histogram(text, "ige_step_duration_seconds", 3, graph="graph", node="root", step='a"b\\c', code="200")
    check_histogram(text, "ige_step_duration_seconds", 3, graph="graph", node="root", step="1", code="503")
    check_histogram(text, "ige_request_duration_seconds", 3, graph="graph", code="503", protocol="http")
    assert errors(text, step="1") == {"status": 3, "timeout": 0, "transport": 0, "circuit_open": 0, "overloaded": 0}
    assert errors(text, step='a"b\\c')["status"] == 0
    assert 'step="a\\"b\\\\c"' in text      # escaped on the wire, parsed back above
    assert samples(text, "ige_requests")[("ige_requests_total", frozenset({("graph", "graph")}))] == 3
    body = len(b'{"instances":[1]}')
    assert samples(text, "ige_request_bytes")[("ige_request_bytes_total",
                                               frozenset({("graph", "graph"), ("protocol", "http")}))] == 3 * body
    opened = samples(text, "ige_client_connections_open")
    assert sorted(opened.values()) == [1, 1]


def test_transport_and_timeout_failures_are_counted_by_kind(loop):
    async def go():
        never = asyncio.get_running_loop().create_future()

        async def hang(request):
            await never
        slow = await ModelServer(hang).start()
        refused = f"http://127.0.0.1:{closed_port()}/v1/models/m:predict"
        texts = []
        try:
            for graph in ({"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": refused}]}}},
                          {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": slow.url}]}},
                           "routerTimeouts": {"serviceClient": 1}}):
                async with running_router(graph) as router:
                    r = await router.post({"instances": [1]})
                    assert r.status == 500
                    texts.append(await scrape(router))
        finally:
            never.cancel()
            await slow.close()
        return texts
    refused_text, timeout_text = loop.run(go())
    assert errors(refused_text, step="0") == {"status": 0, "timeout": 0, "transport": 1, "circuit_open": 0, "overloaded": 0}
    check_histogram(refused_text, "ige_step_duration_seconds", 1, graph="graph", node="root", step="0", code="transport")
    assert errors(timeout_text, step="0")["timeout"] == 1
    assert errors(timeout_text, step="0")["transport"] == 0
    check_histogram(timeout_text, "ige_step_duration_seconds", 1, graph="graph", node="root", step="0", code="timeout")


def test_ensemble_steps_are_timed_each(loop):
    async def go():
        a = await ModelServer(static({"a": 1})).start()
        b = await ModelServer(static({"b": 2})).start()
        graph = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"serviceUrl": a.url, "name": "x"}, {"serviceUrl": b.url, "name": "y"}]}}}
        try:
            async with running_router(graph) as router:
                for _ in range(2):
                    assert (await router.post({"instances": [1]})).status == 200
                return await scrape(router)
        finally:
            await a.close()
            await b.close()
    text = loop.run(go())
    for step in ("x", "y"):
        check_histogram(text, "ige_step_duration_seconds", 2, graph="graph", node="root", step=step, code="200")


def test_metrics_off_records_no_step_but_every_request(loop):
    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": m.url}]}}}
        try:
            async with running_router(graph, metrics=False) as router:
                assert (await router.post({"instances": [1]})).status == 200
                return await scrape(router)
        finally:
            await m.close()
    text = loop.run(go())
    assert histogram(text, "ige_step_duration_seconds", graph="graph", node="root", step="0", code="200")[2] is None
    check_histogram(text, "ige_request_duration_seconds", 1, graph="graph", code="200", protocol="http")


def test_custom_buckets_and_their_validation(loop):
    async def go():
        m = await ModelServer(static({"predictions": [1]})).start()
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": m.url}]}}}
        try:
            async with running_router(graph, metrics_buckets="0.5,2") as router:
                assert (await router.post({"instances": [1]})).status == 200
                return await scrape(router)
        finally:
            await m.close()
    text = loop.run(go())
    buckets, _, _ = histogram(text, "ige_step_duration_seconds", graph="graph", node="root", step="0", code="200")
    assert [b for b, _ in buckets] == [0.5, 2.0, float("inf")]
    for bad in ("1,0.5", "0,1", "x", "", (1, 1)):
        with pytest.raises(ValueError):
            _core.metrics_buckets(bad)


def test_grpc_requests_are_counted_with_grpc_status_names(loop):
    async def go():
        ok = await V2HttpModel(numpy_model(lambda x: x * np.float32(2))).start()
        refused = f"http://127.0.0.1:{closed_port()}/v2/models/m/infer"
        _, req = fp32_request()
        graph = {"nodes": {"root": {"routerType": "Switch", "steps": [
            {"serviceUrl": ok.url("m"), "condition": "parameters.go"},
            {"serviceUrl": refused, "condition": "parameters.fail"}]}}}
        _, go_req = fp32_request(parameters={"go": True})
        _, fail_req = fp32_request(parameters={"fail": True})
        try:
            async with running_router(graph, grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    for _ in range(2):
                        await client.infer(go_req)
                    with pytest.raises(grpc.aio.AioRpcError):
                        await client.infer(fail_req)
                finally:
                    await client.close()
                return await scrape(router)
        finally:
            await ok.close()
    text = loop.run(go())
    check_histogram(text, "ige_request_duration_seconds", 2, graph="graph", code="OK", protocol="grpc")
    check_histogram(text, "ige_request_duration_seconds", 1, graph="graph", code="UNAVAILABLE", protocol="grpc")
    check_histogram(text, "ige_step_duration_seconds", 2, graph="graph", node="root", step="0", code="200")
    assert errors(text, step="1")["transport"] == 1
    grpc_in = samples(text, "ige_request_bytes")[("ige_request_bytes_total",
                                                  frozenset({("graph", "graph"), ("protocol", "grpc")}))]
    assert grpc_in > 0


def test_policy_refusals_are_counted_as_circuit_open_and_overloaded(loop):
    from faultkit import FaultyModel
    from test_policy_runtime import endpoint, plan_for, policy, run

    async def go():
        busy = await FaultyModel(lambda n: (503, {"error": "busy"})).start()
        slow = await FaultyModel(lambda n: ("slow", 0.05, 200, {})).start()
        client = _core.HttpClient()
        try:
            breaker = plan_for(policy([endpoint(client, busy.url, failures=2, open_for=60.0)]))
            assert [r.status for r in await run(breaker, 3)] == [503] * 3
            limited = plan_for(policy([endpoint(client, slow.url)], limiter=_core.ServiceLimiter("s", 1, 0)))
            answers = await asyncio.gather(*[_core.execute(limited, b"{}", _core.RunContext([], 0.0))
                                             for _ in range(2)])
            assert sorted(r.status for r in answers) == [200, 503]
        finally:
            await client.close()
            await busy.close()
            await slow.close()
        return breaker, limited
    breaker, limited = loop.run(go())
    stats = breaker.nodes[0].steps[0].stats
    assert stats.error_counts() == {"status": 2, "timeout": 0, "transport": 0, "circuit_open": 1, "overloaded": 0}
    assert [(code, h.count) for code, h in stats.by_code()] == [("503", 2), ("circuit_open", 1)]
    stats = limited.nodes[0].steps[0].stats
    assert stats.error_counts()["overloaded"] == 1
    assert [(code, h.count) for code, h in stats.by_code()] == [("200", 1), ("overloaded", 1)]
