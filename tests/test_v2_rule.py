"""The bridging rule of docs/oip.md ("Bridging: when the engine converts"), one test per
row of its table: bytes go to HTTP steps as KServe's router sends them, whatever they
hold and whatever the step URL; only messages (and bytes for gRPC steps, or with
v2_bridge) are converted."""
from __future__ import annotations

import grpc
import numpy as np
import orjson
import pytest

import engine
from engine import _core
from engine.bridge import header_value
from engine.oip import HEADER_LENGTH, InferRequest, InferResponse, from_numpy, join
from oipkit import GrpcClient, GrpcModel, V2HttpModel, numpy_model
from routerkit import ModelServer, running_router

_HL = HEADER_LENGTH.lower().encode()

X = np.array([1.5, -2.0, 4.0], dtype=np.float32)
V2_REQUEST = InferRequest("g", [from_numpy("x", X)], id="r").to_json()
BODIES = {
    "arbitrary JSON": b'{"a": [1, {"b": null}], "c": "\\u00e9"}',
    "invalid JSON": b'{"inputs": [',
    "empty": b"",
    "v1 instances": b'{"instances": [[1, 2], [3, 4]]}',
    "v2 request": V2_REQUEST,
}


def v2_response(name="y", data=X, model="a") -> bytes:
    return InferResponse(model, [from_numpy(name, data)], id="r").to_json()


def v2_url(m, model="m") -> str:
    return f"http://127.0.0.1:{m.port}/v2/models/{model}/infer"


def seq(*urls):
    steps = [{"serviceUrl": u} for u in urls]
    for s in steps[1:]:
        s["data"] = "$response"
    return {"nodes": {"root": {"routerType": "Sequence", "steps": steps}}}


def sent(m, i=-1):
    """(body bytes, lower-cased headers) of a recorded request."""
    r = m.requests[i] if isinstance(m, ModelServer) else m.raw[i]
    return bytes(r.body), {k.lower(): v for k, v in r.headers}


async def over_grpc(router, req):
    client = GrpcClient(router.grpc_port)
    try:
        return await client.infer(req)
    finally:
        await client.close()


@pytest.mark.parametrize("step", ["v1", "v2"])
@pytest.mark.parametrize("front", ["/v1/models/g:predict", "/v2/models/g/infer", "/any/path"])
def test_row1_2_bytes_go_unchanged(loop, step, front):
    async def go():
        m = await ModelServer(lambda request: (418, b"model says: " + bytes(request.body))).start()
        url = m.url if step == "v1" else v2_url(m)
        out = {}
        try:
            async with running_router(seq(url)) as router:
                for kind, body in BODIES.items():
                    r = await router.post(body, path=front)
                    out[kind] = (r.status, bytes(r.body), sent(m))
        finally:
            await m.close()
        return out

    for kind, (status, answer, (body, headers)) in loop.run(go()).items():
        assert body == BODIES[kind], kind
        assert headers[b"content-type"] == b"application/json" and _HL not in headers
        assert (status, answer) == (418, b"model says: " + BODIES[kind]), kind


@pytest.mark.parametrize("front", ["/v1/models/g:predict", "/v2/models/g/infer"])
def test_row3_v2_response_goes_unchanged_by_default(loop, front):
    first_answer = v2_response()

    async def go():
        a = await ModelServer(lambda request: (200, first_answer)).start()
        b = await ModelServer(lambda request: (400, {"error": "no inputs"})).start()
        try:
            async with running_router(seq(v2_url(a, "a"), v2_url(b, "b"))) as router:
                r = await router.post(V2_REQUEST, path=front)
        finally:
            await a.close()
            await b.close()
        return r, sent(b)

    r, (body, headers) = loop.run(go())
    assert body == first_answer and _HL not in headers
    assert (r.status, orjson.loads(r.body)) == (400, {"error": "no inputs"})


