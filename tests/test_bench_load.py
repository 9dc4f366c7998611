"""The load harness: CPU accounting, wrk output, scenarios, commands, reports, nginx."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from bench import load, nginx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (bench/setup.sh)")
needs_nginx = pytest.mark.skipif(nginx.nginx_binary() is None, reason="nginx is not installed (bench/setup.sh)")

# Burns `seconds` of its own CPU time, says so, then blocks on stdin (no sleeping).
BURN = ("import os,sys,time\n"
        "end = time.process_time() + {seconds}\n"
        "while time.process_time() < end: pass\n"
        "print('burned', os.getpid(), flush=True)\n"
        "{after}\n")


def _spawn_parent_of_burner() -> subprocess.Popen:
    """A parent blocked on stdin whose child burns CPU, says "burned PID", and blocks too."""
    child_code = BURN.format(seconds=0.3, after="sys.stdin.read()")
    parent = ("import subprocess,sys\n"
              f"subprocess.Popen([sys.executable, '-c', {child_code!r}], stdout=sys.stdout, stdin=sys.stdin)\n"
              "sys.stdin.read()\n")
    return subprocess.Popen([sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@needs_proc
def test_tree_cpu_counts_live_descendants():
    proc = _spawn_parent_of_burner()
    try:
        words = proc.stdout.readline().split()
        assert words[0] == "burned"
        grandchild = int(words[1])
        assert grandchild in load.tree_pids(proc.pid)
        own = load.proc_cpu_ticks(proc.pid) / load.CLK_TCK
        total = load.tree_cpu_seconds(proc.pid)
        assert total >= 0.25
        assert total - own >= 0.25  # the burn is the grandchild's, not the parent's
        assert 0 <= load.tree_cpu_seconds(proc.pid, system_only=True) <= total
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


@needs_proc
def test_tree_cpu_counts_reaped_children():
    burn = BURN.format(seconds=0.3, after="")
    code = ("import subprocess,sys\n"
            f"subprocess.run([sys.executable, '-c', {burn!r}], stdout=subprocess.DEVNULL)\n"
            "print('reaped', flush=True)\n"
            "sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "reaped"
        assert load.tree_pids(proc.pid) == [proc.pid]
        assert load.tree_cpu_seconds(proc.pid) >= 0.25
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_stat_parsing_survives_odd_command_names():
    line = "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 700 300 20 10 20 0 1 0 5 0 0\n"
    fields = load.parse_stat(line)
    assert fields[:3] == ["S", "1", "4242"]
    assert load.stat_cpu_ticks(fields) == 700 + 300 + 20 + 10
    assert load.stat_cpu_ticks(fields, system_only=True) == 300 + 10


def test_cpu_per_request():
    assert load.cpu_per_request(1.0, 1.5, 10_000) == pytest.approx(50.0)
    assert load.cpu_per_request(1.0, 1.0, 0) == float("inf")


WRK_TEXT = """\
Running 10s test @ http://127.0.0.1:8080/v1/models/seq1:predict
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.33us  210.10us  12.01ms   91.02%
    Req/Sec    62.10k     3.20k   66.00k    80.00%
  Latency Distribution
     50%  480.00us
     75%  600.00us
     90%  700.00us
     99%    1.46ms
  618000 requests in 10.00s, 80.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  61800.00
