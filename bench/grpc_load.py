"""gRPC load harness (issue 12): proxy CPU per call under h2load, one gRPC hop,
next to nginx `grpc_pass`, a Go grpc-go forwarder and the model called directly.

Every row sends ModelInfer calls from h2load (keep-alive HTTP/2, 16 calls in flight by
default: one connection, 16 streams) through the target to an identity model, and
reads the CPU the target's process tree spent during the measured run (utime+stime
from /proc) divided by the calls completed. The target runs pinned to CPU 0; the
model and h2load share the other CPUs. Sizes: `small` (FP32 [1,16]) and `64k`
(FP32 [1,16384]); targets:

  direct   h2load straight to the model: no proxy, the floor (model CPU only)
  nginx    nginx `grpc_pass` (one worker, keep-alive upstream), the C reference
  go       bench/goforward: grpc-go, raw bytes codec, one ClientConn to the model
  router   `ige serve` with `--grpc-port`, a 1-step and a 2-step Sequence of grpc://
           steps (`--router` templates: any other build in the same run)

h2load counts an answer with gRPC status other than OK as a success, so every row is
checked three ways: grpcio calls before and after the load must get the identity
answer bit-exact; the model's own count of ModelInfer calls must grow by exactly
calls x steps; and the DATA bytes h2load received must be exactly calls x the size of
the right answer (an error answer has no message). A row that fails any of them is
FAILED and the run exits 1.

    python -m bench.grpc_load                       # every row, about 3 minutes
    python -m bench.grpc_load --quick               # a smoke run
    python -m bench.grpc_load --markdown            # a RESULTS.md section
    python -m bench.grpc_load --targets router --router 'after=env PYTHONPATH=/tree {python} -P -m engine serve
        {graph} --host 127.0.0.1 --http-port {http_port} --grpc-port {port} --drain-seconds 0'
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import grp
import json
import math
import os
import platform
import pwd
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import nginx
from .cpu import tree_cpu_seconds, tree_cpu_split
from .grpc_model import build_go, check_calls, grpc_frame, identity_response, infer_request, model_calls
from .procs import REPO_DIR, Child, cpu_plan, free_port, pinned

SIZES = {"small": 16, "64k": 16384}
TARGETS = ("direct", "nginx", "go", "router")
PATH = "/inference.GRPCInferenceService/ModelInfer"
DEFAULT_ROUTER = ("{python} -m engine serve {graph} --host 127.0.0.1 --http-port {http_port} --grpc-port {port} "
                  "--drain-seconds 0")
# a model in front of which a call is cheap enough not to bound the proxies
MODEL_CHOICES = ("go", "python")


# ---- h2load -------------------------------------------------------------------------

@dataclasses.dataclass
class H2Result:
    """What one h2load run reports."""

    requests: int
    succeeded: int
    failed: int
    errored: int
    timeout: int
    status_2xx: int
    data_bytes: int
    elapsed_s: float
    rps: float
    cpu_s: float = math.nan  # h2load's own user+system time


_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def parse_h2load_output(text: str) -> H2Result:
    """Parse h2load's summary; raises ValueError when a line it needs is missing."""
    fin = re.search(r"finished in ([\d.]+)(s|ms|us), ([\d.]+) req/s", text)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                    r"(\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx", text)
    data = re.search(r"traffic: .*\((\d+)\) data", text)
    if not (fin and req and codes and data):
        raise ValueError(f"unexpected h2load output: {text[-500:]!r}")
    return H2Result(requests=int(req[3]), succeeded=int(req[4]), failed=int(req[5]), errored=int(req[6]),
                    timeout=int(req[7]), status_2xx=int(codes[1]), data_bytes=int(data[1]),
                    elapsed_s=float(fin[1]) * _UNITS[fin[2]], rps=float(fin[3]))


def latency_percentiles(log_path: str, quantiles=(0.5, 0.99)) -> list[float]:
    """Microseconds at `quantiles` from h2load's --log-file (start, status, duration us)."""
    with open(log_path) as f:
        durations = sorted(int(line.split("\t")[2]) for line in f if line.strip())
    if not durations:
        return [math.nan for _ in quantiles]
    return [float(durations[min(len(durations) - 1, int(q * len(durations)))]) for q in quantiles]