def test_row4_v2_bridge_turns_outputs_into_inputs(loop):
    # an output named "inputs": only top-level keys decide what the bytes are
    first_answer = v2_response(name="inputs")
    not_v2 = [b'{"predictions": [1]}', b'{"outputs": 5}', b'{"outputs": [1]', b""]

    async def go():
        a = await ModelServer(lambda request: (200, first_answer)).start()
        b = await V2HttpModel(numpy_model(lambda x: x * np.float32(2))).start()
        others = await ModelServer(lambda request: (200, {"seen": len(request.body)})).start()
        answers = iter(not_v2)
        c = await ModelServer(lambda request: (200, next(answers))).start()
        try:
            async with running_router(seq(v2_url(a, "a"), v2_url(b, "b")), v2_bridge=True) as router:
                bridged = await router.post(V2_REQUEST)
            async with running_router(seq(v2_url(c, "c"), v2_url(others, "o")), v2_bridge=True) as router:
                forwarded = [await router.post(V2_REQUEST) for _ in not_v2]
        finally:
            for m in (a, b, c, others):
                await m.close()
        return bridged, b, forwarded, others

    bridged, b, forwarded, others = loop.run(go())
    assert header_value(b.raw[0].headers, _HL) is not None      # binary extension
    assert [t.name for t in b.requests[0].inputs] == ["inputs"] and b.requests[0].id == "r"
    np.testing.assert_array_equal(b.requests[0].as_numpy("inputs"), X)
    assert bridged.status == 200
    np.testing.assert_array_equal(InferResponse.from_json(bridged.body).as_numpy("output0"), X * 2)
    # bytes that are no v2 response still go as received
    assert [sent(others, i)[0] for i in range(len(not_v2))] == not_v2
    assert [orjson.loads(r.body) for r in forwarded] == [{"seen": len(b)} for b in not_v2]


def test_row5_message_to_v2_step_is_binary(loop):
    async def go():
        m = await V2HttpModel(numpy_model(lambda x: x + np.float32(1))).start()
        req = InferRequest("g", [from_numpy("x", X)], id="q")
        try:
            async with running_router(seq(v2_url(m)), grpc=True) as router:
                via_grpc = await over_grpc(router, req)
                buffers, hl = req.to_http(binary=True)
                r = await router.client.request(
                    _core.Endpoint(router.url("/v2/models/g/infer")), join(buffers),
                    [(HEADER_LENGTH.encode(), str(hl).encode())])
            plan = engine.load(seq(v2_url(m))).compile()
            try:
                embedded = await plan.infer(req)
            finally:
                await plan.aclose()
        finally:
            await m.close()
        return m, via_grpc, r, embedded

    m, via_grpc, r, embedded = loop.run(go())
    assert len(m.raw) == 3
    for raw in m.raw:
        assert header_value(raw.headers, _HL) is not None
    np.testing.assert_array_equal(via_grpc.as_numpy("output0"), X + 1)
    np.testing.assert_array_equal(embedded.body.as_numpy("output0"), X + 1)
    assert r.status == 200
    np.testing.assert_array_equal(InferResponse.from_json(r.body).as_numpy("output0"), X + 1)


def test_row6_message_to_v1_step_is_v2_json(loop):
    async def go():
        m = await ModelServer(lambda request: (200, v2_response(data=X * 3))).start()
        try:
            async with running_router(seq(m.url), grpc=True) as router:
                resp = await over_grpc(router, InferRequest("g", [from_numpy("x", X)], id="q"))
        finally:
            await m.close()
        return sent(m), resp

    (body, headers), resp = loop.run(go())
    doc = orjson.loads(body)
    assert headers[b"content-type"] == b"application/json" and _HL not in headers
    assert doc["id"] == "q" and doc["inputs"][0]["name"] == "x" and doc["inputs"][0]["data"] == X.tolist()
    np.testing.assert_array_equal(resp.as_numpy("y"), X * 3)


