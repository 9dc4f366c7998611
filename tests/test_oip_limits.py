"""What an attacker sent to ``ige serve``: tensors whose size arithmetic wraps, shapes
of thousands of dimensions, messages past the size limit. Each is refused with a
bounded reason naming the tensor, over gRPC and HTTP v2 (JSON and binary), and the
router goes on serving."""
from __future__ import annotations

import sys

import grpc
import numpy as np
import orjson
import pytest

from engine.cli import main
from engine.errors import MESSAGE_LIMIT
from engine.oip import HEADER_LENGTH, InferRequest, from_numpy
from engine.protos import grpc_predict_v2_pb2 as pb
from engine.protos import grpc_predict_v2_pb2_grpc as pb_grpc
from engine.server.grpc_front import server_options
from oipkit import GrpcClient, GrpcModel, V2HttpModel, numpy_model
from routerkit import running_router

MiB = 1024 * 1024

# (datatype, shape, raw bytes, what the reason says)
WRAPPING = [
    ("FP64", [2**61], b"", "too large"),             # 2**61 * 8 bytes wraps to 0
    ("INT32", [2**62 + 4], b"\x00" * 16, "too large"),  # wraps to 16
    ("UINT8", [2**63 - 1, 2], b"", "too large"),
    ("FP32", [-1], b"", "negative dimension -1"),
    ("FP32", [4, -3], b"\x00" * 16, "negative dimension -3"),
    ("BYTES", [2**40], b"\x00" * 16, "cannot hold"),
    ("FP32", [1] * 10_000, b"", "(10000 dimensions)"),
]


def seq(url):
    return {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}}


def grpc_wire(datatype, shape, raw) -> bytes:
    m = pb.ModelInferRequest(model_name="graph")
    m.inputs.add(name="x", datatype=datatype, shape=shape)
    m.raw_input_contents.append(raw)
    return m.SerializeToString()


def fp32_request(n=4):
    return InferRequest("graph", [from_numpy("y", np.arange(n, dtype=np.float32))])


def test_grpc_front_end_refuses_wrapping_shapes(loop):
    async def go():
        model = await GrpcModel(numpy_model(lambda x: x)).start()
        out = []
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    for datatype, shape, raw, _ in WRAPPING:
                        try:
                            await client.call("ModelInfer", grpc_wire(datatype, shape, raw))
                            out.append(None)
                        except grpc.aio.AioRpcError as e:
                            out.append((e.code(), e.details()))
                    ok = await client.infer(fp32_request())
                finally:
                    await client.close()
        finally:
            await model.close()
        return out, ok, len(model.requests)

    out, ok, calls = loop.run(go())
    for (datatype, shape, _, reason), got in zip(WRAPPING, out):
        assert got is not None, (datatype, shape)
        code, details = got
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (shape[:3], code, details)
        assert details.startswith("tensor 'x': ") and reason in details, details
        assert len(details.encode()) <= MESSAGE_LIMIT
    assert ok.tensor("output0").shape == (4,) and calls == 1   # only the good request


def test_ten_thousand_dimensions_reach_a_generated_stub_as_invalid_argument(loop):
    # the standard client (generated stub, default channel options) with its
    # metadata limit: before the bound it saw RESOURCE_EXHAUSTED "Stream removed"
    async def go():
        model = await GrpcModel(numpy_model(lambda x: x)).start()
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                async with grpc.aio.insecure_channel(f"127.0.0.1:{router.grpc_port}") as ch:
                    stub = pb_grpc.GRPCInferenceServiceStub(ch)
                    request = pb.ModelInferRequest.FromString(grpc_wire("FP32", [3] * 10_000, b""))
                    try:
                        await stub.ModelInfer(request, timeout=10)
                    except grpc.aio.AioRpcError as e:
                        return e.code(), e.details()
        finally:
            await model.close()

    code, details = loop.run(go())
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(details.encode()) < 1024
    assert details.startswith("tensor 'x': shape [3, 3, 3, 3, 3, 3, 3, 3, ... 9984 more ...")


def binary_body(datatype, shape_json: bytes, raw: bytes):
    head = (b'{"inputs":[{"name":"x","datatype":"' + datatype.encode() + b'","shape":'
            + shape_json + b',"parameters":{"binary_data_size":' + str(len(raw)).encode()
            + b"}}]}")
    return head + raw, [(HEADER_LENGTH.encode(), str(len(head)).encode())]


def json_body(datatype, shape_json: bytes):
    return (b'{"inputs":[{"name":"x","datatype":"' + datatype.encode() + b'","shape":'
            + shape_json + b',"data":[]}]}'), []


HTTP_CASES = [
    ("json", "FP32", b"[18446744073709551615]", b"", "too large a dimension"),
    ("json", "FP64", b"[2305843009213693952]", b"", "too large"),
    ("json", "FP32", b"[-1]", b"", "negative dimension"),
    ("json", "FP32", orjson.dumps([1] * 10_000), b"", "(10000 dimensions)"),
    ("binary", "FP32", b"[18446744073709551615]", b"", "too large a dimension"),
    ("binary", "FP64", b"[2305843009213693952]", b"", "too large"),
    ("binary", "INT32", b"[4611686018427387908]", b"\x00" * 16, "too large"),
    ("binary", "BYTES", b"[1099511627776]", b"\x00" * 16, "cannot hold"),
    ("binary", "FP32", orjson.dumps([1] * 10_000), b"", "(10000 dimensions)"),
]