def h2load_command(port: int, body_path: str, requests: int, *, clients: int, streams: int,
                   log_path: str | None = None) -> list[str]:
    """h2load making `requests` ModelInfer calls with `body_path` as the gRPC body."""
    argv = ["h2load", "-n", str(requests), "-c", str(clients), "-m", str(streams), "-t", "1",
            "-d", body_path, "-H", "content-type: application/grpc", "-H", "te: trailers",
            # a target that stops answering ends the run instead of hanging it
            "-N", "10s"]
    if log_path:
        argv.append(f"--log-file={log_path}")
    return argv + [f"http://127.0.0.1:{port}{PATH}"]


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_h2load(argv: list[str], cpus: str | None, timeout: float) -> H2Result:
    """One h2load run (taskset execs it, so its CPU is that of one reaped child)."""
    cpu0 = _children_cpu()
    r = subprocess.run(pinned(argv, cpus), capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"h2load exited {r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
    return dataclasses.replace(parse_h2load_output(r.stdout), cpu_s=_children_cpu() - cpu0)


# ---- targets ------------------------------------------------------------------------

_NGINX_CONF = "# generated by bench/grpc_load.py, do not edit\n" + nginx.CONF_HEAD + """\
    # whole request and answer messages stay in memory, as in the router
    client_body_buffer_size 2m;
    grpc_buffer_size 1m;
    # streams per client connection (nginx >= 1.19.7; the default 1000 ends the run)
    keepalive_requests 1000000000;
    http2_max_concurrent_streams 1024;
    upstream model {{
        server {upstream};
        keepalive 64;
        keepalive_requests 1000000000;
    }}
    server {{
        listen 127.0.0.1:{port} http2 backlog=1024;
        location / {{
            grpc_pass grpc://model;
        }}
    }}
}}
"""


def nginx_grpc_missing() -> str | None:
    """Why this nginx cannot be the gRPC reference, or None when it can."""
    binary = nginx.nginx_binary()
    if binary is None:
        return "nginx is not installed (bench/setup.sh installs nginx-light)"
    try:
        flags = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10).stderr
    except (OSError, subprocess.SubprocessError) as e:
        return f"nginx -V failed: {e}"
    if "--with-http_v2_module" not in flags:
        return "nginx was built without --with-http_v2_module"
    if "--without-http_grpc_module" in flags:
        return "nginx was built without the grpc module"
    return None


def render_nginx_conf(directory: str, *, upstream_port: int, port: int) -> str:
    """Write `directory/nginx.conf`: grpc_pass of everything to 127.0.0.1:upstream_port."""
    user = ""
    if os.geteuid() == 0:
        # as root nginx switches workers to "nobody nobody", and Debian has no "nobody" group
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
    path = os.path.join(directory, "nginx.conf")
    with open(path, "w") as f:
        f.write(_NGINX_CONF.format(user=user, dir=directory, port=port, upstream=f"127.0.0.1:{upstream_port}"))
    return path


def write_graph(workdir: str, model_port: int, steps: int) -> str:
    """An InferenceGraph file: a Sequence of `steps` grpc:// steps to the model, each
    after the first taking the previous answer (`data: $response`)."""
    nodes = {"root": {"routerType": "Sequence", "steps": [
        {"serviceUrl": f"grpc://127.0.0.1:{model_port}/m", **({"data": "$response"} if i else {})}
        for i in range(steps)]}}
    graph = {"apiVersion": "serving.kserve.io/v1alpha1", "kind": "InferenceGraph",
             "metadata": {"name": "g"}, "spec": {"nodes": nodes}}
    path = os.path.join(workdir, f"graph-seq{steps}.json")
    with open(path, "w") as f:
        json.dump(graph, f)
    return path


@dataclasses.dataclass
class Target:
    """One thing to measure: kind (direct, nginx, go, router), its label, the steps it
    makes per call, and for a router its command template."""

    kind: str
    label: str
    steps: int = 1
    template: str = ""


