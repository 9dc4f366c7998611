"""The router image under the security settings of KServe's router pod (opt-in).

Runs only when IGE_IMAGE names an image that is already built (for example
``podman build -t ige-router . && IGE_IMAGE=ige-router pytest tests/test_image.py``)
and podman or docker is on PATH; nothing is built or pulled here. Without a container
runtime the same contract is checked by tests/test_pod_contract.py.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import pytest

from routerkit import ThreadedModel, free_port
from test_pod_contract import POD_UID, assert_readiness_fails, controller_spec, http_get, wait_ready

IMAGE = os.environ.get("IGE_IMAGE")
RUNTIME = shutil.which("podman") or shutil.which("docker")

pytestmark = pytest.mark.skipif(not (IMAGE and RUNTIME),
                                reason="set IGE_IMAGE to a built image; needs podman or docker")


def inspect(fmt: str) -> str:
    return subprocess.run([RUNTIME, "image", "inspect", "--format", fmt, IMAGE],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def test_image_declares_a_numeric_non_root_user_and_the_ports():
    # the kubelet verifies runAsNonRoot only for a numeric user
    assert inspect("{{.Config.User}}") == f"{POD_UID}:{POD_UID}"
    ports = inspect("{{json .Config.ExposedPorts}}")
    assert "8080/tcp" in ports and "8081/tcp" in ports


def test_image_serves_and_drains_as_the_kserve_pod():
    name = f"ige-pod-test-{os.getpid()}"
    port, grpc_port = free_port(), free_port()
    with ThreadedModel(lambda request: (200, {"predictions": [1]})) as model:
        cmd = [RUNTIME, "run", "--rm", "--name", name, "--network", "host",
               "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
               "-e", "PROPAGATE_HEADERS=Authorization,Test-Header-*"]
        if os.path.basename(RUNTIME) == "podman":
            cmd.append("--read-only-tmpfs=false")   # Kubernetes mounts no tmpfs on /tmp
        # the pod's arguments, then loopback ports for a shared machine
        cmd += [IMAGE, "--graph-json", controller_spec(model.url),
                "--http-port", str(port), "--grpc-port", str(grpc_port),
                "--host", "127.0.0.1", "--drain-seconds", "1"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_ready(proc, port, timeout=60)
            req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=b'{"instances": [1]}',
                                         method="POST", headers={"Test-Header-Trace": "t1"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert (r.status, json.loads(r.read())) == (200, {"predictions": [1]})
            sent = {k.lower(): v for k, v in model.requests[-1].headers}
            assert sent[b"test-header-trace"] == b"t1"

            import grpc
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
                assert live(b"", timeout=10, wait_for_ready=True) == b"\x08\x01"

            subprocess.run([RUNTIME, "kill", "--signal", "TERM", name], check=True,
                           capture_output=True, timeout=30)
            assert_readiness_fails(port)
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                subprocess.run([RUNTIME, "rm", "-f", name], capture_output=True, timeout=60)
                proc.send_signal(signal.SIGKILL)
                proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    assert "draining" in err.decode()
