"""engine.oip: lossless conversion between gRPC, v2 JSON and the HTTP binary extension,
zero-copy numpy views, numpy constructors and BF16 helpers."""
from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import BadRequestError
from engine.oip import (HEADER_LENGTH, InferRequest, InferResponse, RequestedOutput, Tensor,
                        bf16_to_float32, float32_to_bf16, from_numpy, join)

NUMERIC = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
           "UINT64": np.uint64, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32,
           "INT64": np.int64, "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
SHAPES = [[], [0], [5], [2, 3], [3, 0, 2]]
PARAMS = {"flag": True, "off": False, "count": -(2**63), "max": 2**63 - 1, "name": "ünï"}


def array_for(datatype: str, shape, seed=0):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if datatype == "BOOL":
        values = rng.integers(0, 2, n).astype(bool)
    elif datatype in ("FP16", "FP32", "FP64"):
        values = (rng.standard_normal(n) * 1e3).astype(NUMERIC[datatype])
    elif datatype == "BF16":
        values = float32_to_bf16(rng.standard_normal(n) * 1e3)
    elif datatype == "BYTES":
        values = np.array([b"", b"a", "é".encode(), b"xyz" * 3][: n] + [b"q"] * max(0, n - 4),
                          dtype=object)
    else:
        info = np.iinfo(NUMERIC[datatype])
        values = rng.integers(info.min, info.max, n, dtype=NUMERIC[datatype], endpoint=True)
    return values.reshape(shape)


def tensor_for(datatype, shape, seed=0, name=None):
    return from_numpy(name or f"t_{datatype.lower()}", array_for(datatype, shape, seed),
                      datatype=datatype, parameters={"content_type": "np", "p": 3})


def all_forms_agree(req: InferRequest, json_ok: bool = True) -> None:
    """req survives gRPC (raw and typed), binary HTTP and JSON, and chains of them."""
    names = dict(model_name=req.model_name, model_version=req.model_version)
    grpc = InferRequest.from_grpc(join(req.to_grpc()))
    typed = InferRequest.from_grpc(join(req.to_grpc(raw=False)))
    chunks, length = req.to_http(binary=True)
    binary = InferRequest.from_http(join(chunks), length, **names)
    assert grpc == req and typed == req and binary == req
    chunks, length = grpc.to_http(binary=True)
    assert InferRequest.from_grpc(join(InferRequest.from_http(
        join(chunks), length, **names).to_grpc())) == req
    if json_ok:
        via_json = InferRequest.from_json(req.to_json(), **names)
        assert via_json == req
        again = InferRequest.from_http(join(via_json.to_http(True)[0]),
                                       via_json.to_http(True)[1], **names)
        assert InferRequest.from_json(InferRequest.from_grpc(join(again.to_grpc())).to_json(),
                                      **names) == req


@pytest.mark.parametrize("datatype", [*NUMERIC, "BF16", "BYTES"])
@pytest.mark.parametrize("shape", SHAPES)
def test_every_datatype_and_shape_is_lossless(datatype, shape):
    req = InferRequest("model", [tensor_for(datatype, shape), tensor_for("FP32", [2], 1, "x")],
                       model_version="3", id="req-1", parameters=PARAMS,
                       outputs=[RequestedOutput("y", {"binary_data": True})])
    all_forms_agree(req)
    resp = InferResponse("model", req.inputs, model_version="3", id="req-1", parameters=PARAMS)
    for binary in (False, True, {"x"}):
        chunks, length = resp.to_http(binary)
        assert InferResponse.from_http(join(chunks), length) == resp
    assert InferResponse.from_grpc(join(resp.to_grpc())) == resp
    assert InferResponse.from_json(resp.to_json()) == resp


def test_bytes_with_non_utf8_elements_travel_in_binary_form_only():
    t = from_numpy("b", np.array([b"", b"\xff\xfe", b"ok", b"\x00"], dtype=object))
    req = InferRequest("m", [t])
    all_forms_agree(req, json_ok=False)
    assert InferRequest.from_grpc(join(req.to_grpc())).as_numpy("b").tolist() == [
        b"", b"\xff\xfe", b"ok", b"\x00"]
    with pytest.raises(BadRequestError, match="not UTF-8"):
        req.to_json()


