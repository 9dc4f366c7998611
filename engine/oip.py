"""Open Inference Protocol v2 requests and responses, in its three encodings.

* gRPC: ``ModelInferRequest``/``ModelInferResponse`` wire bytes (``from_grpc``,
  ``to_grpc``), read and written by the Cython codec in ``engine._core``;
* v2 JSON: ``{"inputs": [{"name", "shape", "datatype", "data"}]}`` (``from_json``,
  ``to_json``);
* the HTTP binary tensor extension: a JSON header of ``Inference-Header-Content-Length``
  bytes followed by raw tensor bytes (``from_http``, ``to_http``).

Every ``Tensor`` keeps its elements in raw form (see ``engine._core.Tensor``), so gRPC
raw contents and binary-extension tensors pass between the encodings without being
copied; ``as_numpy`` gives ``np.frombuffer`` views over the received buffer. Encoders
return a list of buffers for ``writelines``; ``join`` makes one ``bytes`` when the
transport needs it. Model name and version of an HTTP request travel in the URL
(``/v2/models/<name>[/versions/<v>]/infer``), so they are keyword arguments there.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import orjson

from . import _core
from ._core import OIP_DATATYPES, RequestedOutput, Tensor
from .errors import BadRequestError

if sys.byteorder != "little":  # raw tensor form is little-endian; views assume it
    raise ImportError("engine.oip supports little-endian machines only")

__all__ = [
    "HEADER_LENGTH", "OIP_DATATYPES", "InferRequest", "InferResponse", "RequestedOutput",
    "Tensor", "bf16_to_float32", "float32_to_bf16", "from_numpy", "join",
]

HEADER_LENGTH = "Inference-Header-Content-Length"
"""HTTP header giving the JSON header's length in a binary-extension body."""

_SIZE = "binary_data_size"
_NUMPY_DATATYPE = {
    np.dtype(np.bool_): "BOOL", np.dtype(np.uint8): "UINT8", np.dtype(np.uint16): "UINT16",
    np.dtype(np.uint32): "UINT32", np.dtype(np.uint64): "UINT64", np.dtype(np.int8): "INT8",
    np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32", np.dtype(np.int64): "INT64",
    np.dtype(np.float16): "FP16", np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64",
}
_dumps = orjson.dumps
_loads = orjson.loads
# orjson writes 1-d numpy arrays (aligned or not) straight from their memory.
_JSON_OPTS = orjson.OPT_SERIALIZE_NUMPY


def join(chunks: Iterable) -> bytes:
    """One ``bytes`` from an encoder's buffers: the only copy of tensor payload."""
    return b"".join(chunks)


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """BF16 elements (uint16 bit patterns, as ``as_numpy`` gives them) as float32."""
    return (np.asarray(bits, dtype="<u2").astype("<u4") << 16).view("<f4")


def float32_to_bf16(values) -> np.ndarray:
    """float32 values rounded to nearest-even BF16, as uint16 bit patterns (NaN kept)."""
    bits = np.asarray(values, dtype="<f4").view("<u4")
    rounded = (bits + (0x7FFF + ((bits >> 16) & 1))) >> 16
    quiet_nan = (bits >> 16) | 0x40
    return np.where(np.isnan(bits.view("<f4")), quiet_nan, rounded).astype("<u2")


def _bytes_raw(elements: Iterable) -> bytes:
    """BYTES raw form: each element a 4-byte little-endian length, then its bytes."""
    parts = []
    for e in elements:
        if isinstance(e, str):
            e = e.encode()
        elif not isinstance(e, (bytes, bytearray, memoryview, np.bytes_)):
            raise BadRequestError(f"BYTES element {e!r} is not bytes or str")
        parts.append(len(e).to_bytes(4, "little"))
        parts.append(e)
    return b"".join(parts)


