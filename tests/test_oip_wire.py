"""The hand-written OIP wire codec against protobuf's generated classes (the oracle)."""
from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import BadRequestError
from engine.oip import InferRequest, InferResponse, RequestedOutput, Tensor, join
from engine.protos import grpc_predict_v2_pb2 as pb

NP = {"BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
      "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2",
      "FP32": "<f4", "FP64": "<f8", "BF16": "<u2"}
CONTENTS = {"BOOL": "bool_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
            "UINT32": "uint_contents", "UINT64": "uint64_contents", "INT8": "int_contents",
            "INT16": "int_contents", "INT32": "int_contents", "INT64": "int64_contents",
            "FP32": "fp32_contents", "FP64": "fp64_contents", "BYTES": "bytes_contents"}
DATATYPES = [*NP, "BYTES"]


# ------------------------------------------------------------------ oracle

def bytes_raw(elements) -> bytes:
    return b"".join(struct.pack("<I", len(e)) + e for e in elements)


def bytes_elements(raw) -> list[bytes]:
    raw, out, pos = bytes(raw), [], 0
    while pos < len(raw):
        (k,) = struct.unpack_from("<I", raw, pos)
        out.append(raw[pos + 4:pos + 4 + k])
        pos += 4 + k
    return out


def pb_params(m) -> dict:
    out = {}
    for key, p in m.items():
        choice = p.WhichOneof("parameter_choice")
        out[key] = None if choice is None else getattr(p, choice)
    return out


def set_pb_params(m, params: dict):
    for key, value in params.items():
        if value is None:
            m[key].SetInParent()
        elif isinstance(value, bool):
            m[key].bool_param = value
        elif isinstance(value, int):
            if value < 2**63:
                m[key].int64_param = value
            else:
                m[key].uint64_param = value
        elif isinstance(value, float):
            m[key].double_param = value
        else:
            m[key].string_param = value


def pb_tensor_data(t, raw) -> bytes:
    if raw is not None:
        return raw
    values = list(getattr(t.contents, CONTENTS[t.datatype])) if t.datatype in CONTENTS else []
    if t.datatype == "BYTES":
        return bytes_raw(values)
    return np.array(values, dtype=NP[t.datatype]).tobytes()


def set_pb_contents(m, t: Tensor):
    if t.datatype == "BYTES":
        m.contents.bytes_contents.extend(bytes_elements(t.data))
    else:
        field = getattr(m.contents, CONTENTS[t.datatype])
        field.extend(np.frombuffer(t.data, NP[t.datatype]).tolist())


def request_from_pb(m) -> InferRequest:
    raws = list(m.raw_input_contents) or [None] * len(m.inputs)
    return InferRequest(
        m.model_name, [Tensor(t.name, t.datatype, list(t.shape), pb_params(t.parameters),
                              pb_tensor_data(t, r)) for t, r in zip(m.inputs, raws)],
        model_version=m.model_version, id=m.id, parameters=pb_params(m.parameters),
        outputs=[RequestedOutput(o.name, pb_params(o.parameters)) for o in m.outputs])


def response_from_pb(m) -> InferResponse:
    raws = list(m.raw_output_contents) or [None] * len(m.outputs)
    return InferResponse(
        m.model_name, [Tensor(t.name, t.datatype, list(t.shape), pb_params(t.parameters),
                              pb_tensor_data(t, r)) for t, r in zip(m.outputs, raws)],
        model_version=m.model_version, id=m.id, parameters=pb_params(m.parameters))


def _fill_pb(m, msg, tensors, container, raw_field, raw):
    m.model_name, m.model_version, m.id = msg.model_name, msg.model_version, msg.id
    set_pb_params(m.parameters, msg.parameters)
    for t in tensors:
        pt = container.add(name=t.name, datatype=t.datatype, shape=list(t.shape))
        set_pb_params(pt.parameters, t.parameters)
        if raw:
            raw_field.append(bytes(t.data))
        elif t.data and len(t.data):
            set_pb_contents(pt, t)


