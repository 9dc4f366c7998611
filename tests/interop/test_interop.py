"""Interop with code no one here wrote: KServe's ModelServer (v1 REST, v2 REST, v2
gRPC) serves the models behind the router (``ige serve`` subprocesses), and
tritonclient (HTTP, gRPC) and KServe's clients call the router. Results are checked
bit for bit. Every process is on loopback and killed at the end."""
from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

# Only look: importing kserve or tritonclient here would register their protobuf
# modules in this process, where the engine's own generated module is the test oracle.
for _package in ("kserve", "tritonclient"):
    if importlib.util.find_spec(_package) is None:
        pytest.skip(f"{_package} is not installed (the test extra)", allow_module_level=True)

HERE = Path(__file__).parent
X = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5) * np.float32(0.3)
WANT = X * np.float32(2) + np.float32(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, seconds: float = 90.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready in {seconds} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interop")
    kh, kg = free_port(), free_port()
    procs = []
    try:
        kserve = subprocess.Popen([sys.executable, str(HERE / "kserve_models.py"), str(kh), str(kg)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(kserve)
        wait_http(f"http://127.0.0.1:{kh}/v2/models/inc/ready", kserve)
        # v2: gRPC step, then a serviceName resolved to KServe's v2 REST endpoint
        v2_graph = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
                    "metadata": {"name": "g"}, "spec": {"nodes": {"root": {
                        "routerType": "Sequence", "steps": [
                            {"serviceUrl": f"grpc://127.0.0.1:{kg}/double"},
                            {"serviceName": "inc", "data": "$response"}]}}}}
        # v1: KServe's v1 REST, predictions mapped to instances between the steps
        v1_graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": f"http://127.0.0.1:{kh}/v1/models/double:predict"},
            {"serviceUrl": f"http://127.0.0.1:{kh}/v1/models/inc:predict", "data": "$response",
             "mapPredictionsToInstances": True}]}}}
        (tmp / "services.yaml").write_text(f"inc: http://127.0.0.1:{kh}/v2/models/inc/infer\n")
        ports = {}
        for name, graph in (("v2", v2_graph), ("v1", v1_graph)):
            (tmp / f"{name}.json").write_text(json.dumps(graph))
            hp, gp = free_port(), free_port()
            router = subprocess.Popen(
                [sys.executable, "-m", "engine", "serve", str(tmp / f"{name}.json"),
                 "--services", str(tmp / "services.yaml"), "--host", "127.0.0.1",
                 "--http-port", str(hp), "--grpc-port", str(gp), "--drain-seconds", "0"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(router)
            wait_http(f"http://127.0.0.1:{hp}/v2/health/ready", router)
            ports[name] = (hp, gp)
        yield ports
    finally:
        for p in reversed(procs):
            stop(p)


def client(kind: str, ports, model="g") -> dict:
    out = subprocess.run([sys.executable, str(HERE / "clients.py"), kind, str(ports[0]),
                          str(ports[1]), model], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def exact(result: dict) -> np.ndarray:
    got = np.frombuffer(bytes.fromhex(result["hex"]), dtype=result["datatype"]).reshape(result["shape"])
    assert got.dtype == np.float32 and got.shape == WANT.shape
    assert got.tobytes() == WANT.tobytes(), (got, WANT)
    return got


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["triton-grpc", "triton-http", "kserve-grpc", "kserve-rest"])
def test_v2_clients_through_mixed_graph(stack, kind):
    """gRPC and HTTP v2 front ends; KServe's v2 gRPC then v2 REST behind the router."""
    result = client(kind, stack["v2"])
    exact(result)
    assert result["name"] == "output0"
    assert result["id"] == {"triton-grpc": "tr-grpc", "triton-http": "tr-http",
                            "kserve-grpc": "ks-grpc", "kserve-rest": "ks-rest"}[kind]
    if kind == "triton-grpc":
        assert result["live"] and result["ready"]
    if kind == "triton-http":
        assert result["live"]


@pytest.mark.slow
def test_kserve_v1_client_through_v1_graph(stack):
    exact(client("kserve-v1", stack["v1"], model="any"))
