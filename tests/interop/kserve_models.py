"""KServe's own ModelServer (v1 REST, v2 REST, v2 gRPC) with two numpy models, run as
a subprocess by the interop tests: ``python kserve_models.py HTTP_PORT GRPC_PORT``."""
from __future__ import annotations

import sys
import uuid

import numpy as np
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class Numpy(Model):
    """v1: {"instances": rows} -> {"predictions": fn(rows)}; v2: fn(input 0) as output0."""

    def __init__(self, name, fn):
        super().__init__(name)
        self.fn = fn
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, dict):
            return {"predictions": self.fn(np.asarray(payload["instances"])).tolist()}
        assert isinstance(payload, InferRequest)
        x = payload.inputs[0].as_numpy()
        y = np.ascontiguousarray(self.fn(x)).astype(x.dtype)
        out = InferOutput(name="output0", shape=list(y.shape), datatype=payload.inputs[0].datatype)
        out.set_data_from_numpy(y, binary_data=False)
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or str(uuid.uuid4()))


if __name__ == "__main__":
    http_port, grpc_port = int(sys.argv[1]), int(sys.argv[2])
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1, enable_grpc=True).start([
        Numpy("double", lambda x: x * 2), Numpy("inc", lambda x: x + 1)])
