"""Shape and size arithmetic of the OIP codec, against Python's exact integers."""
from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine import BadRequestError, _core
from engine.oip import InferRequest, Tensor, join
from engine.protos import grpc_predict_v2_pb2 as pb

INT64_MAX = 2**63 - 1
ITEMSIZE = {"BOOL": 1, "UINT8": 1, "INT16": 2, "FP16": 2, "BF16": 2, "INT32": 4,
            "FP32": 4, "UINT64": 8, "FP64": 8}


def exact_extent(shape, unit: int):
    """The oracle: ``unit`` * prod(shape), or None where the codec must refuse it
    (a dimension outside int64's non-negative range, or, as numpy requires, ``unit``
    times the product of the nonzero dimensions past int64)."""
    if any(d < 0 or d > INT64_MAX for d in shape):
        return None
    if unit * math.prod(d for d in shape if d) > INT64_MAX:
        return None
    return unit * math.prod(shape)


# Dimensions around every boundary the arithmetic has: small, zero, powers of two near
# 2**31, 2**32, 2**61..2**64, negative, and far past int64.
dims = st.one_of(
    st.integers(0, 8),
    st.integers(0, 2**20),
    st.sampled_from([2**31 - 1, 2**31, 2**32, 2**32 + 1, 2**61, 2**62, 2**62 + 4,
                     INT64_MAX, 2**63, 2**64 - 1, 2**64]),
    st.integers(-(2**64), -1),
    st.integers(2**63, 2**70),
)


@given(st.lists(dims, max_size=6))
def test_element_count_agrees_with_exact_integers(shape):
    want = exact_extent(shape, 1)
    if want is None:
        with pytest.raises(BadRequestError):
            _core.oip_numel(shape)
    else:
        assert _core.oip_numel(shape) == want == math.prod(shape)


@given(st.sampled_from(sorted(ITEMSIZE)), st.lists(dims, max_size=6))
def test_byte_size_agrees_with_exact_integers(datatype, shape):
    want = exact_extent(shape, ITEMSIZE[datatype])
    if want is None:
        with pytest.raises(BadRequestError):
            _core.oip_nbytes(datatype, shape)
    else:
        assert _core.oip_nbytes(datatype, shape) == want


@given(st.lists(dims, max_size=6))
def test_bytes_tensors_count_four_bytes_an_element_and_fit_numpy(shape):
    # BYTES elements become a numpy object array (8 bytes a pointer)
    want = exact_extent(shape, 8)
    if want is None:
        with pytest.raises(BadRequestError):
            _core.oip_nbytes("BYTES", shape)
    else:
        assert _core.oip_nbytes("BYTES", shape) == want // 2


@given(st.sampled_from(["FP64", "INT32", "UINT8", "BYTES"]), st.lists(dims, max_size=4),
       st.integers(0, 64))