def from_numpy(name: str, array, datatype: str | None = None,
               parameters: Mapping | None = None) -> Tensor:
    """A ``Tensor`` over a numpy array (no copy when it is C-contiguous little-endian).

    ``datatype`` defaults from the dtype; bytes, str and object arrays become BYTES;
    pass ``datatype="BF16"`` with uint16 bit patterns (see ``float32_to_bf16``).
    """
    array = np.asarray(array)
    if datatype is None:
        if array.dtype.kind in "OSU":
            datatype = "BYTES"
        else:
            datatype = _NUMPY_DATATYPE.get(array.dtype.newbyteorder("="))
            if datatype is None:
                raise BadRequestError(f"tensor {name!r}: no OIP datatype for {array.dtype}")
    data: Any
    if datatype == "BYTES":
        data = _bytes_raw(array.reshape(-1).tolist())
    else:
        array = np.asarray(array, dtype=_core.oip_numpy_dtype(datatype), order="C")
        data = memoryview(array.reshape(-1)).cast("B")
    return Tensor(name, datatype, array.shape, parameters, data)


def _tensor_json(t: Tensor, binary: bool, buffers: list) -> dict:
    entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
    params = dict(t.parameters)
    if binary:
        params[_SIZE] = memoryview(t.data).nbytes
        buffers.append(t.data)
    else:
        params.pop(_SIZE, None)
    if params:
        entry["parameters"] = params
    if not binary:
        values = t.as_numpy().reshape(-1)
        if t.datatype == "BYTES":
            try:
                entry["data"] = [bytes(v).decode() for v in values]
            except UnicodeDecodeError:
                raise BadRequestError(f"tensor {t.name!r}: BYTES element is not UTF-8 and "
                                      "cannot travel in JSON; use the binary form") from None
        elif t.datatype == "BF16":
            entry["data"] = bf16_to_float32(values)
        else:
            entry["data"] = values
    return entry


def _check_params(obj, where: str) -> dict:
    if obj is None:
        return {}
    if not isinstance(obj, dict):
        raise BadRequestError(f"{where}.parameters must be an object")
    for key, value in obj.items():
        if value is not None and not isinstance(value, (bool, int, float, str)):
            raise BadRequestError(f"{where}.parameters.{key}: {type(value).__name__} is not "
                                  "a bool, number or string")
    return obj


def _json_shape(obj, where: str) -> tuple:
    # the ranges (non-negative, int64, a countable product) are the codec's, which
    # names the tensor: Tensor() checks them
    if not isinstance(obj, list) or not all(type(d) is int for d in obj):
        raise BadRequestError(f"{where}.shape must be a list of integers")
    return tuple(obj)


def _tensor_from_json(entry, where: str, body: memoryview | None, offset: int):
    """One JSON tensor; binary-extension data is sliced from ``body`` at ``offset``."""
    if not isinstance(entry, dict):
        raise BadRequestError(f"{where} must be an object")
    name, datatype = entry.get("name"), entry.get("datatype")
    if not isinstance(name, str) or not isinstance(datatype, str):
        raise BadRequestError(f"{where} needs a string name and datatype")
    if datatype not in OIP_DATATYPES:
        raise BadRequestError(f"{where}: unsupported tensor datatype {datatype!r}")
    shape = _json_shape(entry.get("shape"), where)
    params = dict(_check_params(entry.get("parameters"), where))
    size = params.pop(_SIZE, None)
    if size is not None:
        if body is None or type(size) is not int or size < 0 or offset + size > len(body):
            raise BadRequestError(f"{where}.parameters.{_SIZE}={size!r} does not fit the body")
        return Tensor(name, datatype, shape, params, body[offset:offset + size]), offset + size
    if "data" not in entry:
        raise BadRequestError(f"{where} has neither data nor {_SIZE}")
    data = entry["data"]
    try:
        if datatype == "BYTES":
            raw = _bytes_raw(np.asarray(data, dtype=object).reshape(-1).tolist())
        elif datatype == "BF16":
            raw = float32_to_bf16(np.asarray(data, dtype="<f4").reshape(-1)).tobytes()
        else:
            raw = np.asarray(data, dtype=_core.oip_numpy_dtype(datatype)).reshape(-1).tobytes()
    except (ValueError, TypeError, OverflowError) as e:
        raise BadRequestError(f"{where}.data does not hold {datatype} values: {e}") from None
    return Tensor(name, datatype, shape, params, raw), offset