def test_json_body_as_kserve_and_triton_write_it():
    body = orjson.dumps({
        "id": "42", "parameters": {"binary_data_output": True},
        "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32", "data": [[1, 2], [3, 4.5]]},
                   {"name": "s", "shape": [2], "datatype": "BYTES", "data": ["a", ""]},
                   {"name": "b", "shape": [], "datatype": "BOOL", "data": [True]}],
        "outputs": [{"name": "y", "parameters": {"binary_data": False}}, {"name": "z"}]})
    req = InferRequest.from_json(body, model_name="m")
    assert req.as_numpy("x").tolist() == [[1, 2], [3, 4.5]]
    assert req.as_numpy("s").tolist() == [b"a", b""]
    assert req.as_numpy("b").shape == () and req.as_numpy("b") == np.True_
    assert (req.wants_binary("y"), req.wants_binary("z")) == (False, True)
    assert orjson.loads(req.to_json())["inputs"][0]["data"] == [1, 2, 3, 4.5]
    resp = InferResponse("m", [from_numpy("y", np.arange(3, dtype=np.int64)),
                               from_numpy("z", np.ones(2, np.float32))], id="42")
    chunks, length = resp.to_http(req)
    header = orjson.loads(chunks[0])
    assert length == len(chunks[0])
    assert header["outputs"][0]["data"] == [0, 1, 2]
    assert header["outputs"][1]["parameters"] == {"binary_data_size": 8}
    assert chunks[1] is resp.outputs[1].data


def test_binary_extension_request_layout_and_zero_copy():
    a = np.arange(1024, dtype=np.float32).reshape(32, 32)
    header = orjson.dumps({"inputs": [
        {"name": "a", "shape": [32, 32], "datatype": "FP32",
         "parameters": {"binary_data_size": 4096}},
        {"name": "j", "shape": [1], "datatype": "INT32", "data": [7]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}]})
    body = header + a.tobytes() + b"\x02\x00\x00\x00hi"
    req = InferRequest.from_http(body, len(header), model_name="m")
    view = req.as_numpy("a")
    assert np.array_equal(view, a) and not view.flags.writeable
    assert np.shares_memory(view, np.frombuffer(body, np.uint8))
    assert req.as_numpy("j").tolist() == [7] and req.as_numpy("s").tolist() == [b"hi"]
    assert req.inputs[0].parameters == {}  # binary_data_size is transport, not a parameter
    # encoded back: the header then the tensors' own buffers, in input order
    chunks, length = req.to_http(binary=True)
    assert chunks[1] is req.inputs[0].data and length == len(chunks[0])
    # and into gRPC: the raw contents are the same buffer, never copied
    grpc_chunks = req.to_grpc()
    assert any(c is req.inputs[0].data for c in grpc_chunks)


def test_grpc_received_tensors_are_views_of_the_message():
    big = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
    wire = join(InferRequest("m", [from_numpy("x", big)]).to_grpc())
    req = InferRequest.from_grpc(wire)
    view = req.as_numpy("x")
    assert np.array_equal(view, big)
    assert np.shares_memory(view, np.frombuffer(wire, np.uint8))
    base = view
    while isinstance(base, np.ndarray):
        base = base.base
    assert base.obj is wire  # np.frombuffer over a memoryview slice of the message
    resp = InferResponse("m", req.inputs)
    chunks = resp.to_grpc()
    assert sum(len(c) for c in chunks if c is not req.inputs[0].data) < 64