def test_a_parsed_tensor_is_accepted_only_when_its_data_fits_exactly(datatype, shape, size):
    unit = 8 if datatype == "BYTES" else ITEMSIZE[datatype]
    extent = exact_extent(shape, unit)
    data = (b"\x00\x00\x00\x00" * (size // 4)) if datatype == "BYTES" else b"\x07" * size
    if datatype == "BYTES":
        fits = extent is not None and extent // 8 == size // 4
    else:
        fits = extent == size
    m = pb.ModelInferRequest(model_name="m")
    # int64 on the wire: dims beyond it cannot be sent, negative ones can
    m.inputs.add(name="x", datatype=datatype,
                  shape=[d if -2**63 <= d <= INT64_MAX else -1 for d in shape])
    m.raw_input_contents.append(data)
    wire = m.SerializeToString()
    if fits:
        t = InferRequest.from_grpc(wire).inputs[0]
        assert t.as_numpy().shape == tuple(shape)
    else:
        with pytest.raises(BadRequestError, match="tensor 'x'"):
            InferRequest.from_grpc(wire)


# ---- the cases an attacker sent -------------------------------------------------------

def grpc_request(datatype, shape, raw: bytes) -> bytes:
    m = pb.ModelInferRequest(model_name="m")
    m.inputs.add(name="x", datatype=datatype, shape=shape)
    m.raw_input_contents.append(raw)
    return m.SerializeToString()


@pytest.mark.parametrize("datatype, shape, raw, message", [
    ("FP64", [2**61], b"", "too large"),                     # 2**61 * 8 wraps to 0
    ("INT32", [2**62 + 4], b"\x00" * 16, "too large"),        # wraps to 16
    ("UINT8", [INT64_MAX, 2], b"", "element count exceeds"),
    ("FP32", [0, 2**62, 2**62], b"", "too large"),            # numpy refuses it too
    ("FP32", [-1], b"", "negative dimension -1"),
    ("FP32", [3, -2**63], b"", "negative dimension"),
    ("BYTES", [2**40], b"\x00" * 16, "cannot hold"),          # never walked or allocated
    ("BYTES", [2**61], b"", "too large"),
])
def test_wrapping_shapes_are_refused_with_the_tensor_name(datatype, shape, raw, message):
    with pytest.raises(BadRequestError, match=f"tensor 'x'.*{message}"):
        InferRequest.from_grpc(grpc_request(datatype, shape, raw))


@pytest.mark.parametrize("shape_json, raw, message", [
    (b"[18446744073709551615]", b"", "too large a dimension 18446744073709551615"),
    (b"[9223372036854775808]", b"", "too large a dimension"),
    (b"[2305843009213693952]", b"", "too large"),
    (b"[-1]", b"", "negative dimension"),
])
def test_v2_http_shapes_are_refused_with_the_tensor_name(shape_json, raw, message):
    binary = (b'{"inputs":[{"name":"x","datatype":"FP64","shape":' + shape_json
              + b',"parameters":{"binary_data_size":0}}]}')
    plain = b'{"inputs":[{"name":"x","datatype":"FP64","shape":' + shape_json + b',"data":[]}]}'
    with pytest.raises(BadRequestError, match=f"tensor 'x'.*{message}"):
        InferRequest.from_http(binary + raw, len(binary))
    with pytest.raises(BadRequestError, match=f"tensor 'x'.*{message}"):
        InferRequest.from_http(plain)


def test_a_huge_python_integer_dimension_is_named_by_its_size():
    with pytest.raises(BadRequestError, match="too large a dimension <16610-bit integer>"):
        Tensor("x", "FP32", [10**5000])


def test_ten_thousand_dimensions_give_a_short_message():
    with pytest.raises(BadRequestError) as e:
        InferRequest.from_grpc(grpc_request("FP32", [1] * 10_000, b""))
    text = str(e.value)
    assert len(text) < 400, len(text)
    assert text.startswith("tensor 'x': 0 bytes of data for FP32 shape [1, 1,")
    assert "... 9984 more ..." in text and "(10000 dimensions)" in text
    assert text.endswith("(expected 4)")


def test_a_shape_changed_after_validation_is_checked_again():
    t = Tensor("s", "BYTES", [1], data=b"\x01\x00\x00\x00a")
    t.shape = [2**40]
    with pytest.raises(BadRequestError, match="tensor 's'.*cannot hold"):
        t.as_numpy()          # counted before numpy allocates anything
    t.shape = [2**64]
    with pytest.raises(BadRequestError, match="too large a dimension"):
        InferRequest("m", [t]).to_grpc()
    with pytest.raises(BadRequestError, match="too large a dimension"):
        InferRequest("m", [t]).to_grpc(raw=False)


def test_empty_and_zero_shapes_still_work():
    assert _core.oip_numel([]) == 1 and _core.oip_nbytes("FP64", []) == 8
    t = Tensor("z", "FP32", [0, 2**30, 2**30])
    req = InferRequest.from_grpc(join(InferRequest("m", [t]).to_grpc()))
    assert req.inputs[0].as_numpy().shape == (0, 2**30, 2**30)
    assert orjson.loads(req.to_json())["inputs"][0]["shape"] == [0, 2**30, 2**30]
    np.testing.assert_array_equal(Tensor("s", "FP32", [], data=b"\x00" * 4).as_numpy(),
                                  np.float32(0))