def target_argv(target: Target, port: int, model_port: int, workdir: str, go_binary: str | None) -> list[str]:
    if target.kind == "nginx":
        ndir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        conf = render_nginx_conf(ndir, upstream_port=model_port, port=port)
        nginx.check_conf(ndir, conf)
        return nginx.nginx_command(ndir, conf)
    if target.kind == "go":
        assert go_binary is not None  # run_all skips the row without one
        return [go_binary, "-listen", f"127.0.0.1:{port}", "-backend", f"127.0.0.1:{model_port}"]
    q = shlex.quote
    graph = write_graph(workdir, model_port, target.steps)
    return shlex.split(target.template.format(python=q(sys.executable), graph=q(graph), port=port,
                                              http_port=free_port()))


def wait_grpc_ready(port: int, child: Child | None, message: bytes, expected: bytes, timeout: float) -> None:
    """Until a ModelInfer call through `port` gets the right answer, bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if child is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; log: {child.log_tail()}")
        try:
            check_calls(port, message, expected, n=1, timeout=2.0)
            return
        except RuntimeError as e:
            last = str(e)
        time.sleep(0.1)
    log = f"; log: {child.log_tail()}" if child is not None else ""
    raise TimeoutError(f"no right answer on port {port} within {timeout} s ({last}){log}")


# ---- one row ------------------------------------------------------------------------

@dataclasses.dataclass
class Row:
    """One measured (size, target) pair."""

    size: str
    target: str
    steps: int
    calls: int
    rps: float
    p50_us: float
    p99_us: float
    cpu_us_per_call: float  # the proxy's tree; NaN for direct
    sys_us_per_call: float
    cpu_pct: float
    model_cpu_us_per_call: float
    load_cpu_us_per_call: float  # h2load's
    failure: str = ""
    unavailable: bool = False  # a reference this machine cannot run: not a failure

    @classmethod
    def failed(cls, size: str, target: str, steps: int, reason: str, unavailable: bool = False) -> Row:
        nan = math.nan
        return cls(size, target, steps, 0, nan, nan, nan, nan, nan, nan, nan, nan,
                   " ".join(reason.split())[:240].replace("|", "/"), unavailable)


@dataclasses.dataclass
class Model:
    child: Child
    port: int
    kind: str


def _warm_up(port: int, body_path: str, opts, cpus: str | None) -> float:
    """h2load runs of doubling size until `opts.warmup` seconds have passed; the last
    run's req/s (every call completes: nothing is cancelled under the next window)."""
    n, spent, rps = 16 * opts.connections * opts.streams, 0.0, 0.0
    while True:
        res = run_h2load(h2load_command(port, body_path, n, clients=opts.connections, streams=opts.streams), cpus,
                         timeout=60 + opts.warmup * 10)
        spent += res.elapsed_s
        rps = res.rps
        if spent >= opts.warmup:
            return rps
        n *= 2


def measure(target: Target, size: str, model: Model, opts, workdir: str, go_binary: str | None) -> Row:
    """Start one target pinned, check it, warm it up, run h2load, account its CPU and
    check every call."""
    proxy_cpus, other_cpus = cpu_plan()
    message = infer_request(SIZES[size])
    expected = identity_response(message)
    body_path = os.path.join(workdir, f"body-{size}.bin")
    with open(body_path, "wb") as f:
        f.write(grpc_frame(message))
    child = None
    port = model.port
    try:
        if target.kind != "direct":
            port = free_port()
            argv = pinned(target_argv(target, port, model.port, workdir, go_binary), proxy_cpus)
            child = Child(argv, name=f"{target.label}-{size}", logdir=workdir, cwd=REPO_DIR)
        wait_grpc_ready(port, child, message, expected, opts.ready_timeout)
        answer_len = check_calls(port, message, expected)
        rps = _warm_up(port, body_path, opts, other_cpus) if opts.warmup > 0 else 1000.0
        batch = opts.connections * opts.streams
        calls = max(batch * 16, int(rps * opts.duration) // batch * batch)
        log_path = os.path.join(workdir, f"h2load-{target.label}-{size}.log")
        argv = h2load_command(port, body_path, calls, clients=opts.connections, streams=opts.streams,
                              log_path=log_path)
        count0 = model_calls(model.port)
        measured = child.pid if child is not None else None
        (cpu0, sys0), m0, t0 = (tree_cpu_split(measured) if measured else (0.0, 0.0),
                                tree_cpu_seconds(model.child.pid), time.monotonic())
        res = run_h2load(argv, other_cpus, timeout=120 + opts.duration * 20)
        (cpu1, sys1), m1, t1 = (tree_cpu_split(measured) if measured else (0.0, 0.0),
                                tree_cpu_seconds(model.child.pid), time.monotonic())
        count1 = model_calls(model.port)
        if child is not None and child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} died during the run; log: {child.log_tail()}")
        wrong = []
        if (res.succeeded, res.status_2xx) != (calls, calls):
            wrong.append(f"h2load: {res.succeeded} of {calls} succeeded, {res.status_2xx} 2xx, "
                         f"{res.failed} failed, {res.errored} errored, {res.timeout} timeout")
        if res.data_bytes != calls * (answer_len + 5):
            wrong.append(f"{res.data_bytes} DATA bytes for {calls} answers of {answer_len + 5}: "
                         "some calls got no message (a gRPC error)")
        if count1 - count0 != calls * target.steps:
            wrong.append(f"the model answered {count1 - count0} calls, not {calls} x {target.steps}")
        try:
            check_calls(port, message, expected)
        except RuntimeError as e:
            wrong.append(f"after the load: {e}")
        if wrong:
            raise RuntimeError("; ".join(wrong))
        p50, p99 = latency_percentiles(log_path)
    finally:
        if child is not None:
            child.stop()
    nan = math.nan
    return Row(size, target.label, target.steps, calls, res.rps, p50, p99,
               (cpu1 - cpu0) * 1e6 / calls if measured else nan,
               (sys1 - sys0) * 1e6 / calls if measured else nan,
               100.0 * (cpu1 - cpu0) / (t1 - t0) if measured else nan,
               (m1 - m0) * 1e6 / calls, res.cpu_s * 1e6 / calls)