@pytest.mark.parametrize("backend", ["grpc", "v2http"])
def test_http_v2_front_end_refuses_wrapping_shapes(loop, backend):
    async def go():
        if backend == "grpc":
            model = await GrpcModel(numpy_model(lambda x: x)).start()
        else:
            model = await V2HttpModel(numpy_model(lambda x: x)).start()
        out = []
        try:
            async with running_router(seq(model.url())) as router:
                for form, datatype, shape, raw, _ in HTTP_CASES:
                    if form == "json":
                        if backend == "v2http":
                            # forwarded unread, as any JSON body: the model's to judge
                            out.append(None)
                            continue
                        body, headers = json_body(datatype, shape)
                    else:
                        body, headers = binary_body(datatype, shape, raw)
                    r = await router.post(body, "/v2/models/graph/infer", headers)
                    out.append((r.status, orjson.loads(r.body)))
                ok = await router.post(fp32_request().to_json(), "/v2/models/graph/infer")
        finally:
            await model.close()
        return out, ok, len(model.requests)

    out, ok, calls = loop.run(go())
    for (form, datatype, shape, _, reason), got in zip(HTTP_CASES, out):
        if got is None:
            continue
        status, doc = got
        assert status == 400, (form, shape[:40], doc)
        assert "tensor 'x': " in doc["error"] and reason in doc["error"], doc
        assert len(doc["error"].encode()) <= MESSAGE_LIMIT
    assert ok.status == 200 and orjson.loads(ok.body)["outputs"][0]["shape"] == [4]
    assert calls == 1


# ---- the gRPC message size limit -------------------------------------------------------

@pytest.mark.parametrize("options", [{"max_grpc_message_size": MiB},
                                     {"max_body_size": MiB}])
def test_grpc_message_over_the_limit_is_refused_and_the_router_keeps_serving(loop, options):
    # the limit is the flag's, else the HTTP body limit
    async def go():
        model = await GrpcModel(numpy_model(lambda x: x)).start()
        try:
            async with running_router(seq(model.url()), grpc=True, options=options) as router:
                client = GrpcClient(router.grpc_port)
                try:
                    try:
                        await client.infer(fp32_request(2 * MiB // 4))
                        big = None
                    except grpc.aio.AioRpcError as e:
                        big = e.code()
                    small = await client.infer(fp32_request(MiB // 8))
                finally:
                    await client.close()
        finally:
            await model.close()
        return big, small, [t.shape for r in model.requests for t in r.inputs]

    big, small, seen = loop.run(go())
    assert big == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert small.tensor("output0").shape == (MiB // 8,)
    assert seen == [(MiB // 8,)]       # the model never saw the large one


def test_messages_past_grpcs_own_default_go_both_ways_by_default(loop):
    # grpc's defaults would refuse 4 MiB; the front end takes up to the body limit
    # and answers any size, the backend channels take any answer
    n = 5 * MiB // 4

    async def go():
        model = await GrpcModel(numpy_model(lambda x: x + 1),
                                ).start(options=[("grpc.max_receive_message_length", -1),
                                                 ("grpc.max_send_message_length", -1)])
        try:
            async with running_router(seq(model.url()), grpc=True) as router:
                client = GrpcClient(router.grpc_port,
                                    options=[("grpc.max_receive_message_length", -1)])
                try:
                    return await client.infer(fp32_request(n))
                finally:
                    await client.close()
        finally:
            await model.close()

    resp = loop.run(go())
    np.testing.assert_array_equal(resp.as_numpy("output0"), np.arange(n, dtype=np.float32) + 1)


def test_max_grpc_message_size_flag(monkeypatch, capsys):
    import engine.logs
    import engine.server.runner as runner
    seen = []
    monkeypatch.setattr(runner, "serve", lambda graph, options: seen.append(options) or 0)
    monkeypatch.setattr(engine.logs, "configure", lambda level=None: None)
    graph = orjson.dumps(seq("http://127.0.0.1:1/v1/models/m:predict")).decode()
    assert main(["serve", "--graph-json", graph, "--max-body-size", "1000"]) == 0
    assert main(["serve", "--graph-json", graph, "--max-grpc-message-size", "5000"]) == 0
    assert main(["serve", "--graph-json", graph, "--max-grpc-message-size", "0"]) == 0
    assert [(o.max_body_size, o.max_grpc_message_size) for o in seen] == [
        (1000, None), (64 * MiB, 5000), (64 * MiB, sys.maxsize)]
    assert main(["serve", "--graph-json", graph, "--max-grpc-message-size", "-1"]) == 1
    assert "--max-grpc-message-size -1: must be 0 (no limit) or more" in capsys.readouterr().err


def test_no_size_limit_is_grpcs_minus_one():
    assert dict(server_options(MiB))["grpc.max_receive_message_length"] == MiB
    assert dict(server_options(2**31 - 1))["grpc.max_receive_message_length"] == 2**31 - 1
    assert dict(server_options(sys.maxsize))["grpc.max_receive_message_length"] == -1
    assert dict(server_options(MiB))["grpc.max_send_message_length"] == -1