def request_to_pb(r: InferRequest, raw: bool) -> pb.ModelInferRequest:
    m = pb.ModelInferRequest()
    _fill_pb(m, r, r.inputs, m.inputs, m.raw_input_contents, raw)
    for o in r.outputs:
        set_pb_params(m.outputs.add(name=o.name).parameters, o.parameters)
    return m


def response_to_pb(r: InferResponse, raw: bool) -> pb.ModelInferResponse:
    m = pb.ModelInferResponse()
    _fill_pb(m, r, r.outputs, m.outputs, m.raw_output_contents, raw)
    return m


def sample(datatype: str, shape, seed: int = 0) -> Tensor:
    n = int(np.prod(shape, dtype=np.int64))
    rng = np.random.default_rng(seed)
    if datatype == "BYTES":
        elements = [bytes(rng.integers(0, 256, size=int(k), dtype=np.uint8))
                    for k in rng.integers(0, 5, size=n)]
        return Tensor("t_bytes", "BYTES", shape, {}, bytes_raw(elements))
    bits = rng.integers(0, 256, size=n * np.dtype(NP[datatype]).itemsize, dtype=np.uint8)
    if datatype == "BOOL":
        bits &= 1
    if datatype in ("FP16", "FP32", "FP64"):  # keep NaN payloads out of typed round trips
        bits = rng.standard_normal(n).astype(NP[datatype]).view(np.uint8)
    return Tensor(f"t_{datatype.lower()}", datatype, shape, {}, bits.tobytes())


# ------------------------------------------------------------ fixed cases

@pytest.mark.parametrize("datatype", DATATYPES)
@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("shape", [[], [0], [3], [2, 3], [1, 0, 4]])
def test_every_datatype_both_directions(datatype, raw, shape):
    if not raw and datatype in ("FP16", "BF16"):
        raw = True  # no typed field exists for them: the encoder must go raw
    req = InferRequest("model", [sample(datatype, shape)], model_version="2", id="r1",
                       parameters={"b": False, "i": -7, "s": "é", "f": 0.25},
                       outputs=[RequestedOutput("out", {"binary_data": True})])
    wire = join(req.to_grpc(raw=raw))
    decoded = pb.ModelInferRequest.FromString(wire)
    assert request_from_pb(decoded) == req
    assert bool(decoded.raw_input_contents) == (raw and True)
    assert InferRequest.from_grpc(request_to_pb(req, raw).SerializeToString()) == req

    resp = InferResponse("model", [sample(datatype, shape, 1)], id="r1", parameters={"n": 2**64 - 1})
    wire = join(resp.to_grpc(raw=raw))
    assert response_from_pb(pb.ModelInferResponse.FromString(wire)) == resp
    assert InferResponse.from_grpc(response_to_pb(resp, raw).SerializeToString()) == resp


@pytest.mark.parametrize("raw", [True, False])
def test_bytes_equal_protobuf_serialisation(raw):
    # One key per map, so protobuf's map order cannot differ from ours.
    req = InferRequest("m", [sample(d, [2, 2], i) for i, d in enumerate(DATATYPES)
                             if raw or d not in ("FP16", "BF16")],
                       model_version="1", id="x", parameters={"p": -1},
                       outputs=[RequestedOutput("o", {"binary_data": True})])
    for t in req.inputs:
        t.parameters = {"k": "v"}
    assert join(req.to_grpc(raw=raw)) == request_to_pb(req, raw).SerializeToString()
    resp = InferResponse("m", req.inputs, parameters={"f": 1.5})
    assert join(resp.to_grpc(raw=raw)) == response_to_pb(resp, raw).SerializeToString()


def test_empty_messages():
    assert InferRequest.from_grpc(b"") == InferRequest()
    assert InferResponse.from_grpc(b"") == InferResponse()
    assert join(InferRequest().to_grpc()) == b""
    assert join(InferResponse().to_grpc()) == b""
    # Every part present but empty: an empty contents message, an empty raw entry.
    m = pb.ModelInferRequest()
    m.inputs.add(name="e", datatype="FP32", shape=[0]).contents.SetInParent()
    assert InferRequest.from_grpc(m.SerializeToString()).inputs[0].data == b""
    m = pb.ModelInferResponse(raw_output_contents=[b""])
    m.outputs.add(name="e", datatype="BYTES", shape=[0])
    assert bytes(InferResponse.from_grpc(m.SerializeToString()).outputs[0].data) == b""


