"""Protocol bridging: graphs mixing v1 JSON, HTTP v2 (JSON and binary) and gRPC steps,
called over the HTTP (v1 and v2) and gRPC front ends; zero-copy to local models."""
from __future__ import annotations

import numpy as np
import orjson

from engine import _core
from engine.bridge import as_request, header_json, header_value
from engine.oip import HEADER_LENGTH, InferRequest, InferResponse, from_numpy, join
from oipkit import GrpcClient, GrpcModel, V2HttpModel, numpy_model
from routerkit import ModelServer, raw_exchange, running_router, split_response

_HL = HEADER_LENGTH.lower().encode()


def seq(*urls):
    steps = [{"serviceUrl": u} for u in urls]
    for s in steps[1:]:
        s["data"] = "$response"
    return {"nodes": {"root": {"routerType": "Sequence", "steps": steps}}}


def v1_json_model(fn):
    """A v1 JSON HTTP model that reads the v2 JSON request the router sends it and
    answers a v2 JSON response."""
    def answer(request):
        req = InferRequest.from_json(request.body)
        return 200, numpy_model(fn, output="v1out")(req).to_json()
    return answer


async def post_v2(router, req: InferRequest, model="g", binary=True, params=None):
    if params:
        req = as_request(req, req.model_name)
        req.parameters = {**req.parameters, **params}
    buffers, hl = req.to_http(binary=binary)
    headers = [] if hl is None else [(HEADER_LENGTH.encode(), str(hl).encode()),
                                     (b"Content-Type", b"application/octet-stream")]
    r = await router.client.request(_core.Endpoint(router.url(f"/v2/models/{model}/infer")),
                                    join(buffers), headers)
    hl = header_value(r.headers, _HL)
    return r, (InferResponse.from_http(r.body, int(hl) if hl else None) if r.status == 200 else None)


def test_v2_binary_front_end_three_v2_binary_steps(loop):
    async def go():
        models = [await V2HttpModel(numpy_model(f)).start() for f in (
            lambda x: x * np.float32(3), lambda x: x - np.float32(0.5), lambda x: x / np.float32(4))]
        x = np.linspace(-2, 2, 1024, dtype=np.float32).reshape(4, 256)
        req = InferRequest("g", [from_numpy("x", x)], id="r1")
        try:
            graph = seq(*(m.url(f"m{i}") for i, m in enumerate(models)))
            async with running_router(graph) as router:
                r, resp = await post_v2(router, req, params={"binary_data_output": True})
            # JSON bytes chain v2 steps only when asked for (KServe sends them unchanged)
            async with running_router(graph, v2_bridge=True) as router:
                r_json, resp_json = await post_v2(router, req, binary=False)
        finally:
            for m in models:
                await m.close()
        return x, models, r, resp, r_json, resp_json

    x, models, r, resp, r_json, resp_json = loop.run(go())
    want = (x * np.float32(3) - np.float32(0.5)) / np.float32(4)
    assert r.status == 200 and header_value(r.headers, _HL) is not None   # binary answer
    np.testing.assert_array_equal(resp.as_numpy("output0"), want)
    assert resp.id == "r1" and resp.model_name == "g"
    # every backend got the binary extension (tensor bytes not in JSON)
    for m in models:
        assert header_value(m.raw[0].headers, _HL) is not None
    assert [m.requests[0].model_name for m in models] == ["m0", "m1", "m2"]
    # a JSON v2 request is forwarded as received to the first step, the JSON answers
    # become the next steps' inputs (v2_bridge), and the last step's answer is v2 JSON
    assert header_value(models[0].raw[1].headers, _HL) is None
    assert bytes(models[0].raw[1].body) == InferRequest("g", [from_numpy("x", x)], id="r1").to_json()
    assert r_json.status == 200 and header_value(r_json.headers, _HL) is None
    np.testing.assert_array_equal(resp_json.as_numpy("output0"), want)


