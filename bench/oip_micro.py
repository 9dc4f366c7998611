"""OIP codec micro benchmark: parse + rebuild of a ModelInferRequest with one FP32 raw
tensor of 64 KB and of 1 MB.

    .venv/bin/python bench/oip_micro.py

For each size it prints the time per parse+rebuild (engine.oip, no final join), the
bytes newly written by it (header chunks; tensor chunks are the received buffer
itself), the peak Python allocation during it (tracemalloc), the time of the final
join that a bytes-only transport needs, and two baselines measured in the same run:
protobuf's generated classes (FromString + SerializeToString) and one plain copy of
the message (bytearray(wire)).
"""
from __future__ import annotations

import os
import platform
import timeit
import tracemalloc

import numpy as np

from engine.oip import InferRequest, from_numpy, join
from engine.protos import grpc_predict_v2_pb2 as pb


def message(nbytes: int) -> bytes:
    x = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
    req = InferRequest("classifier", [from_numpy("input-0", x.reshape(1, -1))], id="bench-1",
                       parameters={"content_type": "np"})
    return join(req.to_grpc())


def per_op(fn, min_time: float = 0.4) -> float:
    """Best-of-7 seconds per call (the machine is shared: the minimum is the stable figure)."""
    timer = timeit.Timer(fn)
    number, _ = timer.autorange()
    number = max(number, int(number * min_time / 0.2))
    return min(timer.repeat(7, number)) / number


def measure(nbytes: int) -> dict:
    wire = message(nbytes)

    def rebuild():
        return InferRequest.from_grpc(wire).to_grpc()

    chunks = rebuild()
    received = InferRequest.from_grpc(wire)
    tensor_ids = {id(c) for c in chunks if isinstance(c, memoryview) and c.obj is wire}
    written = sum(len(c) for c in chunks if id(c) not in tensor_ids)
    tracemalloc.start()
    rebuild()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    kept = rebuild()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert join(kept) == wire and np.shares_memory(
        received.as_numpy("input-0"), np.frombuffer(wire, np.uint8))
    return {
        "size": nbytes, "wire": len(wire),
        "rebuild_us": per_op(rebuild) * 1e6,
        "written": written, "peak_alloc": peak,
        "join_us": per_op(lambda: join(chunks)) * 1e6,
        "protobuf_us": per_op(lambda: pb.ModelInferRequest.FromString(wire).SerializeToString()) * 1e6,
        "copy_us": per_op(lambda: bytearray(wire)) * 1e6,
    }


def main():
    print(f"# {platform.node()} {platform.machine()} {platform.processor() or ''} "
          f"python {platform.python_version()} numpy {np.__version__} "
          f"cpus {os.cpu_count()} load average {os.getloadavg()[0]:.1f}")
    print("| tensor | parse+rebuild (us) | bytes written | peak alloc (B) | final join (us) "
          "| protobuf parse+serialize (us) | plain copy of message (us) |")
    print("|---|---|---|---|---|---|---|")
    for nbytes in (64 * 1024, 1024 * 1024):
        r = measure(nbytes)
        print(f"| {nbytes // 1024} KB FP32 | {r['rebuild_us']:.2f} | {r['written']} | "
              f"{r['peak_alloc']} | {r['join_us']:.1f} | {r['protobuf_us']:.1f} | "
              f"{r['copy_us']:.1f} |")


if __name__ == "__main__":
    main()