def _load_json(body, header_length: int | None):
    """Parse the JSON document (the header only, with the binary extension)."""
    view = memoryview(body)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if header_length is None:
        head, tail = view, None
    else:
        if not 0 <= header_length <= len(view):
            raise BadRequestError(f"{HEADER_LENGTH} {header_length} exceeds the body")
        head, tail = view[:header_length], view
    try:
        doc = _loads(head)
    except orjson.JSONDecodeError as e:
        raise BadRequestError(f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadRequestError("the inference body must be a JSON object")
    return doc, tail, (header_length or 0)


def _tensors_from_json(doc: dict, key: str, tail, offset: int) -> list:
    entries = doc.get(key, [])
    if not isinstance(entries, list):
        raise BadRequestError(f"{key} must be a list")
    tensors = []
    for i, entry in enumerate(entries):
        t, offset = _tensor_from_json(entry, f"{key}[{i}]", tail, offset)
        tensors.append(t)
    if tail is not None and offset != len(tail):
        raise BadRequestError(f"{len(tail) - offset} bytes of binary data not claimed by "
                              f"any tensor's {_SIZE}")
    return tensors


def _str_field(doc: dict, key: str) -> str:
    value = doc.get(key, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequestError(f"{key} must be a string")
    return value


class _Message(_core.Message):
    __slots__ = ("model_name", "model_version", "id", "parameters")
    _fields: tuple[str, ...] = ()
    _tensor_field = ""           # the message's tensors: "inputs" or "outputs"

    def _tensors(self) -> list[Tensor]:
        return getattr(self, self._tensor_field)

    def tensor(self, name: str) -> Tensor:
        """The input (request) or output (response) tensor called ``name``."""
        for t in self._tensors():
            if t.name == name:
                return t
        raise KeyError(name)

    def as_numpy(self, name: str) -> np.ndarray:
        """Tensor ``name`` as numpy: a view sharing memory with the received buffer."""
        return self.tensor(name).as_numpy()

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, k) == getattr(other, k) for k in self._fields)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._fields)
        return f"{type(self).__name__}({fields})"


class InferRequest(_Message):
    """A v2 inference request: ``inputs`` are ``Tensor``, ``outputs`` the requested
    ``RequestedOutput`` (empty: the model returns all its outputs)."""

    __slots__ = ("inputs", "outputs")
    _fields = ("model_name", "model_version", "id", "parameters", "inputs", "outputs")
    _tensor_field = "inputs"

    def __init__(self, model_name: str = "", inputs: Iterable[Tensor] = (), *,
                 model_version: str = "", id: str = "", parameters: Mapping | None = None,
                 outputs: Iterable[RequestedOutput] = ()):
        self.model_name = model_name
        self.model_version = model_version
        self.id = id
        self.parameters = dict(parameters) if parameters else {}
        self.inputs = list(inputs)
        self.outputs = list(outputs)

    @classmethod
    def from_grpc(cls, buf) -> InferRequest:
        """Parse ModelInferRequest wire bytes; raw inputs stay views of ``buf``."""
        self = cls.__new__(cls)
        (self.model_name, self.model_version, self.id, self.parameters, self.inputs,
         self.outputs) = _core.oip_parse_request(buf)
        return self

    def to_grpc(self, raw: bool = True) -> list:
        """ModelInferRequest as buffers (``join`` them); tensors are referenced, not copied."""
        return _core.oip_encode_request(self.model_name, self.model_version, self.id,
                                        self.parameters, self.inputs, self.outputs, raw)

    @classmethod
    def from_http(cls, body, header_length: int | None = None, *, model_name: str = "",
                  model_version: str = "") -> InferRequest:
        """Parse a v2 HTTP body: JSON, or with ``header_length`` (the value of
        ``Inference-Header-Content-Length``) the binary tensor extension."""
        doc, tail, offset = _load_json(body, header_length)
        outputs = []
        for i, entry in enumerate(doc.get("outputs") or []):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise BadRequestError(f"outputs[{i}] needs a string name")
            outputs.append(RequestedOutput(
                entry["name"], _check_params(entry.get("parameters"), f"outputs[{i}]")))
        return cls(model_name, _tensors_from_json(doc, "inputs", tail, offset),
                   model_version=model_version, id=_str_field(doc, "id"),
                   parameters=_check_params(doc.get("parameters"), "request"),
                   outputs=outputs)

    from_json = from_http

    def to_http(self, binary: bool = True) -> tuple[list, int | None]:
        """``(buffers, header_length)``: all inputs binary when ``binary`` (send
        ``header_length`` as ``Inference-Header-Content-Length``), else plain JSON
        and ``header_length`` None."""
        buffers: list = []
        doc: dict = {}
        if self.id:
            doc["id"] = self.id
        if self.parameters:
            doc["parameters"] = self.parameters
        doc["inputs"] = [_tensor_json(t, binary, buffers) for t in self.inputs]
        if self.outputs:
            doc["outputs"] = [{"name": o.name, "parameters": o.parameters} if o.parameters
                              else {"name": o.name} for o in self.outputs]
        head = _dumps(doc, option=_JSON_OPTS)
        return [head, *buffers], (len(head) if binary else None)

    def to_json(self) -> bytes:
        """The v2 JSON body (every tensor's data inline)."""
        return self.to_http(False)[0][0]

    def wants_binary(self, output_name: str) -> bool:
        """Whether the response should carry output ``output_name`` in binary form:
        its requested ``binary_data`` parameter, else ``binary_data_output``."""
        for o in self.outputs:
            if o.name == output_name and "binary_data" in o.parameters:
                return bool(o.parameters["binary_data"])
        return bool(self.parameters.get("binary_data_output", False))


