"""The gRPC load harness (bench/grpc_load.py, bench/grpc_model.py): the request body
and the identity answer against the generated protobuf classes, h2load's output and
log parsing, the grpcio answer check, and small measured rows whose checks must catch
gRPC errors that h2load counts as successes.

h2load comes from Debian's nghttp2-client (tests/setup.sh, run by `make test`):
without it the tests that run it fail under CI and are skipped elsewhere.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time

import pytest

from bench import grpc_load, grpc_model, nginx
from bench.procs import Child
from engine.protos import grpc_predict_v2_pb2 as pb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def h2load() -> None:
    if shutil.which("h2load") is None:
        reason = "h2load is not installed (tests/setup.sh installs nghttp2-client)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory(prefix="test-bench-grpc-") as d:
        yield d


def start_python_model(workdir: str, *extra: str) -> grpc_load.Model:
    child = Child([sys.executable, "-m", "bench.grpc_model", "--port", "0", *extra], name="model",
                  logdir=workdir, cwd=REPO, pipe_stdout=True)
    try:
        deadline = time.monotonic() + 30
        line = child.read_line(deadline)
        assert line.startswith("listening ") and child.read_line(deadline) == "ready"
        return grpc_load.Model(child, int(line.rsplit(":", 1)[1]), "python")
    except BaseException:
        child.stop()
        raise


@pytest.fixture
def model(workdir):
    m = start_python_model(workdir)
    yield m
    m.child.stop()


# ---- bodies and the identity answer -------------------------------------------------

@pytest.mark.parametrize("size", list(grpc_load.SIZES))
def test_request_is_the_scenarios_tensor(size):
    req = pb.ModelInferRequest.FromString(grpc_model.infer_request(grpc_load.SIZES[size]))
    n = grpc_load.SIZES[size]
    assert req.model_name == "m"
    assert [(t.name, t.datatype, list(t.shape)) for t in req.inputs] == [("x", "FP32", [1, n])]
    assert len(req.raw_input_contents) == 1 and len(req.raw_input_contents[0]) == 4 * n


def test_identity_answer_is_the_inputs_as_outputs():
    req = pb.ModelInferRequest.FromString(grpc_model.infer_request(16))
    req.outputs.add(name="y")  # requested outputs are not part of the answer
    req.parameters["p"].int64_param = 7
    got = pb.ModelInferResponse.FromString(grpc_model.identity_response(req.SerializeToString()))
    assert (got.model_name, got.id, got.parameters["p"].int64_param) == ("m", "bench", 7)
    assert [(o.name, o.datatype, list(o.shape)) for o in got.outputs] == [("x", "FP32", [1, 16])]
    assert list(got.raw_output_contents) == list(req.raw_input_contents)


def test_identity_refuses_a_truncated_message():
    with pytest.raises(ValueError):
        grpc_model.identity_response(grpc_model.infer_request(16)[:-3])


def test_grpc_frame_prefix():
    assert grpc_model.grpc_frame(b"abc") == b"\0\0\0\0\3abc"


def test_same_answer_names_what_differs():
    msg = grpc_model.infer_request(16)
    right = grpc_model.identity_response(msg)
    assert grpc_model.same_answer(right, right) is None
    resp = pb.ModelInferResponse.FromString(right)
    resp.model_name = "g"  # a router may name its graph: not compared
    assert grpc_model.same_answer(resp.SerializeToString(), right) is None
    resp.raw_output_contents[0] = bytes(len(resp.raw_output_contents[0]))
    assert grpc_model.same_answer(resp.SerializeToString(), right) == "raw_output_contents differ"
    resp = pb.ModelInferResponse.FromString(right)
    resp.outputs[0].shape[1] = 8
    assert "outputs" in grpc_model.same_answer(resp.SerializeToString(), right)
    assert "not a ModelInferResponse" in grpc_model.same_answer(b"\xff\xff", right)


# ---- h2load output ------------------------------------------------------------------

H2LOAD_TEXT = """\
starting benchmark...
spawning thread #0: 1 total client(s). 2000 total requests
Application protocol: h2c

finished in 44.68ms, 44767.77 req/s, 5.34MB/s
requests: 2000 total, 2000 started, 1990 done, 1980 succeeded, 10 failed, 3 errored, 1 timeout
status codes: 1985 2xx, 0 3xx, 5 4xx, 0 5xx
traffic: 244.16KB (250018) total, 3.92KB (4012) headers (space savings 94.72%), 179.69KB (184000) data
                     min         max         mean         sd        +/- sd
