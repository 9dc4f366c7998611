"""The router with gRPC backends and its gRPC front end, on loopback."""
from __future__ import annotations

import asyncio

import grpc
import numpy as np
import orjson
import pytest

import engine
from engine.backends import url_problem
from engine.oip import InferRequest, InferResponse, from_numpy, join
from engine.server.grpc_front import _bool_field, _str_field, parse_name_version
from oipkit import GrpcClient, GrpcModel, V2HttpModel, numpy_model
from routerkit import ModelServer, closed_port, running_router, static


def seq(*urls, **extra):
    steps = [{"serviceUrl": u, **extra} for u in urls]
    for s in steps[1:]:
        s.setdefault("data", "$response")
    return {"nodes": {"root": {"routerType": "Sequence", "steps": steps}}}


def fp32_request(n=16, name="x", **kw):
    x = (np.arange(n, dtype=np.float32) * np.float32(0.37)).reshape(2, n // 2)
    return x, InferRequest("graph", [from_numpy(name, x)], **kw)


def test_grpc_sequence_passes_outputs_as_next_inputs(loop):
    async def go():
        a = await GrpcModel(numpy_model(lambda x: x * np.float32(2))).start()
        b = await GrpcModel(numpy_model(lambda x: x + np.float32(1), output="y")).start()
        x, req = fp32_request(id="req-7", parameters={"trace": "on", "n": 3})
        try:
            async with running_router(seq(a.url("double"), b.url("inc")), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    resp = await client.infer(req, metadata=(("x-request-id", "abc"),))
                finally:
                    await client.close()
        finally:
            await a.close()
            await b.close()
        assert [t.name for t in resp.outputs] == ["y"]
        np.testing.assert_array_equal(resp.as_numpy("y"), x * np.float32(2) + np.float32(1))
        assert resp.as_numpy("y").dtype == np.float32 and resp.as_numpy("y").shape == (2, 8)
        assert resp.id == "req-7"
        # step 2 got step 1's outputs as inputs, with id and parameters kept
        second = b.requests[0]
        assert second.model_name == "inc"
        assert [(t.name, t.datatype, t.shape) for t in second.inputs] == [("output0", "FP32", (2, 8))]
        assert second.id == "req-7" and second.parameters == {"trace": "on", "n": 3}
        assert a.requests[0].model_name == "double"
    loop.run(go())


def test_v1_http_front_end_reaches_grpc_models_as_v2_json(loop):
    async def go():
        m = await GrpcModel(numpy_model(lambda x: x * np.int64(3))).start()
        body = {"inputs": [{"name": "x", "shape": [3], "datatype": "INT64", "data": [1, 2, -5]}]}
        try:
            async with running_router(seq(m.url())) as router:
                ok = await router.post(body)
                bad = await router.post({"instances": [[1, 2]]})
        finally:
            await m.close()
        assert ok.status == 200
        doc = orjson.loads(ok.body)
        assert doc["outputs"] == [{"name": "output0", "datatype": "INT64", "shape": [3],
                                   "data": [3, 6, -15]}]
        assert bad.status == 400 and b"neither a v2 inference request" in bytes(bad.body)
    loop.run(go())


def test_grpc_statuses_map_to_http_like_statuses(loop):
    answers = {"nf": (grpc.StatusCode.NOT_FOUND, "no such model"),
               "bad": (grpc.StatusCode.INVALID_ARGUMENT, "shape"),
               "busy": (grpc.StatusCode.UNAVAILABLE, "overloaded"),
               "boom": (grpc.StatusCode.INTERNAL, "exploded")}

    async def go():
        m = await GrpcModel(lambda req: answers[req.model_name]).start()
        _, req = fp32_request()
        out = {}
        try:
            for name in answers:
                async with running_router(seq(m.url(name))) as router:
                    out[name] = await router.post(req.to_json())
        finally:
            await m.close()
        return out

    out = loop.run(go())
    assert {k: r.status for k, r in out.items()} == {"nf": 404, "bad": 400, "busy": 503, "boom": 500}
    assert orjson.loads(out["busy"].body) == {"error": "UNAVAILABLE: overloaded"}


def test_soft_failure_goes_on_hard_failure_stops(loop):
    async def go():
        failing = await GrpcModel(lambda req: (grpc.StatusCode.NOT_FOUND, "gone")).start()
        ok = await GrpcModel(numpy_model(lambda x: x)).start()
        _, req = fp32_request()
        try:
            graph_soft = seq(failing.url(), ok.url())
            graph_soft["nodes"]["root"]["steps"][1]["data"] = "$request"
            async with running_router(graph_soft) as router:
                soft = await router.post(req.to_json())
            graph_hard = seq(failing.url(), ok.url(), dependency="Hard")
            async with running_router(graph_hard) as router:
                hard = await router.post(req.to_json())
        finally:
            await failing.close()
            await ok.close()
        return soft, hard, len(ok.requests)

    soft, hard, calls = loop.run(go())
    assert soft.status == 200 and hard.status == 404 and calls == 1


def test_grpc_front_end_error_codes(loop):
    async def go():
        never = asyncio.get_running_loop().create_future()

        async def slow(req):
            await never
        slow_model = await GrpcModel(slow).start()
        nf = await GrpcModel(lambda req: (grpc.StatusCode.NOT_FOUND, "gone")).start()
        boom = await GrpcModel(lambda req: (grpc.StatusCode.INTERNAL, "exploded")).start()
        v2_bad = await V2HttpModel(lambda req: (400, "wrong shape")).start()
        _, req = fp32_request()
        codes = {}
        graphs = {
            "internal": seq(boom.url()),
            "v2_bad": seq(v2_bad.url()),
            "refused": seq(f"grpc://127.0.0.1:{closed_port()}/m"),
            "deadline": {**seq(slow_model.url()), "routerTimeouts": {"serviceClient": 1}},
            "not_found": seq(nf.url()),
            "switch_miss": {"nodes": {"root": {"routerType": "Switch", "steps": [
                {"serviceUrl": nf.url(), "condition": "parameters.nothing"}]}}},
        }
        try:
            for name, g in graphs.items():
                async with running_router(g, grpc=True) as router:
                    client = GrpcClient(router.grpc_port)
                    try:
                        await client.infer(req)
                    except grpc.aio.AioRpcError as e:
                        codes[name] = (e.code(), e.details())
                    try:
                        await client.call("ModelInfer", b"\x0a\xff")
                    except grpc.aio.AioRpcError as e:
                        codes["garbage"] = (e.code(), e.details())
                    finally:
                        await client.close()
        finally:
            never.cancel()
            for m in (slow_model, nf, boom, v2_bad):
                await m.close()
        return codes

    codes = loop.run(go())
    assert codes["refused"][0] == grpc.StatusCode.UNAVAILABLE
    assert codes["deadline"][0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert codes["not_found"] == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND: gone")
    assert codes["switch_miss"] == (grpc.StatusCode.NOT_FOUND,
                                    "None of the routes matched with the switch condition")
    assert codes["garbage"][0] == grpc.StatusCode.INVALID_ARGUMENT
    assert codes["internal"] == (grpc.StatusCode.INTERNAL, "INTERNAL: exploded")
    assert codes["v2_bad"] == (grpc.StatusCode.INVALID_ARGUMENT, "wrong shape")


def test_health_and_metadata_rpcs(loop):
    async def go():
        g = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
             "metadata": {"name": "mygraph"}, "spec": seq("http://127.0.0.1:1/v1/models/m:predict")}
        async with running_router(g, grpc=True) as router:
            client = GrpcClient(router.grpc_port)
            try:
                live = await client.call("ServerLive", b"")
                ready = await client.call("ServerReady", b"")
                model_ready = await client.call("ModelReady", _str_field(1, "mygraph"))
                meta = await client.call("ServerMetadata", b"")
                model_meta = await client.call("ModelMetadata", _str_field(1, "x"))
                router.instance.app.start_draining()
                draining = await client.call("ServerReady", b"")
            finally:
                await client.close()
        return live, ready, model_ready, meta, model_meta, draining

    live, ready, model_ready, meta, model_meta, draining = loop.run(go())
    assert live == ready == model_ready == _bool_field(1, True) == b"\x08\x01"
    assert draining == b""
    assert parse_name_version(meta)[0] == "inference-graph-engine"
    assert parse_name_version(model_meta) == ("mygraph", "")


def test_parse_name_version_rejects_truncation():
    assert parse_name_version(_str_field(1, "a") + _str_field(2, "7") + b"\x18\x05") == ("a", "7")
    with pytest.raises(engine.BadRequestError):
        parse_name_version(b"\x0a\x05ab")


def test_grpc_urls_are_accepted_by_validation():
    assert url_problem("grpc://model.ns:9000/resnet") is None
    assert "grpc://" in url_problem("grpc://model.ns:9000/")
    g = engine.load(seq("grpc://model.ns:9000/resnet", "grpc://h:1/"))
    warnings = [d for d in g.validate() if d.severity == "warning"]
    assert any("steps[1]" in str(d) for d in warnings) and not any("steps[0]" in str(d) for d in warnings)


def test_service_name_resolves_to_grpc_target(loop):
    async def go():
        m = await GrpcModel(numpy_model(lambda x: -x)).start()
        g = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "neg"}]}}}
        _, req = fp32_request()
        try:
            async with running_router(g, services={"neg": m.url("neg")}, grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    resp = await client.infer(req)
                finally:
                    await client.close()
        finally:
            await m.close()
        np.testing.assert_array_equal(resp.as_numpy("output0"), -req.as_numpy("x"))
        assert m.requests[0].model_name == "neg"
    loop.run(go())


def test_grpc_front_end_stops_with_the_router_and_counts_requests(loop):
    async def go():
        m = await GrpcModel(numpy_model(lambda x: x)).start()
        _, req = fp32_request()
        try:
            async with running_router(seq(m.url()), grpc=True) as router:
                port = router.grpc_port
                client = GrpcClient(port)
                try:
                    await client.infer(req)
                    total = router.instance.app.requests_total
                finally:
                    await client.close()
        finally:
            await m.close()
        client = GrpcClient(port)
        try:
            await client.call("ServerLive", b"", timeout=2)
        except grpc.aio.AioRpcError as e:
            code = e.code()
        else:
            code = grpc.StatusCode.OK
        finally:
            await client.close()
        return total, code

    total, code = loop.run(go())
    assert total == 1
    assert code == grpc.StatusCode.UNAVAILABLE


def test_grpc_backend_answers_views_of_the_received_message(loop):
    from engine import _core
    from engine.backends.grpc import ChannelPool, GrpcBackend

    async def go():
        m = await GrpcModel(numpy_model(lambda x: x + 1)).start()
        pool = ChannelPool()
        backend = _core.DelegateBackend(GrpcBackend(m.url(), pool), m.url())
        x, req = fp32_request(n=4096)
        try:
            r = await backend.invoke(req, _core.RunContext([], 5.0))
        finally:
            await pool.aclose()
            await m.close()
        return x, r

    x, r = loop.run(go())
    assert "output0" in repr(r)
    out = r.body.tensor("output0")
    # the tensor is a slice of the whole received ModelInferResponse, not a copy
    assert isinstance(out.data, memoryview) and type(out.data.obj) is bytes
    assert len(out.data.obj) > out.data.nbytes == x.nbytes
    assert np.shares_memory(r.body.as_numpy("output0"), np.frombuffer(out.data.obj, np.uint8))
    np.testing.assert_array_equal(r.body.as_numpy("output0"), x + 1)


def test_client_deadline_bounds_backend_calls(loop):
    async def go():
        m = await GrpcModel(numpy_model(lambda x: x)).start()
        _, req = fp32_request()
        try:
            async with running_router(seq(m.url(), m.url()), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    await client.infer(req, timeout=20.0, metadata=(("x-request-id", "r9"),))
                    await client.infer(req, timeout=None)
                finally:
                    await client.close()
        finally:
            await m.close()
        return m.deadlines

    d = loop.run(go())
    # (grpc rounds deadlines on the wire, so allow a little over the 20 s)
    assert all(t is not None and 0 < t <= 20.5 for t in d[:2]), d
    assert d[2:] == [None, None]
