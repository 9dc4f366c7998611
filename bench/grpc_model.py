"""The gRPC side of bench/grpc_load.py: ModelInfer bodies, the identity model, the
Go reference binary, and the grpcio probes that check every answer.

The identity model answers a ModelInferRequest with the ModelInferResponse whose
outputs are its inputs. The two messages share field numbers 1-5 (and so do
InferInputTensor and InferOutputTensor), so the answer is the request without field 6
(requested outputs) and with field 7 (raw_input_contents) renumbered 6
(raw_output_contents): `identity_response` does that on the wire, without protobuf.
The fast model is bench/goforward in `-identity` mode; this module's
`python -m bench.grpc_model` (grpc.aio, raw bytes) stands in when Go is missing.
"""
from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
COUNT = "/bench.Identity/Count"
GO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goforward")
GOPATH = "/usr/share/gocode"
GRPC_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def identity_response(request: bytes) -> bytes:
    """The serialized ModelInferResponse of the identity model for a serialized request."""
    out = []
    i = 0
    while i < len(request):
        key, j = _varint(request, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, end = _varint(request, j)
        elif wire == 1:
            end = j + 8
        elif wire == 5:
            end = j + 4
        elif wire == 2:
            size, j2 = _varint(request, j)
            end = j2 + size
        else:
            raise ValueError(f"wire type {wire}")
        if end > len(request):
            raise ValueError("truncated message")
        if field == 7:
            out.append(_put_varint(6 << 3 | wire) + request[j:end])
        elif field != 6:
            out.append(request[i:end])
        i = end
    return b"".join(out)


def infer_request(values: int, model: str = "m") -> bytes:
    """A serialized ModelInferRequest: one FP32 [1, values] input `x` in raw_input_contents."""
    import numpy as np

    from engine.protos import grpc_predict_v2_pb2 as pb
    req = pb.ModelInferRequest(model_name=model, id="bench")
    req.inputs.add(name="x", datatype="FP32", shape=[1, values])
    req.raw_input_contents.append(np.random.default_rng(values).random(values, dtype=np.float32).tobytes())
    return req.SerializeToString()


def grpc_frame(message: bytes) -> bytes:
    """One length-prefixed gRPC message (uncompressed): what h2load sends as the body."""
    return b"\0" + struct.pack(">I", len(message)) + message


def same_answer(got: bytes, expected: bytes) -> str | None:
    """None when `got` carries the tensors of `expected` bit-exact (both serialized
    ModelInferResponses), else what differs. Model name, version, id and parameters
    are not compared: a router may name its graph instead of the model."""
    from engine.protos import grpc_predict_v2_pb2 as pb
    try:
        g = pb.ModelInferResponse.FromString(got)
    except Exception as err:  # noqa: BLE001 (protobuf's DecodeError is not exported stably)
        return f"not a ModelInferResponse ({err})"
    want = pb.ModelInferResponse.FromString(expected)
    g_out = [(o.name, o.datatype, list(o.shape)) for o in g.outputs]
    w_out = [(o.name, o.datatype, list(o.shape)) for o in want.outputs]
    if g_out != w_out:
        return f"outputs {g_out} instead of {w_out}"
    if list(g.raw_output_contents) != list(want.raw_output_contents):
        return "raw_output_contents differ"
    return None


def check_calls(port: int, message: bytes, expected: bytes, n: int = 5, timeout: float = 10.0) -> int:
    """Make `n` ModelInfer calls with grpcio; raise unless each is OK and `same_answer`.
    Returns the length of the last answer's message."""
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(MODEL_INFER)
        for _ in range(n):
            try:
                got = call(message, timeout=timeout)
            except grpc.RpcError as e:
                raise RuntimeError(f"ModelInfer failed: {e.code().name}: {e.details()}") from None
            wrong = same_answer(got, expected)
            if wrong:
                raise RuntimeError(f"wrong answer: {wrong}")
    return len(got)


def model_calls(port: int, timeout: float = 10.0) -> int:
    """ModelInfer calls the identity model has answered so far."""
    import grpc
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return struct.unpack("<Q", channel.unary_unary(COUNT)(b"", timeout=timeout))[0]


def build_go(outdir: str, timeout: float = 300.0) -> tuple[str | None, str]:
    """Build bench/goforward into `outdir` against Debian's grpc-go (GOPATH mode, no
    network). Returns (binary, "") or (None, why it is not available)."""
    go = shutil.which("go")
    if go is None:
        return None, "go is not installed (bench/setup.sh installs golang-go)"
    if not os.path.isdir(os.path.join(GOPATH, "src", "google.golang.org", "grpc")):
        return None, f"grpc-go is not under {GOPATH} (bench/setup.sh installs golang-google-grpc-dev)"
    binary = os.path.join(outdir, "goforward")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOFLAGS="", CGO_ENABLED="0")
    try:
        r = subprocess.run([go, "build", "-o", binary, "."], cwd=GO_DIR, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"go build failed: {e}"
    if r.returncode != 0:
        lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
        return None, "go build failed: " + (lines[-1] if lines else f"exit {r.returncode}")
    return binary, ""


def serve(port: int, fail_after: int | None = None) -> None:
    """The identity model on grpc.aio with raw bytes (no protobuf objects), on uvloop.
    With `fail_after`, every call after that many answers UNAVAILABLE (for the tests
    of the harness's checks)."""
    import asyncio

    import grpc
    import grpc.aio
    import uvloop
    calls = 0

    async def infer(request: bytes, context) -> bytes:
        nonlocal calls
        if fail_after is not None and calls >= fail_after:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "failing on purpose")
        try:
            answer = identity_response(request)
        except ValueError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        calls += 1
        return answer

    async def count(request: bytes, context) -> bytes:
        return struct.pack("<Q", calls)

    async def main():
        server = grpc.aio.server(options=GRPC_OPTIONS)
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler("inference.GRPCInferenceService",
                                                 {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}),
            grpc.method_handlers_generic_handler("bench.Identity",
                                                 {"Count": grpc.unary_unary_rpc_method_handler(count)})))
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        print(f"listening 127.0.0.1:{bound}\nready", flush=True)
        await server.wait_for_termination()

    uvloop.run(main())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.grpc_model", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--fail-after", type=int, help=argparse.SUPPRESS)
    p.add_argument("--build-go", metavar="DIR", help="only build bench/goforward into DIR and print its path")
    args = p.parse_args(argv)
    if args.build_go:
        binary, why = build_go(args.build_go)
        print(binary or why)
        return 0 if binary else 1
    serve(args.port, args.fail_after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