time for request:      124us      1.26ms       326us       132us    91.25%
"""


def test_parse_h2load_output():
    r = grpc_load.parse_h2load_output(H2LOAD_TEXT)
    assert (r.requests, r.succeeded, r.failed, r.errored, r.timeout) == (1990, 1980, 10, 3, 1)
    assert (r.status_2xx, r.data_bytes) == (1985, 184000)
    assert r.elapsed_s == pytest.approx(0.04468) and r.rps == pytest.approx(44767.77)
    seconds = grpc_load.parse_h2load_output(H2LOAD_TEXT.replace("44.68ms", "10.5s"))
    assert seconds.elapsed_s == pytest.approx(10.5)


def test_parse_h2load_output_refuses_other_text():
    with pytest.raises(ValueError):
        grpc_load.parse_h2load_output("h2load: connection refused\n")


def test_latency_percentiles(workdir):
    path = os.path.join(workdir, "log")
    with open(path, "w") as f:
        f.writelines(f"1700000000{i:06d}\t200\t{d}\n" for i, d in enumerate(range(100, 0, -1)))
    assert grpc_load.latency_percentiles(path) == [51.0, 100.0]
    open(path, "w").close()
    assert all(math.isnan(v) for v in grpc_load.latency_percentiles(path))


# ---- the grpcio check and the model's count -----------------------------------------

def test_check_calls_and_model_count(model):
    msg = grpc_model.infer_request(16)
    right = grpc_model.identity_response(msg)
    assert grpc_model.check_calls(model.port, msg, right, n=3) == len(right)
    assert grpc_model.model_calls(model.port) == 3
    wrong = grpc_model.identity_response(grpc_model.infer_request(17))
    with pytest.raises(RuntimeError, match="wrong answer"):
        grpc_model.check_calls(model.port, msg, wrong, n=1)


def test_check_calls_catches_a_grpc_error(workdir):
    m = start_python_model(workdir, "--fail-after", "0")
    try:
        msg = grpc_model.infer_request(16)
        with pytest.raises(RuntimeError, match="UNAVAILABLE"):
            grpc_model.check_calls(m.port, msg, grpc_model.identity_response(msg), n=1)
    finally:
        m.child.stop()


# ---- measured rows ------------------------------------------------------------------

def tiny_opts(*argv: str):
    opts = grpc_load.parse_args(["--quick", *argv])
    opts.duration, opts.warmup = 0.05, 0.0
    return opts


def test_h2load_counts_grpc_errors_as_successes(workdir):
    h2load()
    m = start_python_model(workdir, "--fail-after", "0")
    try:
        body = os.path.join(workdir, "body")
        with open(body, "wb") as f:
            f.write(grpc_model.grpc_frame(grpc_model.infer_request(16)))
        res = grpc_load.run_h2load(grpc_load.h2load_command(m.port, body, 32, clients=1, streams=16), None, 60)
        # every call was UNAVAILABLE: h2load says they all succeeded, and no message came
        assert (res.succeeded, res.status_2xx, res.data_bytes) == (32, 32, 0)
    finally:
        m.child.stop()


def test_direct_row(model, workdir):
    h2load()
    row = grpc_load.measure(grpc_load.Target("direct", "direct"), "small", model, tiny_opts(), workdir, None)
    assert not row.failure and row.calls == 256
    assert math.isnan(row.cpu_us_per_call) and row.model_cpu_us_per_call > 0
    assert 0 < row.p50_us <= row.p99_us
    text = grpc_load.format_text([row])
    assert "direct" in text and "256" in text


def test_row_fails_when_calls_get_errors(workdir):
    h2load()
    # the readiness and answer checks before the load make 6 calls; everything after fails
    m = start_python_model(workdir, "--fail-after", "6")
    try:
        with pytest.raises(RuntimeError, match="DATA bytes") as e:
            grpc_load.measure(grpc_load.Target("direct", "direct"), "small", m, tiny_opts(), workdir, None)
        assert "the model answered 0 calls" in str(e.value)
        assert "after the load: ModelInfer failed: UNAVAILABLE" in str(e.value)
    finally:
        m.child.stop()


@pytest.mark.skipif(grpc_load.nginx_grpc_missing() is not None, reason="nginx with grpc_pass is not installed")
def test_nginx_row(model, workdir):
    h2load()
    row = grpc_load.measure(grpc_load.Target("nginx", "nginx grpc_pass"), "small", model, tiny_opts(), workdir,
                            None)
    assert not row.failure and row.cpu_us_per_call >= 0 and row.calls == 256


def test_go_forwarder_row_or_its_reason(model, workdir):
    binary, why = grpc_model.build_go(workdir)
    if binary is None:
        assert why  # the bench prints this reason in the row
        pytest.skip(why)
    h2load()
    row = grpc_load.measure(grpc_load.Target("go", "go grpc-go raw"), "64k", model, tiny_opts(), workdir, binary)
    assert not row.failure and row.cpu_us_per_call > 0


def test_router_row_two_steps(model, workdir):
    h2load()
    opts = tiny_opts()
    target = grpc_load.plan(opts)[-1]
    assert (target.label, target.steps) == ("ige seq2", 2)
    row = grpc_load.measure(target, "small", model, opts, workdir, None)
    # the row checked that the model answered 2 calls for each of them
    assert not row.failure and row.steps == 2 and row.cpu_us_per_call > 0


def test_router_template_and_labels():
    opts = grpc_load.parse_args(["--router", "after=env X=1 {python} -m engine serve {graph} --grpc-port {port}",
                                 "--router", "{python} -m engine serve {graph} --grpc-port {port}", "--steps", "2"])
    assert [label for label, _ in opts.routers] == ["after", "router2"]
    assert opts.routers[0][1].startswith("env X=1 ")
    assert [(t.label, t.steps) for t in grpc_load.plan(opts)] == [
        ("direct", 1), ("nginx grpc_pass", 1), ("go grpc-go raw", 1), ("after seq2", 2), ("router2 seq2", 2)]
    assert grpc_load.parse_args([]).routers == [("ige", grpc_load.DEFAULT_ROUTER)]
    with pytest.raises(SystemExit):
        grpc_load.parse_args(["--router", "{python} -m engine serve {graph} --grpc-port 8081"])


def test_failed_rows_in_the_table():
    rows = [grpc_load.Row.failed("small", "go grpc-go raw", 1, "not available: go is not installed",
                                 unavailable=True),
            grpc_load.Row.failed("small", "ige seq1", 1, "x" * 500)]
    text = grpc_load.format_text(rows)
    assert "go grpc-go raw  not available: go is not installed" in text
    assert "FAILED: " + "x" * 92 in text and "x" * 101 not in text


@pytest.mark.skipif(grpc_load.nginx_grpc_missing() is not None, reason="nginx with grpc_pass is not installed")
def test_nginx_conf_is_valid(workdir):
    conf = grpc_load.render_nginx_conf(workdir, upstream_port=9, port=grpc_load.free_port())
    nginx.check_conf(workdir, conf)
