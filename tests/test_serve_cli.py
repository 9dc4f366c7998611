"""`ige serve`, `ige --graph-json` and `ige run` as processes, the way KServe's
controller and users start them."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from routerkit import ThreadedModel, free_port, static

GRAPH = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceName": "echo"}]}}}


def wait_ready(port: int, proc, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"router exited early: {proc.stderr.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
    raise AssertionError("router did not become ready")


def post(port: int, body: dict):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/g:predict",
                                 data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def start(args, extra_env=None, **kw):
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra_env or {}))
    return subprocess.Popen([sys.executable, "-m", "engine", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True, **kw)


def stop(proc, timeout=20):
    """SIGTERM, wait, and keep what the process wrote to stderr on ``proc.err_text``."""
    try:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=timeout)
        proc.err_text = err.decode()
        return proc.returncode
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=5)


def proc_stderr_lines(proc):
    return [line for line in proc.err_text.splitlines() if line.startswith("{")]


@pytest.fixture
def model():
    with ThreadedModel(static({"predictions": ["ok"]})) as m:
        yield m


def test_serve_file_with_services(tmp_path, model):
    graph = tmp_path / "g.yaml"
    graph.write_text(json.dumps(GRAPH))
    services = tmp_path / "services.yaml"
    services.write_text(f"echo: {model.url}\n")
    port = free_port()
    proc = start(["serve", str(graph), "--services", str(services), "--http-port", str(port),
                  "--grpc-port", "0", "--host", "127.0.0.1", "--drain-seconds", "0.1"])
    try:
        wait_ready(port, proc)
        assert post(port, {"instances": [1]}) == (200, {"predictions": ["ok"]})
    finally:
        assert stop(proc) == 0


def test_graph_json_alone_means_serve(model):
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    port = free_port()
    proc = start(["--graph-json", json.dumps(graph), "--http-port", str(port), "--host", "127.0.0.1",
                  "--grpc-port", "0", "--drain-seconds", "0"])
    try:
        wait_ready(port, proc)
        assert post(port, {}) == (200, {"predictions": ["ok"]})
    finally:
        assert stop(proc) == 0


def test_two_workers_share_the_port_and_stop_together(model):
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    port, grpc_port = free_port(), free_port()
    proc = start(["serve", "--graph-json", json.dumps(graph), "--http-port", str(port),
                  "--grpc-port", str(grpc_port),
                  "--host", "127.0.0.1", "--workers", "2", "--drain-seconds", "0"])
    try:
        wait_ready(port, proc)
        for _ in range(20):
            assert post(port, {})[0] == 200
        # both workers also share the gRPC port (grpc sets SO_REUSEPORT)
        import grpc
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            live = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
            assert live(b"", timeout=10, wait_for_ready=True) == b"\x08\x01"
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) == 2
    finally:
        assert stop(proc) == 0
    for pid in children:
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid), 0)


def test_invalid_graph_fails_at_start_with_the_field_path(tmp_path):
    bad = {"nodes": {"root": {"routerType": "Splitter", "steps": [
        {"serviceUrl": "http://a/", "weight": 60}, {"serviceUrl": "http://b/", "weight": 30}]}}}
    proc = start(["serve", "--graph-json", json.dumps(bad), "--http-port", str(free_port()),
                  "--grpc-port", "0"])
    try:
        code = proc.wait(20)
    finally:
        stop(proc)
    err = proc.err_text
    assert code == 1
    assert "spec.nodes.root" in err and "Traceback" not in err


def test_run_prints_the_answer(tmp_path, model):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(GRAPH))
    services = tmp_path / "s.yaml"
    services.write_text(f"echo: {model.url}\n")
    out = subprocess.run([sys.executable, "-m", "engine", "run", str(graph), "--services", str(services),
                          "--data", '{"instances": [1]}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"predictions": ["ok"]}
    assert "status: 200" in out.stderr


def test_explain_plan_lists_resolved_backends(tmp_path):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(GRAPH))
    services = tmp_path / "s.yaml"
    services.write_text("echo: http://127.0.0.1:9/v1/models/echo:predict\n")
    out = subprocess.run([sys.executable, "-m", "engine", "explain", "--plan", str(graph),
                          "--services", str(services)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "[0] root: Sequence" in out.stdout
    assert "-> http://127.0.0.1:9/v1/models/echo:predict" in out.stdout


def test_demo_serves_and_answers():
    out = subprocess.run([sys.executable, "-m", "engine.demo", "--once", "--port", str(free_port())],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Sample request -> 200" in out.stdout and '"beagle"' in out.stdout


def test_access_log_and_step_records_are_json_lines(model):
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [
        {"name": "first", "serviceUrl": model.url}, {"serviceUrl": model.url}]}}}
    port = free_port()
    proc = start(["serve", "--graph-json", json.dumps(graph), "--http-port", str(port),
                  "--host", "127.0.0.1", "--drain-seconds", "0", "--access-log", "--log-level", "DEBUG"])
    try:
        wait_ready(port, proc)
        assert post(port, {"x": 1})[0] == 200
    finally:
        assert stop(proc) == 0
    records = [json.loads(line) for line in proc_stderr_lines(proc)]
    steps = [r for r in records if r["msg"] == "step"]
    requests = [r for r in records if r["msg"] == "request"]
    assert [(s["node"], s["step"], s["status"]) for s in steps] == [("root", "first", 200), ("root", "1", 200)]
    assert len(requests) == 1 and requests[0]["status"] == 200 and requests[0]["method"] == "POST"
    assert requests[0]["level"] == "info" and requests[0]["ms"] >= 0


def test_no_per_request_records_by_default(model):
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    port = free_port()
    proc = start(["serve", "--graph-json", json.dumps(graph), "--http-port", str(port),
                  "--host", "127.0.0.1", "--drain-seconds", "0"])
    try:
        wait_ready(port, proc)
        for _ in range(5):
            assert post(port, {})[0] == 200
    finally:
        assert stop(proc) == 0
    msgs = [json.loads(line)["msg"] for line in proc_stderr_lines(proc)]
    assert "request" not in msgs and "step" not in msgs and "serving" in msgs


def test_service_names_resolve_through_kserve_template(tmp_path):
    graph = tmp_path / "g.json"
    graph.write_text(json.dumps(GRAPH))
    env = dict(os.environ, POD_NAMESPACE="team-b")
    default = subprocess.run([sys.executable, "-m", "engine", "explain", "--plan", str(graph)],
                             capture_output=True, text=True, timeout=60, env=env)
    assert "-> http://echo.team-b.svc.cluster.local/v1/models/echo:predict" in default.stdout
    custom = subprocess.run([sys.executable, "-m", "engine", "run", str(graph), "--data", "{}",
                             "--service-template", "http://127.0.0.1:9/{namespace}/{name}"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert custom.returncode == 3  # ran, and the graph answered 500
    assert 'Post \\"http://127.0.0.1:9/team-b/echo\\"' in custom.stdout
    bad = subprocess.run([sys.executable, "-m", "engine", "run", str(graph), "--data", "{}",
                          "--service-template", "http://{host}/x"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert bad.returncode == 1 and "--service-template" in bad.stderr and "Traceback" not in bad.stderr


def test_graph_json_from_a_file_and_missing_files(tmp_path, model):
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    ok = subprocess.run([sys.executable, "-m", "engine", "run", "--graph-json", f"@{path}",
                         "--data", "{}"], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == {"predictions": ["ok"]}
    for args in (["--graph-json", f"@{tmp_path / 'nope.json'}"],
                 ["--graph-json", f"@{path}", "--data", f"@{tmp_path / 'nope.json'}"]):
        argv = [sys.executable, "-m", "engine", "run", *args]
        if "--data" not in args:
            argv += ["--data", "{}"]
        bad = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1, bad.stderr
        assert "Traceback" not in bad.stderr
        assert f"cannot read {tmp_path / 'nope.json'}: No such file or directory" in bad.stderr
    # what KServe's controller runs, with the spec in a file that is not there
    pod = subprocess.run([sys.executable, "-m", "engine", "--graph-json", "@/nonexistent/spec.json",
                          "--http-port", str(free_port())], capture_output=True, text=True, timeout=60)
    assert pod.returncode == 1 and "Traceback" not in pod.stderr
    assert pod.stderr.strip() == ("ige: error: --graph-json @/nonexistent/spec.json: cannot read "
                                  "/nonexistent/spec.json: No such file or directory")


def test_a_port_in_use_is_a_clear_failure_with_its_own_exit_status():
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        out = subprocess.run([sys.executable, "-m", "engine", "serve", "--graph-json", json.dumps(GRAPH),
                              "--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", "0"],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    assert f"ige: error: cannot listen on 127.0.0.1:{port}: Address already in use" in out.stderr


def test_crashing_workers_back_off_then_the_router_gives_up(tmp_path):
    """Workers that cannot start (their gRPC port is taken) are restarted with growing
    delays, one log line each, and after --worker-crash-limit quick deaths in a row
    the router stops with status 3 instead of restarting them for ever."""
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        grpc_port = busy.getsockname()[1]
        proc = start(["serve", "--graph-json", json.dumps(GRAPH), "--host", "127.0.0.1",
                      "--http-port", str(free_port()), "--grpc-port", str(grpc_port),
                      "--workers", "2", "--worker-crash-limit", "3"])
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=5)
    assert proc.returncode == 3
    records = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    restarts = [r for r in records if r["msg"] == "worker died; restarting"]
    assert [r["restart_in_seconds"] for r in restarts] == [0.5, 1.0]
    assert [r["crashes"] for r in restarts] == [1, 2]
    assert any(r["msg"] == "workers keep dying; stopping" for r in records)
    assert any(r["msg"] == "worker cannot serve" and "gRPC" in r["error"] for r in records)


def _children(pid: int) -> set[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return {int(x) for x in f.read().split()}


def test_a_killed_worker_is_replaced_and_the_router_keeps_serving(model):
    port = free_port()
    spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    proc = start(["--graph-json", json.dumps(spec), "--http-port", str(port), "--grpc-port", "0",
                  "--workers", "2", "--drain-seconds", "0"])
    try:
        wait_ready(port, proc)
        deadline = time.monotonic() + 20
        while len(_children(proc.pid)) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first = _children(proc.pid)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        while True:  # the replacement appears after the first backoff delay
            now = _children(proc.pid)
            if victim not in now and len(now) == 2:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.05)
        for _ in range(10):
            assert post(port, {}) == (200, {"predictions": ["ok"]})
    finally:
        assert stop(proc) == 0
    restarts = [json.loads(line) for line in proc_stderr_lines(proc)
                if json.loads(line)["msg"] == "worker died; restarting"]
    assert [(r["pid"], r["status"]) for r in restarts] == [(victim, -signal.SIGKILL)]


def test_reserved_paths_and_v2_bridge_from_flags_and_environment():
    from engine.cli import build_parser
    from engine.cli_router import policy_from, reserved_paths_from
    from engine.errors import GraphSpecError
    from engine.server.runner import ServeOptions

    def parsed(*flags):
        return build_parser().parse_args(["serve", "--graph-json", "{}", *flags])

    assert reserved_paths_from(parsed(), {}) == "engine"
    assert reserved_paths_from(parsed(), {"IGE_RESERVED_PATHS": "kserve"}) == "kserve"
    assert reserved_paths_from(parsed("--reserved-paths", "engine"),
                               {"IGE_RESERVED_PATHS": "kserve"}) == "engine"
    with pytest.raises(GraphSpecError, match="IGE_RESERVED_PATHS"):
        ServeOptions(reserved_paths=reserved_paths_from(parsed(), {"IGE_RESERVED_PATHS": "all"}))
    assert policy_from(parsed(), {}).v2_bridge is False
    assert policy_from(parsed("--v2-bridge"), {}).v2_bridge is True
    assert policy_from(parsed(), {"IGE_V2_BRIDGE": "1"}).v2_bridge is True
    assert policy_from(parsed(), {"IGE_V2_BRIDGE": "off"}).v2_bridge is False
    with pytest.raises(GraphSpecError, match="IGE_V2_BRIDGE"):
        policy_from(parsed(), {"IGE_V2_BRIDGE": "maybe"})


def test_kserve_reserved_paths_through_the_environment(model):
    """As KServe's controller starts the router: the extension arrives by env."""
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    port = free_port()
    proc = start(["--graph-json", json.dumps(graph), "--http-port", str(port), "--host", "127.0.0.1",
                  "--grpc-port", "0", "--drain-seconds", "0"], extra_env={"IGE_RESERVED_PATHS": "kserve"})
    try:
        wait_ready(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            assert (r.status, json.loads(r.read())) == (200, {"predictions": ["ok"]})
    finally:
        assert stop(proc) == 0
    bad = subprocess.run([sys.executable, "-m", "engine", "--graph-json", json.dumps(graph),
                          "--reserved-paths", "none"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "--reserved-paths" in bad.stderr and "Traceback" not in bad.stderr


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_metrics_buckets_and_no_metrics_from_the_command_line(tmp_path, model, how):
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": model.url}]}}}
    port = free_port()
    args = ["serve", "--graph-json", json.dumps(graph), "--http-port", str(port), "--grpc-port", "0",
            "--host", "127.0.0.1", "--drain-seconds", "0"]
    env = {}
    if how == "flag":
        args += ["--metrics-buckets", "0.01,0.1", "--no-metrics"]
    else:
        env["IGE_METRICS_BUCKETS"] = "0.01,0.1"
    proc = start(args, env)
    try:
        wait_ready(port, proc)
        assert post(port, {"instances": [1]}) == (200, {"predictions": ["ok"]})
        text = _metrics(port)
        assert 'le="0.01"' in text and 'le="0.1"' in text
        assert 'le="0.025"' not in text          # only the buckets asked for
        steps = [line for line in text.splitlines() if line.startswith("ige_step_duration_seconds_count")]
        if how == "flag":
            assert steps == []                   # --no-metrics: no per-step recording
        else:
            assert len(steps) == 1 and float(steps[0].split()[-1]) == 1
    finally:
        assert stop(proc) == 0


def test_invalid_metrics_buckets_fail_at_start(tmp_path):
    graph = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": "http://127.0.0.1:9/m"}]}}}
    proc = start(["serve", "--graph-json", json.dumps(graph), "--http-port", str(free_port()),
                  "--grpc-port", "0", "--host", "127.0.0.1"], {"IGE_METRICS_BUCKETS": "0.1,0.01"})
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "bucket" in err.decode().lower()