Transfer/sec:      8.00MB
"""


def test_parse_wrk_text_output():
    r = load.parse_wrk_output(WRK_TEXT)
    assert (r.requests, r.duration_s) == (618000, 10.0)
    assert r.rps == pytest.approx(61800.0)
    assert (r.p50_us, r.p99_us) == (480.0, 1460.0)
    assert r.errors == {"connect": 0, "read": 2, "write": 0, "status": 7, "timeout": 1}
    assert r.error_count == 10


def test_parse_wrk_text_with_decimal_percentiles():
    text = WRK_TEXT.replace("     50%  480.00us", "     50.000%  480.00us").replace("     99%    1.46ms",
                                                                                  "     99.000%    1.46ms")
    r = load.parse_wrk_output(text)
    assert (r.p50_us, r.p99_us) == (480.0, 1460.0)


def test_parse_wrk_script_summary_wins_over_text():
    line = ('BENCH_JSON {"requests":1000,"duration_us":2000000,"p50_us":300,"p99_us":2500,'
            '"errors":{"connect":0,"read":0,"write":0,"status":3,"timeout":0}}')
    r = load.parse_wrk_output(WRK_TEXT + "\n" + line + "\n")
    assert (r.requests, r.duration_s, r.rps, r.p50_us, r.p99_us, r.error_count) == (1000, 2.0, 500.0, 300, 2500, 3)


NO_MEDIAN = WRK_TEXT.replace("  Latency Distribution", "").replace("     50%  480.00us\n", "")


@pytest.mark.parametrize("text", ["", NO_MEDIAN])
def test_parse_wrk_rejects_incomplete_output(text):
    with pytest.raises(ValueError):
        load.parse_wrk_output(text)


def _graph_services(doc: dict) -> list[str]:
    return [step["serviceName"] for step in doc["spec"]["nodes"]["root"]["steps"]]


@pytest.mark.parametrize("name", list(load.SCENARIOS))
def test_scenario_graphs_match_their_services(name):
    scenario = load.SCENARIOS[name]
    with open(scenario.graph) as f:
        doc = yaml.safe_load(f)
    assert doc["kind"] == "InferenceGraph"
    assert doc["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert tuple(_graph_services(doc)) == scenario.services
    json.loads(scenario.body())


def test_scenario_bodies_have_their_sizes():
    assert 80 <= len(load.small_body()) <= 120
    body = load.switch_body()
    assert 15 * 1024 <= len(body) <= 16 * 1024
    instances = json.loads(body)["instances"]
    assert [i["modelId"] for i in instances].count("2") == 1 and instances[-1]["modelId"] == "2"
    assert {i["modelId"] for i in instances} == {"0", "2"}
    assert abs(len(load.mb_body()) - (1 << 20)) < 200


def test_switch_graph_takes_the_second_step():
    with open(load.SCENARIOS["switch16k"].graph) as f:
        steps = yaml.safe_load(f)["spec"]["nodes"]["root"]["steps"]
    assert [s["condition"] for s in steps] == [f'instances.#(modelId=="{i}")' for i in (1, 2, 3)]


def test_plan_runs():
    all_names = ["seq1", "seq2", "ens4", "switch16k", "seq3-1mb"]
    assert load.plan_runs("router", all_names, ["nginx", "bare"]) == [
        ("seq1", "nginx"), ("seq1", "router"), ("seq1", "bare"), ("seq2", "router"), ("seq2", "bare"),
        ("ens4", "router"), ("switch16k", "router"), ("seq3-1mb", "router"), ("seq3-1mb", "bare")]
    assert load.plan_runs("bare", all_names, ["nginx", "bare"]) == [
        ("seq1", "nginx"), ("seq1", "bare"), ("seq2", "bare"), ("seq3-1mb", "bare")]
    assert load.plan_runs("nginx", all_names, ["nginx", "bare"]) == [
        ("seq1", "nginx"), ("seq1", "bare"), ("seq2", "bare"), ("seq3-1mb", "bare")]
    assert load.plan_runs("nginx", all_names, []) == [("seq1", "nginx")]
    assert load.plan_runs("router", ["seq2"], []) == [("seq2", "router")]
    # policy scenarios need the engine: neither reference can run them
    assert load.plan_runs("router", ["seq1-policy", "fault-503"], ["nginx", "bare"]) == [
        ("seq1", "nginx"), ("seq1-policy", "router"), ("fault-503", "router")]


def test_variants_run_in_alternating_rounds_and_references_once():
    assert load.plan_runs("router", ["seq2"], ["bare"], ["off", "trace"], rounds=3) == [
        ("seq2", "router"), ("seq2", "router+off"), ("seq2", "router+trace"),
        ("seq2", "router+trace"), ("seq2", "router+off"), ("seq2", "router"),
        ("seq2", "router"), ("seq2", "router+off"), ("seq2", "router+trace"), ("seq2", "bare")]
    # the references run no variants
    assert load.plan_runs("bare", ["seq2"], [], ["off"], rounds=2) == [("seq2", "bare")]


def test_variant_template_puts_env_first_and_fills_the_otlp_sink():
    base = load.DEFAULT_ROUTER
    assert load.variant_template(base, "--no-metrics", None) == base + " --no-metrics"
    traced = load.variant_template(base, "OTEL_TRACES_EXPORTER=otlp OTEL_TRACES_SAMPLER=always_on",
                                   "http://127.0.0.1:9")
    assert traced == ("env OTEL_TRACES_EXPORTER=otlp OTEL_TRACES_SAMPLER=always_on "
                      "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 " + base)
    explicit = load.variant_template(base, "OTEL_TRACES_EXPORTER=otlp OTEL_EXPORTER_OTLP_ENDPOINT={otlp}/x",
                                     "http://127.0.0.1:9")
    assert explicit.count("OTEL_EXPORTER_OTLP_ENDPOINT") == 1 and "http://127.0.0.1:9/x" in explicit
    # the result is still a template: formatting it gives the argv
    argv = shlex.split(traced.format(python="py", graph="g.yaml", services="s.yaml", port=1))
    assert argv[:4] == ["env", "OTEL_TRACES_EXPORTER=otlp", "OTEL_TRACES_SAMPLER=always_on",
                        "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9"]
    assert argv[4:7] == ["py", "-m", "engine"]
    opts = load.parse_args(["--variant", "off=--no-metrics", "--rounds", "2"])
    assert opts.variants == {"off": "--no-metrics"} and opts.rounds == 2
    for bad in (["--variant", "nolabel"], ["--variant", "a=x", "--variant", "a=y"], ["--rounds", "0"]):
        with pytest.raises(SystemExit):
            load.parse_args(bad)


def test_router_command_template_and_services_file():
    scenario = load.SCENARIOS["seq2"]
    urls = {"model-a": "http://127.0.0.1:1/v1/models/model-a:predict",
            "model-b": "http://127.0.0.1:2/v1/models/model-b:predict"}
    with tempfile.TemporaryDirectory() as d:
        argv = load.target_command("router", scenario, urls, 8123, d, load.DEFAULT_ROUTER)
        services = os.path.join(d, "services-seq2.yaml")
        assert argv == [sys.executable, "-m", "engine", "serve", scenario.graph, "--services", services,
                        "--http-port", "8123", "--drain-seconds", "0"]
        with open(services) as f:
            assert yaml.safe_load(f) == urls
        bare = load.target_command("bare", scenario, urls, 8123, d, "")
        assert bare[-2:] == [urls["model-a"], urls["model-b"]]
        assert bare[bare.index("--chain") + 1] == "response"
        assert "--direct-bodies" not in bare
        big = load.target_command("bare", load.SCENARIOS["seq3-1mb"], dict(urls, **{"model-c": "http://h:3/"}),
                                  8123, d, "")
        assert "--direct-bodies" in big


def test_pinning():
    assert load.pinned(["x", "y"], None) == ["x", "y"]
    assert load.pinned(["x"], "1,2") == ["taskset", "-c", "1,2", "x"]
    router, others = load.cpu_plan()
    if len(os.sched_getaffinity(0)) >= 2 and shutil.which("taskset"):
        assert router is not None and router not in others.split(",")
    else:
        assert (router, others) == (None, None)


@needs_proc
def test_child_stop_kills_the_whole_group():
    with tempfile.TemporaryDirectory() as d:
        code = ("import subprocess,sys\n"
                "p = subprocess.Popen([sys.executable, '-c', 'import sys; print(1, flush=True); sys.stdin.read()'],"
                " stdin=subprocess.PIPE, stdout=sys.stdout)\n"
                "print(p.pid, flush=True)\n"
                "p.wait()\n")
        child = load.Child([sys.executable, "-c", code], name="group", logdir=d, pipe_stdout=True)
        deadline = load.time.monotonic() + 20
        grandchild = int(child.read_line(deadline))
        assert child.read_line(deadline) == "1"
        child.stop(timeout=5)
        assert child.proc.returncode is not None
        state = None
        try:
            with open(f"/proc/{grandchild}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            pass
        assert state in (None, "Z", "X")  # gone, or dead and waiting for init to reap it
        assert load.group_members(child.pid) == []


def test_wait_ready_is_bounded():
    with tempfile.TemporaryDirectory() as d:
        # an idle process that never listens (stopped below, the sleep is no synchronisation)
        child = load.Child([sys.executable, "-c", "import time; time.sleep(60)"], name="idle", logdir=d)
        try:
            with pytest.raises(TimeoutError):
                load.wait_ready(load.free_port(), child, timeout=0.3)
        finally:
            child.stop()


def test_wait_ready_reports_an_exited_router():
    with tempfile.TemporaryDirectory() as d:
        child = load.Child([sys.executable, "-c", "import sys; sys.exit('no graph')"], name="dead", logdir=d)
        try:
            child.proc.wait(timeout=20)
            with pytest.raises(RuntimeError, match="no graph"):
                load.wait_ready(load.free_port(), child, timeout=5)
        finally:
            child.stop()


def _rows():
    return [load.Row("seq1", "nginx", 1000, 50000.0, 400.0, 900.0, 20.0, 12.0, 95.0, 7.0, 0),
            load.Row("seq2", "router", 1000, 40000.0, 500.0, 1500.0, 45.0, 20.5, 99.0, 14.0, 2, "<= 45 us")]


def test_reports_give_ratios_to_nginx_seq1():
    text = load.format_text(_rows())
    assert "x nginx seq1" in text.splitlines()[0]
    assert text.splitlines()[2].split()[6] == "2.25"
    opts = load.parse_args(["--router", "bare", "--duration", "3"])
    md = load.format_markdown(_rows(), load.machine_info(), opts, "python -m bench.load --router bare")
    assert "`python -m bench.load --router bare`" in md
    assert "| seq2 | router | 40,000 | 0.50 | 1.50 | 45.0 | 2.25 | 20.5 | 99 | 14.0 | 2 | <= 45 us |" in md
    assert "nproc" in md and "3 s per row" in md


def test_policy_scenarios_write_a_valid_policy_for_the_router():
    import engine
    scenario = load.SCENARIOS["seq1-policy"]
    urls = {"model-a": "http://127.0.0.1:1/v1/models/model-a:predict",
            "model-a-2": "http://127.0.0.1:2/v1/models/model-a:predict"}
    assert scenario.graph == load.SCENARIOS["seq1"].graph
    assert scenario.mocks == (("model-a", "model-a"), ("model-a-2", "model-a"))
    with tempfile.TemporaryDirectory() as d:
        argv = load.target_command("router", scenario, urls, 8123, d, load.DEFAULT_ROUTER)
        assert argv[-2] == "--policy" and argv[-1] == os.path.join(d, "policy-seq1-policy.json")
        graph = engine.load(scenario.graph, services={"model-a": urls["model-a"]})
        line = [ln for ln in graph.compile(policy=argv[-1]).explain().splitlines() if "policy:" in ln]
        assert line == ["       policy: timeout 5s, retry 2x 50..1000ms, endpoints 2 (round-robin), "
                        "breaker 5/10s, service model-a"]
        fault = load.target_command("router", load.SCENARIOS["fault-503"], urls, 8123, d, load.DEFAULT_ROUTER)
        assert engine.load_policy(fault[-1]).services["model-a"].endpoints == tuple(urls.values())
        plain = load.target_command("router", load.SCENARIOS["fault-503-nopolicy"], urls, 8123, d,
                                    load.DEFAULT_ROUTER)
        assert "--policy" not in plain


def test_parse_args_validates():
    opts = load.parse_args([])
    assert opts.router == "router" and opts.router_template == load.DEFAULT_ROUTER
    assert opts.scenarios == load.DEFAULT_SCENARIOS and opts.references == ["nginx", "bare"]
    assert "seq1-policy" in opts.scenarios and "fault-503" not in opts.scenarios
    assert load.parse_args(["--scenarios", "fault-503,fault-503-nopolicy"]).scenarios == [
        "fault-503", "fault-503-nopolicy"]
    for bad in (["--scenarios", "nope"], ["--references", "apache"], ["--threads", "4", "--connections", "2"]):
        with pytest.raises(SystemExit):
            load.parse_args(bad)


def test_wrk_script_posts_the_body_file():
    script = load.wrk_script("/tmp/body x.json")
    assert '"/tmp/body x.json"' in script
    assert 'wrk.method = "POST"' in script and "BENCH_JSON" in script


def test_nginx_conf_renders():
    with tempfile.TemporaryDirectory() as d:
        path = nginx.render_conf(d, upstream_url="http://127.0.0.1:9001/v1/models/m:predict", port=18080)
        with open(path) as f:
            text = f.read()
        assert "worker_processes 1;" in text and "access_log off;" in text and "daemon off;" in text
        assert "server 127.0.0.1:9001;" in text and "keepalive 64;" in text
        assert "proxy_pass http://model/v1/models/m:predict;" in text
        assert 'proxy_set_header Connection "";' in text
        with pytest.raises(ValueError):
            nginx.render_conf(d, upstream_url="http://no-port/x", port=1)


def bench_tools_present() -> bool:
    """Everything bench/setup.sh installs is here (else running it would install)."""
    return (all(shutil.which(t) for t in ("wrk", "taskset", "h2load", "go"))
            and (shutil.which("nginx") is not None or os.path.exists("/usr/sbin/nginx"))
            and os.path.isdir("/usr/share/gocode/src/google.golang.org/grpc"))


@pytest.mark.skipif(not bench_tools_present(), reason="a tool bench/setup.sh installs is missing")
def test_setup_script_is_a_no_op_when_tools_are_present():
    r = subprocess.run([os.path.join(REPO, "bench", "setup.sh")], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0
    assert "are installed" in r.stdout and "apt-get" not in r.stdout + r.stderr


@needs_nginx
def test_nginx_accepts_the_conf():
    with tempfile.TemporaryDirectory() as d:
        conf = nginx.render_conf(d, upstream_url="http://127.0.0.1:9001/v1/models/m:predict", port=load.free_port())
        nginx.check_conf(d, conf)


@needs_wrk
@needs_nginx
@needs_proc
def test_harness_end_to_end_with_bare_and_nginx(capsys):
    """A one-second run of the real harness: mocks, nginx, bare forward, wrk, CPU accounting."""
    assert load.main(["--router", "bare", "--scenarios", "seq1", "--duration", "1", "--warmup", "0",
                      "--connections", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rows = {(r["scenario"], r["target"]): r for r in out["rows"]}
    assert set(rows) == {("seq1", "nginx"), ("seq1", "bare")}
    for row in rows.values():
        assert row["requests"] > 0 and row["errors"] == 0
        assert 0 < row["cpu_us_per_req"] < float("inf")
    assert out["nginx_seq1_cpu_us_per_req"] == rows[("seq1", "nginx")]["cpu_us_per_req"]


@pytest.mark.parametrize("per_backend", [False, True])
def test_start_mocks_serves_every_model(per_backend):
    import asyncio
    from bench_client import exchange, request
    started: list = []
    with tempfile.TemporaryDirectory() as d:
        try:
            urls = load.start_mocks(load.SCENARIOS["seq3-1mb"], None, d, 20, per_backend=per_backend,
                                    started=started)
            assert len(started) == (3 if per_backend else 1)
            assert list(urls) == ["model-a", "model-b", "model-c"]
            for name, url in urls.items():
                assert url.endswith(f"/v1/models/{name}:predict")
                port = int(url.split(":")[2].split("/")[0])
                (answer,), _ = asyncio.run(exchange(port, request(b'{"echo":1}'), 1))
                assert answer.body == b'{"echo":1}'  # the 1 MB scenario's models echo
        finally:
            for child in started:
                child.stop()


def test_answers_are_checked_before_the_load():
    started: list = []
    with tempfile.TemporaryDirectory() as d:
        try:
            urls = load.start_mocks(load.SCENARIOS["seq1"], None, d, 20, started=started)
            port = int(urls["model-a"].split(":")[2].split("/")[0])
            body = load.small_body()
            load.check_answer(port, load.SCENARIOS["seq1"], body, "/v1/models/seq1:predict")
            # a fixed answer where an echo is expected is caught
            with pytest.raises(RuntimeError, match="wrong answer"):
                load.check_answer(port, load.SCENARIOS["seq3-1mb"], body, "/")
            # model-a answering where the Switch must have picked model-b is caught
            with pytest.raises(RuntimeError, match="wrong answer"):
                load.check_answer(port, load.SCENARIOS["switch16k"], load.switch_body(), "/")
        finally:
            for child in started:
                child.stop()


def test_ensemble_expectation_names_the_graph_steps():
    with open(load.SCENARIOS["ens4"].graph) as f:
        steps = yaml.safe_load(f)["spec"]["nodes"]["root"]["steps"]
    expected = load.SCENARIOS["ens4"].expected(load.small_body())
    assert sorted(expected) == sorted(step["name"] for step in steps)
    assert expected["c"] == json.loads(load.model_answer("model-c"))


def test_failed_rows_are_reported_not_fatal():
    reason = ("router-ens4 exited with 1; log: Traceback (most recent call last):\n  File x\n"
              "ModuleNotFoundError: No module named 'engine.cli'\n")
    assert load.failure_summary(reason) == ("router-ens4 exited with 1 ... "
                                            "ModuleNotFoundError: No module named 'engine.cli'")
    assert load.failure_summary("a | b") == "a / b"
    rows = _rows() + [load.Row.failed("ens4", "router", "boom", "<= 90 us")]
    text = load.format_text(rows)
    assert "FAILED: boom" in text.splitlines()[-1] and "<= 90 us" in text.splitlines()[-1]
    md = load.format_markdown(rows, load.machine_info(), load.parse_args([]), "cmd")
    assert md.splitlines()[-1].count("|") == md.splitlines()[-2].count("|")


@needs_wrk
@needs_proc
def test_a_router_that_cannot_start_fails_its_row_only(capsys):
    failing = "{python} -c 'import sys; sys.exit(\"no router here\")' {graph} {services} {port}"
    code = load.main(["--router", failing, "--scenarios", "seq2", "--references", "none", "--ready-timeout", "10",
                      "--duration", "1", "--warmup", "0", "--json"])
    assert code == 1
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert (row["scenario"], row["target"]) == ("seq2", "router")
    assert "no router here" in row["failure"] and row["cpu_us_per_req"] is None
