"""engine.kserve.GraphModel in KServe's own ModelServer (the real kserve package): REST
v1, REST v2 and gRPC v2 requests through graphs whose steps are an in-process
callable, an in-process kserve.Model and remote models on loopback.

The ModelServer runs in a subprocess (this file run as a script: kserve's protobuf
modules must not share the test process with the engine's generated ones, and
ModelServer.start owns its process's signals and loop); the remote models run in this
process (tests/routerkit.py ThreadedModel)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("kserve") is None:
    pytest.skip("kserve is not installed (the kserve extra)", allow_module_level=True)

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))


def graphs(sum_url, fail_url, v2_url):
    return {
        # v1: callable -> kserve.Model -> remote, each on the previous answer
        "pipeline": {"nodes": {"root": {"routerType": "Switch", "steps": [
            {"nodeName": "seq", "condition": "instances"}]},
            "seq": {"routerType": "Sequence", "steps": [
                {"serviceName": "double"},
                {"serviceName": "inc", "data": "$response"},
                {"serviceUrl": sum_url, "data": "$response"}]}}},
        # v2 (REST and gRPC): callable -> kserve.Model -> remote v2 identity
        "g": {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceName": "double"},
            {"serviceName": "inc", "data": "$response"},
            {"serviceUrl": v2_url, "data": "$response"}]}}},
        "failing": {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": fail_url, "dependency": "Hard"},
            {"serviceName": "double"}]}}},
        "invalid": {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceName": "refuses"}]}}},
    }


# ---- the ModelServer side (run as a script) ------------------------------------------

def serve(http_port: int, grpc_port: int, graph_docs: dict) -> None:
    import uuid

    from kserve import InferOutput, InferResponse, Model, ModelServer
    from kserve.errors import InvalidInput

    from engine import oip
    from engine.kserve import GraphModel

    def double(payload):
        if isinstance(payload, oip.InferRequest):
            return payload.as_numpy(payload.inputs[0].name) * np.float32(2)
        return {"instances": [[2 * v for v in row] for row in payload["instances"]]}

    class Inc(Model):
        """A kserve.Model step: +1; its postprocess marks v1 answers."""

        def __init__(self):
            super().__init__("inc")

        def load(self):
            self.ready = True
            return True

        async def predict(self, payload, headers=None, response_headers=None):
            if isinstance(payload, dict):
                return {"predictions": (np.asarray(payload["instances"]) + 1).tolist()}
            x = payload.inputs[0].as_numpy()
            out = InferOutput(name="output0", shape=list(x.shape), datatype="FP32")
            out.set_data_from_numpy((x + np.float32(1)).astype(np.float32), binary_data=False)
            return InferResponse(model_name=self.name, infer_outputs=[out],
                                 response_id=payload.id or str(uuid.uuid4()))

        async def postprocess(self, result, headers=None, response_headers=None):
            if isinstance(result, dict):
                result["post"] = True
            return result

    class Refuses(Model):
        def __init__(self):
            super().__init__("refuses")
            self.ready = True

        async def predict(self, payload, headers=None, response_headers=None):
            raise InvalidInput("no such input")

    inc = Inc()       # not loaded: GraphModel loads it
    services = {"double": double, "inc": inc, "refuses": Refuses()}
    models = [GraphModel(name, doc, services=services) for name, doc in graph_docs.items()]
    ModelServer(http_port=http_port, grpc_port=grpc_port, workers=1, enable_grpc=True).start(models)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]))
    sys.exit(0)


# ---- the tests -----------------------------------------------------------------------

from routerkit import ThreadedModel  # noqa: E402

from test_interop import WANT, client, exact, free_port, stop, wait_http  # noqa: E402

httpx = pytest.importorskip("httpx")


def sum_model(request):
    import orjson
    doc = orjson.loads(request.body)
    trace = dict((k.lower(), v) for k, v in request.headers).get(b"x-trace-id", b"").decode()
    return 200, {"got": doc, "trace": trace}


def v2_identity(request):
    """A remote v2 model: outputs = inputs, tensors as received."""
    from engine import oip
    hl = dict((k.lower(), v) for k, v in request.headers).get(b"inference-header-content-length")
    req = oip.InferRequest.from_http(request.body, int(hl) if hl else None)
    resp = oip.InferResponse("identity", req.inputs, id=req.id)
    return 200, oip.join(resp.to_http(False)[0])


@pytest.fixture(scope="module")
def server():
    with ThreadedModel(sum_model) as summer, \
            ThreadedModel(lambda r: (503, {"error": "overloaded"})) as failer, \
            ThreadedModel(v2_identity) as identity:
        v2_url = f"http://127.0.0.1:{identity.port}/v2/models/identity/infer"
        docs = graphs(summer.url, failer.url, v2_url)
        hp, gp = free_port(), free_port()
        env = dict(os.environ, PROPAGATE_HEADERS="X-Trace.*")
        proc = subprocess.Popen([sys.executable, str(Path(__file__)), str(hp), str(gp), json.dumps(docs)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_http(f"http://127.0.0.1:{hp}/v2/models/pipeline/ready", proc)
            yield hp, gp, proc
        finally:
            stop(proc)
            proc.stderr.close()


def test_ready(server):
    hp, _, _ = server
    r = httpx.get(f"http://127.0.0.1:{hp}/v2/models/pipeline/ready")
    assert r.status_code == 200 and r.json() == {"name": "pipeline", "ready": True}
    assert httpx.get(f"http://127.0.0.1:{hp}/v1/models/pipeline").json() == {
        "name": "pipeline", "ready": True}


def test_v1_through_callable_model_and_remote(server):
    hp, _, _ = server
    r = httpx.post(f"http://127.0.0.1:{hp}/v1/models/pipeline:predict",
                   json={"instances": [[1, 2], [3, 4]]}, headers={"X-Trace-Id": "t-1"})
    assert r.status_code == 200, r.text
    # double, then inc (its postprocess ran), then the remote got inc's answer
    assert r.json() == {"got": {"predictions": [[3, 5], [7, 9]], "post": True}, "trace": "t-1"}
    assert r.headers["content-type"] == "application/json"


def test_v1_switch_miss_keeps_kserve_status_and_body(server):
    hp, _, _ = server
    r = httpx.post(f"http://127.0.0.1:{hp}/v1/models/pipeline:predict", json={"other": 1})
    assert r.status_code == 404
    assert r.json() == {"error": "Failed to process request",
                        "cause": "None of the routes matched with the switch condition"}


def test_failing_step_status(server):
    hp, _, _ = server
    r = httpx.post(f"http://127.0.0.1:{hp}/v1/models/failing:predict", json={"instances": [[1]]})
    assert (r.status_code, r.json()) == (503, {"error": "overloaded"})
    assert r.headers["content-type"] == "application/json"
    v2 = {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}
    r = httpx.post(f"http://127.0.0.1:{hp}/v2/models/failing/infer", json=v2)
    assert (r.status_code, r.json()) == (503, {"error": "overloaded"})


def test_in_process_model_failure_is_kserve_status(server):
    hp, _, _ = server
    r = httpx.post(f"http://127.0.0.1:{hp}/v1/models/invalid:predict", json={"instances": [[1]]})
    assert (r.status_code, r.json()) == (400, {"error": "no such input"})


def test_v2_rest_json(server):
    hp, _, _ = server
    x = [[1.0, 2.0], [3.0, 4.0]]
    r = httpx.post(f"http://127.0.0.1:{hp}/v2/models/g/infer", json={
        "id": "r-7", "inputs": [{"name": "x", "shape": [2, 2], "datatype": "FP32",
                                 "data": [v for row in x for v in row]}]})
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model_name"] == "g" and doc["id"] == "r-7"
    assert doc["outputs"][0]["name"] == "output0"
    assert doc["outputs"][0]["data"] == [3.0, 5.0, 7.0, 9.0]


@pytest.mark.parametrize("kind", ["kserve-rest", "kserve-grpc", "triton-grpc", "triton-http"])
def test_v2_clients(server, kind):
    """KServe's and Triton's own clients, REST v2 and gRPC v2: X*2+1, bit-exact."""
    hp, gp, _ = server
    result = client(kind, (hp, gp), model="g")
    exact(result)
    assert np.asarray(WANT).shape == tuple(result["shape"])


def test_import_engine_does_not_import_kserve():
    out = subprocess.run([sys.executable, "-c", "import sys, engine, engine.asgi; "
                          "print('kserve' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


STOP_SCRIPT = """
import asyncio, sys
from engine.kserve import GraphModel

url = sys.argv[1]
graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": url}]}}}

async def main():
    model = GraphModel("pipeline", graph)
    assert model.ready
    print(await model.predict({"instances": [1]}))
    client = model.plan.http_client
    model.stop()                        # as ModelServer.stop calls it, on the running loop
    assert not model.ready and model.plan is None
    await model.aclose()
    print("closed", client.closed)

asyncio.run(main())
"""


def test_stop_closes_the_plans_pools():
    with ThreadedModel(lambda request: (200, {"predictions": [2]})) as model:
        out = subprocess.run([sys.executable, "-c", STOP_SCRIPT, model.url], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.splitlines()[-2:] == ["{'predictions': [2]}", "closed True"]