def test_mixed_graph_over_grpc_and_v2_front_ends(loop):
    async def go():
        g = await GrpcModel(numpy_model(lambda x: x + 10)).start()
        v2 = await V2HttpModel(numpy_model(lambda x: x * 2)).start()
        v1 = await ModelServer(v1_json_model(lambda x: x - 1)).start()
        x = np.array([[1, -2, 3], [4, 5, -6]], dtype=np.int32)
        req = InferRequest("g", [from_numpy("x", x)], id="mix", parameters={"p": 1.5})
        try:
            async with running_router(seq(g.url(), v2.url(), v1.url), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    over_grpc = await client.infer(req)
                finally:
                    await client.close()
                r, over_v2 = await post_v2(router, req)
        finally:
            for m in (g, v2, v1):
                await m.close()
        return x, over_grpc, r, over_v2, v1

    x, over_grpc, r, over_v2, v1 = loop.run(go())
    want = (x + 10) * 2 - 1
    for resp in (over_grpc, over_v2):
        assert [t.name for t in resp.outputs] == ["v1out"]
        np.testing.assert_array_equal(resp.as_numpy("v1out"), want)
        assert resp.as_numpy("v1out").dtype == np.int32
    assert over_grpc.id == "mix"
    sent = orjson.loads(v1.requests[0].body)   # the v1 model got the v2 JSON request
    assert sent["id"] == "mix" and sent["parameters"] == {"p": 1.5}
    assert sent["inputs"][0]["shape"] == [2, 3] and sent["inputs"][0]["data"] == ((x + 10) * 2).ravel().tolist()


def test_ensemble_over_v2_names_outputs_by_step(loop):
    async def go():
        a = await GrpcModel(numpy_model(lambda x: x * 2)).start()
        b = await V2HttpModel(numpy_model(lambda x: x + 1, output="y")).start()
        graph = {"nodes": {"root": {"routerType": "Ensemble", "steps": [
            {"name": "sq", "serviceUrl": a.url()}, {"name": "inc", "serviceUrl": b.url()}]}}}
        x = np.arange(6, dtype=np.float64)
        req = InferRequest("g", [from_numpy("x", x)])
        try:
            async with running_router(graph, grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    resp = await client.infer(req)
                finally:
                    await client.close()
                plain = await router.post(req.to_json())
        finally:
            await a.close()
            await b.close()
        return x, resp, plain

    x, resp, plain = loop.run(go())
    assert [t.name for t in resp.outputs] == ["inc.y", "sq.output0"]   # Go's key order
    np.testing.assert_array_equal(resp.as_numpy("sq.output0"), x * 2)
    np.testing.assert_array_equal(resp.as_numpy("inc.y"), x + 1)
    # a v1 JSON request: the gRPC step answers a message, so the merge is v2 JSON too
    doc = orjson.loads(plain.body)
    assert plain.status == 200 and [o["name"] for o in doc["outputs"]] == ["inc.y", "sq.output0"]


def test_conditions_see_the_json_header_without_tensor_data(loop):
    async def go():
        fast = await GrpcModel(numpy_model(lambda x: x + 1)).start()
        slow = await GrpcModel(numpy_model(lambda x: x - 1)).start()
        graph = {"nodes": {"root": {"routerType": "Switch", "steps": [
            {"serviceUrl": fast.url(), "condition": "parameters.fast"},
            {"serviceUrl": slow.url(), "condition": 'inputs.#(datatype=="INT64")'}]}}}
        x = np.array([5, 6], dtype=np.int64)
        out = []
        try:
            async with running_router(graph, grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    out.append(await client.infer(InferRequest(
                        "g", [from_numpy("x", x)], parameters={"fast": True})))
                    out.append(await client.infer(InferRequest("g", [from_numpy("x", x)])))
                finally:
                    await client.close()
        finally:
            await fast.close()
            await slow.close()
        return x, out

    x, (a, b) = loop.run(go())
    np.testing.assert_array_equal(a.as_numpy("output0"), x + 1)
    np.testing.assert_array_equal(b.as_numpy("output0"), x - 1)


def test_header_json_holds_metadata_only():
    x = np.arange(4, dtype=np.float32)
    req = InferRequest("m", [from_numpy("x", x, parameters={"k": "v"})], id="i",
                       parameters={"a": True})
    assert orjson.loads(header_json(req)) == {
        "id": "i", "parameters": {"a": True},
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [4], "parameters": {"k": "v"}}]}
    resp = InferResponse("m", [from_numpy("y", x)])
    assert orjson.loads(header_json(resp)) == {
        "model_name": "m", "outputs": [{"name": "y", "datatype": "FP32", "shape": [4]}]}


def test_sequence_condition_on_previous_v2_response(loop):
    async def go():
        first = await GrpcModel(numpy_model(lambda x: x, output="score")).start()
        second = await GrpcModel(numpy_model(lambda x: x * 100)).start()
        graph = seq(first.url(), second.url())
        graph["nodes"]["root"]["steps"][1]["condition"] = 'outputs.#(name=="label")'
        req = InferRequest("g", [from_numpy("x", np.ones(3, dtype=np.float32))])
        try:
            async with running_router(graph, grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    resp = await client.infer(req)
                finally:
                    await client.close()
        finally:
            await first.close()
            await second.close()
        return resp, len(second.requests)

    resp, calls = loop.run(go())
    # no output "label": the sequence stops with the first step's answer
    assert calls == 0 and [t.name for t in resp.outputs] == ["score"]


def test_local_models_get_views_of_the_received_buffer(loop):
    seen = {}

    def model(req):
        seen["x"] = req.as_numpy("x")
        seen["data"] = req.tensor("x").data
        return {"y": seen["x"] * 2, "z": seen["x"].astype(np.int64)}

    async def go():
        import engine
        x = np.arange(4096, dtype=np.float32)
        wire = join(InferRequest("g", [from_numpy("x", x)]).to_grpc())
        plan = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceName": "local"}]}}}, services={"local": model}).compile()
        r = await _core.execute(plan.compiled, InferRequest.from_grpc(wire), _core.RunContext([], 0.0))
        assert np.shares_memory(seen["x"], np.frombuffer(wire, np.uint8))
        # and through the gRPC front end: the view's owner is the received message
        async with running_router(plan.graph.to_dict(), services={"local": model}, grpc=True) as router:
            client = GrpcClient(router.grpc_port)
            try:
                resp = await client.infer(InferRequest.from_grpc(wire))
            finally:
                await client.close()
        assert seen["data"].obj == wire and len(seen["data"].obj) == len(wire)
        return x, r, resp

    x, r, resp = loop.run(go())
    assert r.status == 200 and [t.name for t in r.body.outputs] == ["y", "z"]
    np.testing.assert_array_equal(resp.as_numpy("y"), x * 2)
    np.testing.assert_array_equal(resp.as_numpy("z"), x.astype(np.int64))


def test_v2_model_endpoints_on_the_router(loop):
    def get(path):
        return (f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").encode()

    async def go():
        async with running_router(seq("http://127.0.0.1:1/v1/models/m:predict")) as router:
            meta = await raw_exchange(router.port, get("/v2/models/g"))
            ready = await raw_exchange(router.port, get("/v2/models/g/versions/2/ready"))
            router.instance.app.start_draining()
            draining = await raw_exchange(router.port, get("/v2/models/g/ready"))
        return [split_response(r) for r in (meta, ready, draining)]

    (m_status, _, m_body), (r_status, _, r_body), (d_status, _, d_body) = loop.run(go())
    assert (m_status, orjson.loads(m_body)) == (200, {
        "name": "g", "versions": [], "platform": "inference-graph", "inputs": [], "outputs": []})
    assert (r_status, orjson.loads(r_body)) == (200, {"name": "g", "ready": True})
    assert (d_status, orjson.loads(d_body)) == (503, {"name": "g", "ready": False})


def test_local_model_answers_numpy_through_plan_infer(loop):
    import engine

    def model(req):
        return req.as_numpy("x")[::-1] * 3     # a new array: answered as output0

    plan = engine.load({"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"serviceName": "m"}]}}}, services={"m": model}).compile()
    x = np.arange(5, dtype=np.int16)
    r = loop.run(plan.infer(InferRequest("g", [from_numpy("x", x)], id="q")))
    assert r.status == 200 and r.body.id == "q"
    out = r.body.as_numpy("output0")
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, x[::-1] * 3)


def test_front_end_errors_for_bodies_that_are_no_v2_message(loop):
    import grpc

    async def go():
        v1 = await ModelServer(lambda request: (200, {"predictions": [1]})).start()
        try:
            async with running_router(seq(v1.url), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    await client.infer(InferRequest("g", [from_numpy("x", np.zeros(2, np.float32))]))
                except grpc.aio.AioRpcError as e:
                    err = (e.code(), e.details())
                finally:
                    await client.close()
                ep = _core.Endpoint(router.url("/v2/models/g/infer"))
                bad = await router.client.request(
                    ep, b'{"inputs": []}xyz', [(HEADER_LENGTH.encode(), b"99")])
        finally:
            await v1.close()
        return err, bad, len(v1.requests)

    err, bad, calls = loop.run(go())
    # the v1 model answered JSON that is not a v2 response: INTERNAL for a gRPC caller
    assert calls == 1 and err[0] == grpc.StatusCode.INTERNAL and "not a v2 response" in err[1]
    assert bad.status == 400 and b"exceeds the body" in bytes(bad.body)