def test_parameter_kinds_and_empty_choice():
    m = pb.ModelInferRequest()
    set_pb_params(m.parameters, {"t": True, "f": False, "neg": -(2**63), "big": 2**64 - 1,
                                 "str": "", "d": -1e300, "none": None})
    m.parameters["uint_small"].uint64_param = 5
    params = InferRequest.from_grpc(m.SerializeToString()).parameters
    assert params == {"t": True, "f": False, "neg": -(2**63), "big": 2**64 - 1, "str": "",
                      "d": -1e300, "none": None, "uint_small": 5}
    assert type(params["t"]) is bool and type(params["d"]) is float


def unknown_fields() -> bytes:
    """One unknown field of every wire type, a nested group included (fields 90..95)."""
    return (b"\xd0\x05\x96\x01"                         # 90 varint
            + b"\xd9\x05" + b"\x01" * 8                 # 91 fixed64
            + b"\xe2\x05\x03abc"                        # 92 length-delimited
            + b"\xed\x05" + b"\x02" * 4                 # 93 fixed32
            + b"\xf3\x05" + b"\xf8\x05\x01" + b"\x83\x06\x08\x01\x84\x06" + b"\xf4\x05")  # 94 group


def ld(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + _varint(len(payload)) + payload


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def test_unknown_fields_are_skipped_at_every_level():
    tensor = pb.ModelInferRequest.InferInputTensor(name="x", datatype="INT32", shape=[4])
    tensor.contents.int_contents.extend([1, -1])
    tensor.parameters["p"].string_param = "v"
    entry = ld(1, b"q") + ld(2, b"\x10\x05" + unknown_fields())
    contents = ld(2, b"\x07\x01") + unknown_fields()
    tensor_bytes = (tensor.SerializeToString() + unknown_fields() + ld(4, entry)
                    + ld(5, contents))
    wire = (unknown_fields() + ld(1, b"m") + ld(5, tensor_bytes) + unknown_fields()
            + ld(6, ld(1, b"o") + unknown_fields()))
    expected = pb.ModelInferRequest.FromString(wire)  # protobuf itself accepts it
    got = InferRequest.from_grpc(wire)
    assert got == request_from_pb(expected)
    assert got.inputs[0].as_numpy().tolist() == [1, -1, 7, 1]
    assert got.inputs[0].parameters == {"p": "v", "q": 5}
    # An unknown field inside a map entry is skipped and the entry kept, as C++ and Go
    # protobuf do (upb moves such an entry to the parent's unknown fields instead).
    entry = ld(1, b"k") + unknown_fields() + ld(2, b"\x10\x01")
    assert InferRequest.from_grpc(ld(4, entry)).parameters == {"k": 1}


def test_unpacked_and_split_repeated_fields():
    # shape unpacked (wire type 0), int64 contents unpacked, fp32 contents split over
    # a packed run, an unpacked element and a second contents message.
    shape = b"\x18\x02\x18\x02"
    fp32 = (ld(6, np.array([1, 2], "<f4").tobytes()) + b"\x35" + np.float32(3).tobytes())
    tensor = ld(1, b"f") + ld(2, b"FP32") + shape + ld(5, fp32) + ld(5, ld(6, np.float32(4).tobytes()))
    wire = ld(5, tensor)
    got = InferRequest.from_grpc(wire)
    assert got == request_from_pb(pb.ModelInferRequest.FromString(wire))
    assert got.as_numpy("f").tolist() == [[1, 2], [3, 4]]
    ints = ld(1, b"i") + ld(2, b"INT64") + b"\x18\x03" + ld(5, b"\x18\x01\x18\x7f" + ld(3, b"\x02"))
    got = InferRequest.from_grpc(ld(5, ints))
    assert got.as_numpy("i").tolist() == [1, -1 & 0x7F, 2]


def test_field_order_does_not_matter():
    req = InferRequest("m", [sample("FP32", [4]), sample("BYTES", [2], 3)], id="x",
                       parameters={"a": 1}, outputs=[RequestedOutput("o")])
    m = request_to_pb(req, raw=True)
    # raw contents before the inputs, outputs between the two inputs, names last
    parts = [pb.ModelInferRequest(raw_input_contents=m.raw_input_contents),
             pb.ModelInferRequest(inputs=m.inputs[:1]),
             pb.ModelInferRequest(outputs=m.outputs),
             pb.ModelInferRequest(inputs=m.inputs[1:]),
             pb.ModelInferRequest(id="x", parameters=m.parameters),
             pb.ModelInferRequest(model_name="m")]
    wire = b"".join(p.SerializeToString() for p in parts)
    assert InferRequest.from_grpc(wire) == req == request_from_pb(
        pb.ModelInferRequest.FromString(wire))
    # a later singular string replaces an earlier one, as protobuf merges
    assert InferRequest.from_grpc(wire + ld(1, b"n")).model_name == "n"


def test_raw_contents_are_slices_of_the_message():
    req = InferRequest("m", [sample("FP32", [1000]), sample("BYTES", [3])])
    wire = join(req.to_grpc())
    whole = np.frombuffer(wire, np.uint8)
    got = InferRequest.from_grpc(wire)
    assert np.shares_memory(got.as_numpy("t_fp32"), whole)
    assert got.inputs[0].data.obj is wire and got.inputs[1].data.obj is wire
    # a single packed fp32 contents run is raw form already: also not copied
    typed = join(req.to_grpc(raw=False))
    assert np.shares_memory(InferRequest.from_grpc(typed).as_numpy("t_fp32"),
                            np.frombuffer(typed, np.uint8))


def test_encoder_references_tensor_buffers():
    big = np.arange(4096, dtype=np.float32)
    small = np.arange(4, dtype=np.float32)
    req = InferRequest("m", [Tensor("a", "FP32", [4096], None, memoryview(big).cast("B")),
                             Tensor("b", "FP32", [4], None, small.tobytes()),
                             Tensor("c", "FP32", [4096], None, big.tobytes())])
    chunks = req.to_grpc()
    assert chunks[1] is req.inputs[0].data and chunks[3] is req.inputs[2].data
    assert len(chunks) == 4  # the small tensor is copied into the header chunk
    copied = sum(len(c) for c in chunks if not any(c is t.data for t in req.inputs))
    assert copied < 200
    assert request_from_pb(pb.ModelInferRequest.FromString(join(chunks))) == req


@pytest.mark.parametrize("wire, message", [
    (b"\x0a\x05ab", "length beyond end"),
    (b"\x08", "truncated varint"),
    (b"\x08" + b"\xff" * 11, "longer than 10 bytes"),
    (b"\x00\x01", "field number 0"),
    (b"\x0f", "wire type 7"),
    (b"\x0a\x02\xff\xfe", "not valid UTF-8"),
    (b"\x09\x01\x02", "truncated fixed-size"),
    (b"\x0b\x14\x01", "mismatched end group"),
    (ld(5, ld(1, b"x") + ld(2, b"FP32") + b"\x18\x02") + ld(7, b"\x00" * 4), "expected 8"),
    (ld(5, ld(1, b"x") + ld(2, b"FP32") + b"\x18\x01"), "expected 4"),
    (ld(5, ld(2, b"FP8")), "unsupported tensor datatype"),
    (ld(5, ld(2, b"FP32")) + ld(7, b"") + ld(7, b""), "2 raw_input_contents entries for 1"),
    (ld(5, ld(2, b"INT8") + b"\x18\x01" + ld(5, ld(2, b"\x80\x02"))), "out of range for INT8"),
    (ld(5, ld(2, b"INT32") + b"\x18\x01" + ld(5, ld(6, b"\x00" * 4))), "does not match datatype"),
    (ld(5, ld(2, b"BYTES") + b"\x18\x01") + ld(7, b"\x09\x00\x00\x00ab"), "malformed BYTES"),
    (ld(5, ld(2, b"FP32") + b"\x18\x00" + ld(5, b"")) + ld(7, b""), "has contents although"),
    (ld(5, ld(2, b"FP32") + b"\x18" + _varint(2**64 - 1)), "negative dimension"),
])
def test_malformed_messages_raise_bad_request(wire, message):
    with pytest.raises(BadRequestError, match=message):
        InferRequest.from_grpc(wire)


def test_truncation_anywhere_never_crashes():
    req = InferRequest("m", [sample("INT16", [3]), sample("BYTES", [2])], id="i",
                       parameters={"p": "x"}, outputs=[RequestedOutput("o", {"b": True})])
    for raw in (True, False):
        wire = join(req.to_grpc(raw=raw))
        for cut in range(len(wire)):
            try:
                InferRequest.from_grpc(wire[:cut])
            except BadRequestError:
                pass


# ------------------------------------------------------------ generated cases

param_values = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1),
                         st.integers(2**63, 2**64 - 1), st.text(max_size=8),
                         st.floats(allow_nan=False), st.none())
