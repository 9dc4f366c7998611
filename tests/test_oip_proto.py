"""protos/grpc_predict_v2.proto against the published KServe/Triton numbering, the
build-generated modules, and the codec behind a real grpc.aio transport."""
from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import numpy as np

from engine.oip import InferRequest, InferResponse, from_numpy, join
from engine.protos import grpc_predict_v2_pb2 as pb
from engine.protos import grpc_predict_v2_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parent.parent
TENSOR = {"name": (1, "string"), "datatype": (2, "string"), "shape": (3, "repeated int64"),
          "parameters": (4, "map"), "contents": (5, "InferTensorContents")}
# Field numbers and types as kserve/kserve python/kserve/kserve/protocol/grpc/
# grpc_predict_v2.proto and triton-inference-server/common grpc_service.proto publish them.
PUBLISHED = {
    "ServerLiveRequest": {},
    "ServerLiveResponse": {"live": (1, "bool")},
    "ServerReadyRequest": {},
    "ServerReadyResponse": {"ready": (1, "bool")},
    "ModelReadyRequest": {"name": (1, "string"), "version": (2, "string")},
    "ModelReadyResponse": {"ready": (1, "bool")},
    "ServerMetadataRequest": {},
    "ServerMetadataResponse": {"name": (1, "string"), "version": (2, "string"),
                               "extensions": (3, "repeated string")},
    "ModelMetadataRequest": {"name": (1, "string"), "version": (2, "string")},
    "ModelMetadataResponse": {"name": (1, "string"), "versions": (2, "repeated string"),
                              "platform": (3, "string"),
                              "inputs": (4, "repeated TensorMetadata"),
                              "outputs": (5, "repeated TensorMetadata")},
    "ModelMetadataResponse.TensorMetadata": {"name": (1, "string"), "datatype": (2, "string"),
                                             "shape": (3, "repeated int64")},
    "ModelInferRequest": {"model_name": (1, "string"), "model_version": (2, "string"),
                          "id": (3, "string"), "parameters": (4, "map"),
                          "inputs": (5, "repeated InferInputTensor"),
                          "outputs": (6, "repeated InferRequestedOutputTensor"),
                          "raw_input_contents": (7, "repeated bytes")},
    "ModelInferRequest.InferInputTensor": TENSOR,
    "ModelInferRequest.InferRequestedOutputTensor": {"name": (1, "string"),
                                                     "parameters": (2, "map")},
    "ModelInferResponse": {"model_name": (1, "string"), "model_version": (2, "string"),
                           "id": (3, "string"), "parameters": (4, "map"),
                           "outputs": (5, "repeated InferOutputTensor"),
                           "raw_output_contents": (6, "repeated bytes")},
    "ModelInferResponse.InferOutputTensor": TENSOR,
    # 4 and 5 exist in Triton's proto only
    "InferParameter": {"bool_param": (1, "bool"), "int64_param": (2, "int64"),
                       "string_param": (3, "string"), "double_param": (4, "double"),
                       "uint64_param": (5, "uint64")},
    "InferTensorContents": {"bool_contents": (1, "repeated bool"),
                            "int_contents": (2, "repeated int32"),
                            "int64_contents": (3, "repeated int64"),
                            "uint_contents": (4, "repeated uint32"),
                            "uint64_contents": (5, "repeated uint64"),
                            "fp32_contents": (6, "repeated float"),
                            "fp64_contents": (7, "repeated double"),
                            "bytes_contents": (8, "repeated bytes")},
}
SCALAR = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool",
          9: "string", 12: "bytes", 13: "uint32"}
RPCS = ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
        "ModelInfer")


def describe(field) -> str:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "map"
    kind = field.message_type.name if field.message_type is not None else SCALAR[field.type]
    # protobuf >= 5 has is_repeated; older releases only label
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        repeated = field.label == field.LABEL_REPEATED
    return f"repeated {kind}" if repeated else kind


def test_messages_match_the_published_numbering():
    for name, fields in PUBLISHED.items():
        desc = pb.DESCRIPTOR.message_types_by_name[name.split(".")[0]]
        for nested in name.split(".")[1:]:
            desc = desc.nested_types_by_name[nested]
        assert desc.full_name == f"inference.{name}"
        got = {f.name: (f.number, describe(f)) for f in desc.fields}
        assert got == fields, name
    entry = pb.ModelInferRequest.DESCRIPTOR.fields_by_name["parameters"].message_type
    assert describe(entry.fields_by_name["key"]) == "string"
    assert entry.fields_by_name["value"].message_type.full_name == "inference.InferParameter"
    oneof = pb.InferParameter.DESCRIPTOR.oneofs_by_name["parameter_choice"]
    assert [f.number for f in oneof.fields] == [1, 2, 3, 4, 5]


def test_service_methods():
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert service.full_name == "inference.GRPCInferenceService"
    got = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert got == {name: (f"{name}Request", f"{name}Response") for name in RPCS}


def test_generated_modules_carry_the_generator_header_and_are_ignored():
    for module in (pb, pb_grpc):
        path = Path(module.__file__)
        head = path.read_text().splitlines()[:3]
        assert any("Generated by the" in line and "DO NOT EDIT" in line for line in head)
        rel = path.relative_to(ROOT)
        assert subprocess.run(["git", "check-ignore", "-q", str(rel)], cwd=ROOT).returncode == 0


class _RawCodecServer:
    """ModelInfer over grpc.aio with bytes in and out: the codec does all the work."""

    async def infer(self, request: bytes, context) -> bytes:
        req = InferRequest.from_grpc(request)
        x = req.as_numpy("x")
        outputs = [from_numpy("y", x * 2), from_numpy("s", np.array([b"\xff", b""], object))]
        return join(InferResponse(req.model_name, outputs, id=req.id,
                                  parameters={"seen": req.parameters["k"]}).to_grpc())


async def _round_trip(raw: bool):
    handler = grpc.method_handlers_generic_handler("inference.GRPCInferenceService", {
        "ModelInfer": grpc.unary_unary_rpc_method_handler(_RawCodecServer().infer)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            request = pb.ModelInferRequest(model_name="double", id="7")
            request.parameters["k"].int64_param = 5
            x = np.arange(-3, 9, dtype=np.float32).reshape(3, 4)
            tensor = request.inputs.add(name="x", datatype="FP32", shape=[3, 4])
            if raw:
                request.raw_input_contents.append(x.tobytes())
            else:
                tensor.contents.fp32_contents.extend(x.ravel().tolist())
            reply = await stub.ModelInfer(request, timeout=10)
    finally:
        await server.stop(None)
    return x, reply


def test_generated_stub_talks_to_the_codec_over_grpc(loop):
    for raw in (True, False):
        x, reply = loop.run(_round_trip(raw))
        assert (reply.model_name, reply.id) == ("double", "7")
        assert reply.parameters["seen"].int64_param == 5
        assert [o.name for o in reply.outputs] == ["y", "s"]
        assert list(reply.outputs[0].shape) == [3, 4]
        y = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(3, 4)
        assert np.array_equal(y, x * 2)
        assert reply.raw_output_contents[1] == b"\x01\x00\x00\x00\xff\x00\x00\x00\x00"