def start_model(kind: str, go_binary: str | None, workdir: str, timeout: float) -> Model:
    """The identity model pinned to the CPUs beside the proxy's."""
    _, other_cpus = cpu_plan()
    if kind == "go":
        assert go_binary is not None  # run_all falls back to the grpc.aio model without one
        argv = [go_binary, "-listen", "127.0.0.1:0", "-identity"]
    else:
        argv = [sys.executable, "-m", "bench.grpc_model", "--port", "0"]
    child = Child(pinned(argv, other_cpus), name=f"model-{kind}", logdir=workdir, cwd=REPO_DIR, pipe_stdout=True)
    try:
        deadline = time.monotonic() + timeout
        line = child.read_line(deadline)
        if not line.startswith("listening "):
            raise RuntimeError(f"unexpected model output {line!r}")
        if child.read_line(deadline) != "ready":
            raise RuntimeError("the model did not report ready")
        return Model(child, int(line.rsplit(":", 1)[1]), kind)
    except BaseException:
        child.stop()
        raise


def plan(opts) -> list[Target]:
    """Targets in run order: direct, nginx, go, then each router's 1- and 2-step rows."""
    out = [Target(k, {"direct": "direct", "nginx": "nginx grpc_pass", "go": "go grpc-go raw"}[k])
           for k in ("direct", "nginx", "go") if k in opts.targets]
    if "router" in opts.targets:
        for label, template in opts.routers:
            out += [Target("router", f"{label} seq{s}", s, template) for s in opts.steps]
    return out


def run_all(opts) -> tuple[list[Row], dict]:
    """Every row; the model started once; every process stopped."""
    rows: list[Row] = []
    info: dict = {}
    targets = plan(opts)
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as workdir:
        go_binary, go_why = None, ""
        if "go" in opts.targets or opts.model == "go":
            print("bench: building bench/goforward ...", file=sys.stderr, flush=True)
            go_binary, go_why = build_go(workdir)
        model_kind = opts.model
        if model_kind == "go" and go_binary is None:
            print(f"bench: Go model not available ({go_why}); using the grpc.aio model", file=sys.stderr)
            model_kind = "python"
        info["model"] = model_kind
        info["go"] = _version(["go", "version"]) if go_binary else f"not available: {go_why}"
        info["nginx"] = _version([nginx.nginx_binary() or "nginx", "-v"], stderr=True)
        info["h2load"] = _version(["h2load", "--version"])
        nginx_why = nginx_grpc_missing() if "nginx" in opts.targets else None
        try:
            model = start_model(model_kind, go_binary, workdir, opts.ready_timeout)
        except (OSError, RuntimeError, TimeoutError) as e:
            return [Row.failed(s, t.label, t.steps, f"model: {e}") for s in opts.sizes for t in targets], info
        try:
            for size in opts.sizes:
                for t in targets:
                    if t.kind == "go" and go_binary is None:
                        rows.append(Row.failed(size, t.label, 1, f"not available: {go_why}", unavailable=True))
                        continue
                    if t.kind == "nginx" and nginx_why:
                        rows.append(Row.failed(size, t.label, 1, f"not available: {nginx_why}", unavailable=True))
                        continue
                    print(f"bench: {size} / {t.label} ...", file=sys.stderr, flush=True)
                    try:
                        rows.append(measure(t, size, model, opts, workdir, go_binary))
                    except (OSError, RuntimeError, TimeoutError, ValueError, subprocess.SubprocessError) as e:
                        print(f"bench: {size} / {t.label} FAILED: {e}", file=sys.stderr, flush=True)
                        rows.append(Row.failed(size, t.label, t.steps, str(e)))
        finally:
            model.child.stop()
    return rows, info