class InferResponse(_Message):
    """A v2 inference response: ``outputs`` are ``Tensor``."""

    __slots__ = ("outputs",)
    _fields = ("model_name", "model_version", "id", "parameters", "outputs")
    _tensor_field = "outputs"

    def __init__(self, model_name: str = "", outputs: Iterable[Tensor] = (), *,
                 model_version: str = "", id: str = "", parameters: Mapping | None = None):
        self.model_name = model_name
        self.model_version = model_version
        self.id = id
        self.parameters = dict(parameters) if parameters else {}
        self.outputs = list(outputs)

    @classmethod
    def from_grpc(cls, buf) -> InferResponse:
        """Parse ModelInferResponse wire bytes; raw outputs stay views of ``buf``."""
        self = cls.__new__(cls)
        (self.model_name, self.model_version, self.id, self.parameters, self.outputs,
         _) = _core.oip_parse_response(buf)
        return self

    def to_grpc(self, raw: bool = True) -> list:
        """ModelInferResponse as buffers (``join`` them); tensors are referenced."""
        return _core.oip_encode_response(self.model_name, self.model_version, self.id,
                                         self.parameters, self.outputs, raw)

    @classmethod
    def from_http(cls, body, header_length: int | None = None) -> InferResponse:
        """Parse a v2 HTTP response body (JSON, or binary extension with ``header_length``)."""
        doc, tail, offset = _load_json(body, header_length)
        return cls(_str_field(doc, "model_name"),
                   _tensors_from_json(doc, "outputs", tail, offset),
                   model_version=_str_field(doc, "model_version"), id=_str_field(doc, "id"),
                   parameters=_check_params(doc.get("parameters"), "response"))

    from_json = from_http

    def to_http(self, binary: bool | Iterable[str] | InferRequest = False
                ) -> tuple[list, int | None]:
        """``(buffers, header_length)``; ``binary`` picks the outputs sent as raw bytes:
        all (True), none (False), those named, or as an ``InferRequest`` asked for.
        ``header_length`` is None when no output is binary (plain JSON)."""
        if isinstance(binary, InferRequest):
            chosen = {t.name for t in self.outputs if binary.wants_binary(t.name)}
        elif binary is True or binary is False:
            chosen = {t.name for t in self.outputs} if binary else set()
        else:
            chosen = set(binary)
        buffers: list = []
        doc: dict = {"model_name": self.model_name}
        if self.model_version:
            doc["model_version"] = self.model_version
        if self.id:
            doc["id"] = self.id
        if self.parameters:
            doc["parameters"] = self.parameters
        doc["outputs"] = [_tensor_json(t, t.name in chosen, buffers) for t in self.outputs]
        head = _dumps(doc, option=_JSON_OPTS)
        return [head, *buffers], (len(head) if buffers else None)

    def to_json(self) -> bytes:
        """The v2 JSON body (every tensor's data inline)."""
        return self.to_http(False)[0][0]