def test_row7_8_bytes_after_a_message_front_end(loop):
    async def go():
        v1_v2 = await ModelServer(lambda request: (200, v2_response(name="z"))).start()
        v1_plain = await ModelServer(lambda request: (200, {"predictions": [1]})).start()
        v2 = await V2HttpModel(numpy_model(lambda x: -x)).start()
        rec = await ModelServer(lambda request: (200, v2_response(name="w"))).start()
        req = InferRequest("g", [from_numpy("x", X)])
        try:
            async with running_router(seq(v1_v2.url, v2_url(v2)), grpc=True) as router:
                bridged = await over_grpc(router, req)
            async with running_router(seq(v1_plain.url, v2_url(rec)), grpc=True) as router:
                forwarded = await over_grpc(router, req)
        finally:
            for m in (v1_v2, v1_plain, v2, rec):
                await m.close()
        return v2, bridged, sent(rec), forwarded

    v2, bridged, (body, headers), forwarded = loop.run(go())
    # row 7: the v1 step's v2 JSON response became the v2 step's inputs (bridge implied)
    assert [t.name for t in v2.requests[0].inputs] == ["z"]
    np.testing.assert_array_equal(bridged.as_numpy("output0"), -X)
    # row 8: bytes that are no v2 response go as received
    assert body == b'{"predictions":[1]}' and _HL not in headers
    assert [t.name for t in forwarded.outputs] == ["w"]


def test_row9_10_grpc_step(loop):
    async def go():
        m = await GrpcModel(numpy_model(lambda x: x * np.float32(10))).start()
        out = {}
        try:
            async with running_router(seq(m.url()), grpc=True) as router:
                for kind, body in {"v2 request": V2_REQUEST, "v2 response": v2_response(),
                                   "v1 instances": BODIES["v1 instances"],
                                   "invalid JSON": BODIES["invalid JSON"]}.items():
                    out[kind] = await router.post(body)
        finally:
            await m.close()
        return out, m

    out, m = loop.run(go())
    assert [r.inputs[0].name for r in m.requests] == ["x", "y"]    # called twice only
    for kind in ("v2 request", "v2 response"):
        assert out[kind].status == 200
        np.testing.assert_array_equal(InferResponse.from_json(out[kind].body).as_numpy("output0"), X * 10)
    assert out["v1 instances"].status == 400 and orjson.loads(out["v1 instances"].body)["error"].endswith(
        "the body is neither a v2 inference request nor a v2 response")
    assert out["invalid JSON"].status == 400 and b"invalid JSON" in bytes(out["invalid JSON"].body)


def test_row11_message_answer_over_http(loop):
    async def go():
        m = await GrpcModel(numpy_model(lambda x: x)).start()
        req = InferRequest("g", [from_numpy("x", X)], parameters={"binary_data_output": True})
        try:
            async with running_router(seq(m.url()), grpc=True) as router:
                plain = await router.post(V2_REQUEST, path="/any/path")
                binary = await router.post(req.to_json(), path="/v2/models/g/infer")
        finally:
            await m.close()
        return plain, binary

    plain, binary = loop.run(go())
    assert header_value(plain.headers, b"content-type") == b"application/json"
    np.testing.assert_array_equal(InferResponse.from_json(plain.body).as_numpy("output0"), X)
    hl = header_value(binary.headers, _HL)
    assert binary.status == 200 and hl is not None
    np.testing.assert_array_equal(InferResponse.from_http(binary.body, int(hl)).as_numpy("output0"), X)


def test_row12_bytes_answer_over_grpc(loop):
    async def go():
        v2 = await ModelServer(lambda request: (200, v2_response(name="o"))).start()
        v1 = await ModelServer(lambda request: (200, {"predictions": [1]})).start()
        req = InferRequest("g", [from_numpy("x", X)])
        try:
            async with running_router(seq(v2.url), grpc=True) as router:
                good = await over_grpc(router, req)
            async with running_router(seq(v1.url), grpc=True) as router:
                try:
                    await over_grpc(router, req)
                    bad = None
                except grpc.aio.AioRpcError as e:
                    bad = e.code()
        finally:
            await v2.close()
            await v1.close()
        return good, bad

    good, bad = loop.run(go())
    np.testing.assert_array_equal(good.as_numpy("o"), X)
    assert bad == grpc.StatusCode.INTERNAL
