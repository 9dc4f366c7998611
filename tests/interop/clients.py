"""Third-party OIP clients against the router, one per subprocess (tritonclient's and
KServe's generated protobuf modules cannot share a process with each other or with
the engine's): ``python clients.py KIND HTTP_PORT GRPC_PORT MODEL``. Prints the output
tensor as JSON: {"name", "datatype", "shape", "data" (float bits as hex)}."""
from __future__ import annotations

import asyncio
import json
import sys

import numpy as np

X = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5) * np.float32(0.3)


def report(name, arr, extra=None):
    arr = np.ascontiguousarray(arr)
    print(json.dumps({"name": name, "datatype": str(arr.dtype), "shape": list(arr.shape),
                      "hex": arr.tobytes().hex(), **(extra or {})}))


def triton_http(http_port, grpc_port, model):
    import tritonclient.http as th
    client = th.InferenceServerClient(f"127.0.0.1:{http_port}")
    live = client.is_server_live()
    inp = th.InferInput("x", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=True)
    out = th.InferRequestedOutput("output0", binary_data=True)
    res = client.infer(model, [inp], outputs=[out], request_id="tr-http")
    report("output0", res.as_numpy("output0"), {"live": live, "id": res.get_response()["id"]})
    client.close()


def triton_grpc(http_port, grpc_port, model):
    import tritonclient.grpc as tg
    client = tg.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    live, ready = client.is_server_live(), client.is_model_ready(model)
    inp = tg.InferInput("x", list(X.shape), "FP32")
    inp.set_data_from_numpy(X)
    res = client.infer(model, [inp], request_id="tr-grpc")
    report("output0", res.as_numpy("output0"),
           {"live": live, "ready": ready, "id": res.get_response().id})
    client.close()


def kserve_grpc(http_port, grpc_port, model):
    from kserve import InferenceGRPCClient, InferInput, InferRequest

    async def go():
        client = InferenceGRPCClient(f"127.0.0.1:{grpc_port}", timeout=30, retries=0)
        inp = InferInput("x", list(X.shape), "FP32")
        inp.set_data_from_numpy(X, binary_data=False)
        res = await client.infer(InferRequest(model_name=model, infer_inputs=[inp], request_id="ks-grpc"))
        await client.close()
        return res
    res = asyncio.run(go())
    report(res.outputs[0].name, res.outputs[0].as_numpy(), {"id": res.id})


def kserve_rest(http_port, grpc_port, model):
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    async def go():
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
        inp = InferInput("x", list(X.shape), "FP32")
        inp.set_data_from_numpy(X, binary_data=False)
        res = await client.infer(f"http://127.0.0.1:{http_port}",
                                 InferRequest(model_name=model, infer_inputs=[inp], request_id="ks-rest"),
                                 model_name=model)
        await client.close()
        return res
    res = asyncio.run(go())
    report(res.outputs[0].name, res.outputs[0].as_numpy(), {"id": res.id})


def kserve_v1(http_port, grpc_port, model):
    from kserve import InferenceRESTClient, RESTConfig

    async def go():
        client = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=30))
        res = await client.infer(f"http://127.0.0.1:{http_port}", {"instances": X.tolist()},
                                 model_name=model)
        await client.close()
        return res
    res = asyncio.run(go())
    report("predictions", np.asarray(res["predictions"], dtype=np.float32))


if __name__ == "__main__":
    kind, http_port, grpc_port, model = sys.argv[1:5]
    {"triton-http": triton_http, "triton-grpc": triton_grpc, "kserve-grpc": kserve_grpc,
     "kserve-rest": kserve_rest, "kserve-v1": kserve_v1}[kind](int(http_port), int(grpc_port), model)