@pytest.mark.parametrize("body, length, message", [
    (b"[]", None, "must be a JSON object"),
    (b"{", None, "invalid JSON"),
    (b'{"inputs": {}}', None, "must be a list"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}]}', None,
     "4 bytes of data"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1], "data": []}]}', None,
     "tensor 'x': negative dimension -1"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1.5], "data": []}]}', None,
     "list of integers"),
    (b'{"inputs": [{"name": "x", "datatype": "INT8", "shape": [1], "data": [300]}]}', None,
     "INT8 values"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": ["a"]}]}', None,
     "FP32 values"),
    (b'{"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": [1]}]}', None,
     "not bytes or str"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1]}]}', None, "neither data"),
    (b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1], '
     b'"parameters": {"binary_data_size": 4}}]}', None, "does not fit"),
    (b'{"inputs": []}\x00\x00', 14, "2 bytes of binary data not claimed"),
    (b'{"inputs": []}', 99, "exceeds the body"),
    (b'{"inputs": [], "parameters": {"x": [1]}}', None, "list is not"),
    (b'{"inputs": [{"name": "x", "datatype": "X", "shape": []}]}', None, "unsupported"),
    (b'{"outputs": [{"parameters": {}}]}', None, "needs a string name"),
])
def test_bad_http_bodies_raise_bad_request(body, length, message):
    with pytest.raises(BadRequestError, match=message):
        InferRequest.from_http(body, length)


def test_from_numpy_views_and_conversions():
    a = np.arange(10, dtype=np.float32)
    t = from_numpy("a", a)
    assert t.datatype == "FP32" and np.shares_memory(t.as_numpy(), a)
    assert from_numpy("b", a.astype(">f4")).as_numpy().tolist() == a.tolist()
    assert from_numpy("s", np.array(["x", "é"])).as_numpy().tolist() == [b"x", "é".encode()]
    assert from_numpy("f", a[::2]).as_numpy().tolist() == a[::2].tolist()
    assert from_numpy("i", np.int64(-3)).shape == ()
    with pytest.raises(BadRequestError, match="no OIP datatype"):
        from_numpy("c", np.zeros(2, np.complex64))
    with pytest.raises(BadRequestError, match="expected 16"):
        Tensor("x", "FP64", [2], None, b"\x00" * 8)


def test_bf16_helpers():
    values = np.array([0, 1, -2.5, 3.14159, 1e38, -np.inf, np.nan], dtype=np.float32)
    bits = float32_to_bf16(values)
    assert bits.dtype == np.uint16
    back = bf16_to_float32(bits)
    assert back[:3].tolist() == [0, 1, -2.5] and back[3] == np.float32(3.140625)
    assert np.isinf(back[5]) and np.isnan(back[6])
    # round to nearest even: 1 + 2**-8 is halfway between two BF16 values
    assert bf16_to_float32(float32_to_bf16(np.float32(1 + 2**-8))) == 1
    t = from_numpy("h", bits, datatype="BF16")
    assert t.as_numpy().dtype == np.uint16 and np.shares_memory(t.as_numpy(), bits)


def test_header_length_constant_is_the_triton_header():
    assert HEADER_LENGTH == "Inference-Header-Content-Length"


json_params = st.dictionaries(
    st.text(max_size=5),
    st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=6),
              st.floats(allow_nan=False, allow_infinity=False)), max_size=3)


@st.composite
def json_safe_requests(draw):
    inputs = []
    for i in range(draw(st.integers(0, 3))):
        datatype = draw(st.sampled_from([*NUMERIC, "BF16", "BYTES"]))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        t = tensor_for(datatype, shape, draw(st.integers(0, 2**32)), name=draw(st.text(max_size=4)))
        t.parameters = draw(json_params)
        inputs.append(t)
    outputs = [RequestedOutput(n, p) for n, p in
               draw(st.lists(st.tuples(st.text(max_size=4), json_params), max_size=2))]
    return InferRequest(draw(st.text(max_size=6)), inputs, model_version=draw(st.text(max_size=2)),
                        id=draw(st.text(max_size=4)), parameters=draw(json_params), outputs=outputs)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_safe_requests())
def test_generated_requests_survive_every_encoding(req):
    all_forms_agree(req)