def _version(argv: list[str], stderr: bool = False) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "not installed"
    return ((r.stderr if stderr else r.stdout).strip().splitlines() or ["?"])[0]


# ---- reports ------------------------------------------------------------------------

def _base(rows: list[Row], size: str, label: str) -> float | None:
    return next((r.cpu_us_per_call for r in rows if r.size == size and r.target == label and not r.failure), None)


def table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and cells shared by the text and markdown reports."""
    head = ["size", "target", "calls", "req/s", "p50 ms", "p99 ms", "proxy CPU us/call", "x go", "x nginx",
            "of which sys", "proxy CPU %", "model CPU us/call",
            "h2load CPU us/call"]
    cells = []
    for r in rows:
        if r.failure:
            word = "" if r.unavailable else "FAILED: "
            cells.append([r.size, r.target, f"{word}{r.failure}"] + [""] * (len(head) - 3))
            continue
        go, ng = _base(rows, r.size, "go grpc-go raw"), _base(rows, r.size, "nginx grpc_pass")
        have = not math.isnan(r.cpu_us_per_call)
        cells.append([r.size, r.target, str(r.calls), f"{r.rps:,.0f}", f"{r.p50_us / 1e3:.2f}",
                      f"{r.p99_us / 1e3:.2f}", f"{r.cpu_us_per_call:,.1f}" if have else "-",
                      f"{r.cpu_us_per_call / go:.2f}" if have and go else "-",
                      f"{r.cpu_us_per_call / ng:.2f}" if have and ng else "-",
                      f"{r.sys_us_per_call:,.1f}" if have else "-", f"{r.cpu_pct:.0f}" if have else "-",
                      f"{r.model_cpu_us_per_call:,.1f}", f"{r.load_cpu_us_per_call:,.1f}"])
    return head, cells


def format_text(rows: list[Row]) -> str:
    head, cells = table(rows)
    # the whole reason went to stderr when the row failed
    cells = [[c[:100] if i == 2 else c for i, c in enumerate(line)] for line in cells]
    widths = [max(len(c) for c in col) for col in zip(head, *cells)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *cells])


def _machine() -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "uname": " ".join(platform.uname()[:3]), "nproc": os.cpu_count(), "cpu_model": model,
            "loadavg": os.getloadavg(), "python": platform.python_version()}


def format_markdown(rows: list[Row], machine: dict, info: dict, opts, command: str) -> str:
    head, cells = table(rows)
    proxy_cpus, other_cpus = cpu_plan()
    pinning = (f"proxy on CPU {proxy_cpus}, model and h2load on CPU {other_cpus}" if proxy_cpus
               else "no pinning (one CPU or no taskset)")
    la = machine["loadavg"]
    lines = [f"### {machine['date']}", "",
             f"- command: `{command}`",
             f"- machine: `{machine['uname']}`, nproc {machine['nproc']}, {machine['cpu_model']}, "
             f"load average at start {la[0]:.2f} {la[1]:.2f} {la[2]:.2f}",
             f"- h2load -c{opts.connections} -m{opts.streams} ({opts.connections * opts.streams} calls in flight), "
             f"about {opts.duration:g} s per row after {opts.warmup:g} s of warm-up; {pinning}",
             f"- model: {info.get('model')} identity; {info.get('h2load')}; {info.get('nginx')}; {info.get('go')}",
             "- routers: " + "; ".join(f"{label}: `{t}`" for label, t in opts.routers), "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def format_json(rows: list[Row], machine: dict, info: dict, opts, command: str) -> str:
    settings = {k: getattr(opts, k) for k in ("duration", "warmup", "connections", "streams", "model")}
    return json.dumps({"machine": machine, "command": command, "settings": settings, "tools": info,
                       "routers": dict(opts.routers),
                       "rows": [{k: (None if isinstance(v, float) and v != v else v)
                                 for k, v in dataclasses.asdict(r).items()} for r in rows]}, indent=2)


# ---- CLI ----------------------------------------------------------------------------

def _router(value: str) -> tuple[str, str]:
    m = re.match(r"^([\w.+-]+)=(.*)$", value, re.S)
    return (m[1], m[2]) if m else ("", value)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.grpc_load", description=__doc__.split("\n\n")[0])
    p.add_argument("--router", action="append", type=_router, default=[], metavar="[LABEL=]TEMPLATE",
                   help="router command with {python} {graph} {port} (gRPC) {http_port}; repeat to measure "
                        f"several builds in one run (default: ige={DEFAULT_ROUTER})")
    p.add_argument("--targets", default=",".join(TARGETS), help="comma separated from " + ",".join(TARGETS))
    p.add_argument("--sizes", default=",".join(SIZES), help="comma separated from " + ",".join(SIZES))
    p.add_argument("--steps", default="1,2", help="Sequence lengths of the router rows")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per row (about)")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    p.add_argument("--connections", type=int, default=1, help="h2load -c")
    p.add_argument("--streams", type=int, default=16, help="h2load -m: streams in flight per connection")
    p.add_argument("--model", choices=MODEL_CHOICES, default="go",
                   help="identity model: Go (bench/goforward -identity; grpc.aio when Go is missing) or grpc.aio")
    p.add_argument("--ready-timeout", type=float, default=30.0)
    p.add_argument("--quick", action="store_true", help="a smoke run: 1 s per row, 0.3 s warm-up")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.duration, opts.warmup = 1.0, 0.3
    opts.targets = [t for t in opts.targets.split(",") if t]
    opts.sizes = [s for s in opts.sizes.split(",") if s]
    if set(opts.targets) - set(TARGETS) or not opts.targets:
        p.error(f"--targets takes {','.join(TARGETS)}")
    if set(opts.sizes) - set(SIZES) or not opts.sizes:
        p.error(f"--sizes takes {','.join(SIZES)}")
    try:
        opts.steps = [int(s) for s in opts.steps.split(",") if s]
    except ValueError:
        p.error("--steps takes numbers")
    if not opts.steps or min(opts.steps) < 1:
        p.error("--steps takes positive numbers")
    routers = opts.router or [("ige", DEFAULT_ROUTER)]
    opts.routers = [(label or ("ige" if i == 0 else f"router{i + 1}"), t) for i, (label, t) in enumerate(routers)]
    if len({label for label, _ in opts.routers}) != len(opts.routers):
        p.error("--router labels must differ")
    for label, template in opts.routers:
        if "{graph}" not in template or "{port}" not in template:
            p.error(f"--router {label}: the template needs {{graph}} and {{port}} (the gRPC port)")
    return opts


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # so every finally block stops its processes


def main(argv=None) -> int:
    """CLI entry point."""
    opts = parse_args(argv)
    if shutil.which("h2load") is None:
        print("bench: h2load is not installed; run bench/setup.sh (Debian nghttp2-client)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    command = "python -m bench.grpc_load " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
    machine = _machine()
    try:
        rows, info = run_all(opts)
    except KeyboardInterrupt:
        print("bench: interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if opts.json:
        print(format_json(rows, machine, info, opts, command))
    elif opts.markdown:
        print(format_markdown(rows, machine, info, opts, command))
    else:
        print(f"# model: {info.get('model')} identity; load average at start "
              f"{machine['loadavg'][0]:.2f}; proxy pinned: {cpu_plan()[0] or 'no'}")
        print(format_text(rows))
    return 1 if any(r.failure and not r.unavailable for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
