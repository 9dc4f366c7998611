"""Every error text the router sends a client is bounded (engine.errors.bound_message):
HTTP ``error``/``cause`` bodies and gRPC status details, whatever produced the text."""
from __future__ import annotations

import grpc
import numpy as np
import orjson
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import MESSAGE_LIMIT, bound_message
from engine.oip import InferRequest, from_numpy
from oipkit import GrpcClient, GrpcModel
from routerkit import ModelServer, closed_port, running_router, static


def seq(*urls):
    return {"nodes": {"root": {"routerType": "Sequence",
                               "steps": [{"serviceUrl": u} for u in urls]}}}


def fp32_request():
    return InferRequest("graph", [from_numpy("x", np.arange(4, dtype=np.float32))])


def within_limit(text: str) -> bool:
    return len(text.encode()) <= MESSAGE_LIMIT


# ---- bounded messages ------------------------------------------------------------------

@given(st.text(max_size=3000), st.integers(64, 2000))
def test_bound_message_keeps_start_and_end_within_the_limit(text, limit):
    out = bound_message(text, limit)
    assert len(out.encode("utf-8", "replace")) <= limit
    if len(text.encode("utf-8", "replace")) <= limit:
        assert out == text
    else:
        head, _, tail = out.partition(" ... (")
        assert text.encode("utf-8", "replace").startswith(head.encode("utf-8", "replace"))
        assert text.encode("utf-8", "replace").endswith(
            tail.partition(" middle elided) ... ")[2].encode("utf-8", "replace"))
        assert f"({len(text.encode('utf-8', 'replace'))} bytes, middle elided)" in out


def test_bound_message_below_room_for_the_marker_just_cuts():
    assert bound_message("abcdefgh" * 10, 20) == "abcdefghabcdefghabcd"
    assert bound_message("é" * 20, 9) == "éééé"


def test_bound_message_default_limit():
    text = "tensor 'x': " + "é" * 5000 + " is the reason"
    out = bound_message(text)
    assert len(out.encode()) <= MESSAGE_LIMIT == 1024
    assert out.startswith("tensor 'x': éé") and out.endswith("é is the reason")


# ---- the router's answers ---------------------------------------------------------------

def test_a_long_transport_cause_is_bounded_keeping_the_reason(loop):
    url = f"http://127.0.0.1:{closed_port()}/v1/models/" + "m" * 5000 + ":predict"

    async def go():
        async with running_router(seq(url)) as router:
            return await router.post({"instances": [1]})

    r = loop.run(go())
    doc = orjson.loads(r.body)
    assert r.status == 500 and doc["error"] == "Failed to process request"
    assert within_limit(doc["cause"]) and "middle elided" in doc["cause"]
    assert doc["cause"].startswith('Post "http://127.0.0.1:')
    assert doc["cause"].endswith("connection refused")


def test_a_local_model_failure_is_bounded(loop):
    def model(payload):
        raise ValueError("bad input " + "y" * 5000)

    async def go():
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}}
        async with running_router(graph, services={"m": model}) as router:
            return await router.post({"instances": [1]})

    r = loop.run(go())
    error = orjson.loads(r.body)["error"]
    assert r.status == 500 and within_limit(error) and error.startswith("ValueError: bad input yyy")


def test_a_grpc_model_error_echoed_over_http_is_bounded(loop):
    # (under grpc's own 8 KiB soft limit on the headers the router's channel receives)
    async def go():
        m = await GrpcModel(lambda req: (grpc.StatusCode.INVALID_ARGUMENT, "z" * 5000)).start()
        try:
            async with running_router(seq(m.url())) as router:
                return await router.post(fp32_request().to_json())
        finally:
            await m.close()

    r = loop.run(go())
    error = orjson.loads(r.body)["error"]
    assert r.status == 400 and within_limit(error) and error.startswith("INVALID_ARGUMENT: zzz")


def test_a_long_model_error_reaches_a_grpc_client_as_its_status(loop):
    # an HTTP model's 400 body becomes the status details: 20 KB of them would pass
    # the client's metadata limit (RESOURCE_EXHAUSTED "Stream removed")
    async def go():
        m = await ModelServer(static({"error": "wrong input " + "w" * 20000}, 400)).start()
        try:
            async with running_router(seq(m.url), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    await client.infer(fp32_request())
                except grpc.aio.AioRpcError as e:
                    return e.code(), e.details()
                finally:
                    await client.close()
        finally:
            await m.close()

    code, details = loop.run(go())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert within_limit(details) and details.startswith("wrong input www")


def test_an_answer_that_cannot_be_encoded_is_a_bounded_internal_error(loop):
    from engine.oip import InferResponse

    def model(req):
        out = from_numpy("y", np.zeros(2, np.float32))
        out.shape = [10**5000] + [1] * 5000      # a local model broke its own tensor
        return InferResponse("m", [out])

    async def go():
        graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "m"}]}}}
        async with running_router(graph, services={"m": model}, grpc=True) as router:
            client = GrpcClient(router.grpc_port)
            try:
                await client.infer(fp32_request())
            except grpc.aio.AioRpcError as e:
                return e.code(), e.details()
            finally:
                await client.close()

    code, details = loop.run(go())
    assert code == grpc.StatusCode.INTERNAL and within_limit(details)
    assert details.startswith("the graph's answer cannot be encoded: tensor 'y': too large")