params = st.dictionaries(st.text(max_size=6), param_values, max_size=3)


@st.composite
def tensors(draw):
    datatype = draw(st.sampled_from(DATATYPES))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    t = sample(datatype, shape, draw(st.integers(0, 2**32)))
    t.name = draw(st.text(max_size=6))
    t.parameters = draw(params)
    return t


@st.composite
def requests(draw):
    return InferRequest(draw(st.text(max_size=8)), draw(st.lists(tensors(), max_size=3)),
                        model_version=draw(st.text(max_size=3)), id=draw(st.text(max_size=5)),
                        parameters=draw(params),
                        outputs=[RequestedOutput(n, p) for n, p in
                                 draw(st.lists(st.tuples(st.text(max_size=4), params), max_size=2))])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.booleans())
def test_generated_requests_agree_with_protobuf(req, raw):
    wire = join(req.to_grpc(raw=raw))
    assert request_from_pb(pb.ModelInferRequest.FromString(wire)) == req
    raw = raw or any(t.datatype in ("FP16", "BF16") for t in req.inputs)
    assert InferRequest.from_grpc(request_to_pb(req, raw).SerializeToString()) == req


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(tensors(), max_size=3), params, st.booleans())
def test_generated_responses_agree_with_protobuf(outputs, parameters, raw):
    resp = InferResponse("m", outputs, id="i", parameters=parameters)
    wire = join(resp.to_grpc(raw=raw))
    assert response_from_pb(pb.ModelInferResponse.FromString(wire)) == resp
    raw = raw or any(t.datatype in ("FP16", "BF16") for t in outputs)
    assert InferResponse.from_grpc(response_to_pb(resp, raw).SerializeToString()) == resp


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_parse_or_raise_bad_request(wire):
    try:
        InferRequest.from_grpc(wire)
    except BadRequestError:
        pass


def test_encoders_check_data_replaced_after_construction():
    t = sample("INT32", [2])
    t.data = b"\x00" * 7
    with pytest.raises(BadRequestError, match="expected 8"):
        InferRequest("m", [t]).to_grpc()
    with pytest.raises(BadRequestError, match="expected 8"):
        InferResponse("m", [t]).to_grpc(raw=False)
    b = sample("BYTES", [1])
    b.data = b"\xff\x00\x00\x00ab"  # a length prefix pointing past the end
    with pytest.raises(BadRequestError, match="malformed BYTES"):
        InferRequest("m", [b]).to_grpc(raw=False)


def test_any_contiguous_buffer_can_be_parsed():
    req = InferRequest("m", [sample("FP64", [100]), sample("BYTES", [2])], id="b")
    wire = join(req.to_grpc())
    for buf in (bytearray(wire), memoryview(wire), np.frombuffer(wire, np.uint8),
                memoryview(b"xx" + wire + b"yy")[2:-2]):
        assert InferRequest.from_grpc(buf) == req
    held = bytearray(wire)
    parsed = InferRequest.from_grpc(held)
    with pytest.raises(BufferError):  # the slices pin the buffer: it cannot move under them
        held.extend(b"more")
    assert parsed == req
