"""Load harness: router CPU per request under wrk, next to nginx and a bare forward.

For each scenario (graphs in bench/graphs/): start the mock models (one process, one
port per model), start the router under test pinned to CPU 0, wait for readiness,
warm up, run wrk, and read the CPU the router's process tree spent during the run
(utime+stime from /proc, sampled right before and after wrk). CPU per request is
that delta over the requests wrk completed. Mocks and wrk share the other CPUs.
References measured in the same run: nginx proxying seq1 (one worker, keep-alive
upstream pool) and the bare forward (bench/bare_forward.py) for seq1, seq2, seq3-1mb.

    python -m bench.load                          # the engine: `ige serve`
    python -m bench.load --router bare --markdown # the bare forward as the router
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import selectors
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import httptools

from . import nginx

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
# no drain pause: the harness stops the router between rows
DEFAULT_ROUTER = "{python} -m engine serve {graph} --services {services} --http-port {port} --drain-seconds 0"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- scenarios

def small_body() -> bytes:
    """The ~100 byte request of the small scenarios."""
    return b'{"instances":[[6.8,2.8,4.8,1.4],[6.0,3.4,4.5,1.6],[5.1,3.5,1.4,0.2],[4.9,3.0,1.4,0.2]]}'


def switch_body(size: int = 16 * 1024) -> bytes:
    """`size` bytes of instances with modelId "0" and, last, one with modelId "2"."""
    def instance(model_id: str, n: int) -> str:
        return '{"modelId":"%s","features":[%s]}' % (model_id, ",".join("%.4f" % ((i * 7 % 97) / 97) for i in range(n)))
    last = instance("2", 16)
    items: list[str] = []
    used = len('{"instances":[]}') + len(last)
    while True:
        item = instance("0", 16)
        if used + len(item) + 1 > size:
            break
        items.append(item)
        used += len(item) + 1
    body = '{"instances":[' + ",".join(items + [last]) + "]}"
    return body.encode()


def mb_body(size: int = 1 << 20) -> bytes:
    """About `size` bytes of JSON: rows of 16 floats."""
    row = "[" + ",".join("%.6f" % (i / 17) for i in range(16)) + "]"
    n = (size - len('{"instances":[]}')) // (len(row) + 1)
    return ('{"instances":[' + ",".join([row] * n) + "]}").encode()


def model_answer(name: str) -> bytes:
    """The fixed answer of mock model `name` (66-70 bytes): naming the model lets the
    harness check that a router called the right one."""
    return b'{"model":"%s","predictions":[[0.1,0.9],[0.8,0.2],[0.3,0.7]]}' % name.encode()


def answer_of(name: str):
    """Expectation: the scenario answers model `name`'s answer."""
    def expected(request: bytes):
        return json.loads(model_answer(name))
    return expected


def echoed(request: bytes):
    """Expectation for echoing models: the request itself."""
    return json.loads(request)


def ensemble_answer(request: bytes):
    """KServe's Ensemble answer for ens4: every step's response under its step name."""
    return {step: json.loads(model_answer(f"model-{step}")) for step in "abcd"}


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One graph, its models (all served alike by one mock process) and its request."""

    name: str
    services: tuple[str, ...]
    body: object  # () -> bytes
    echo_body: bool = False
    bare_chain: str | None = None  # bare forward: "response"/"request", None: not expressible
    large_bodies: bool = False  # the bare forward's cheapest mode for this scenario: --direct-bodies
    goal: str = ""
    expected: object = None  # (request body) -> the answer's JSON, checked before the load

    @property
    def graph(self) -> str:
        return os.path.join(BENCH_DIR, "graphs", f"{self.name}.yaml")


SCENARIOS = {s.name: s for s in [
    Scenario("seq1", ("model-a",), small_body, bare_chain="response", goal="<= 1.2x nginx",
             expected=answer_of("model-a")),
    Scenario("seq2", ("model-a", "model-b"), small_body, bare_chain="response", goal="<= 45 us",
             expected=answer_of("model-b")),
    Scenario("ens4", ("model-a", "model-b", "model-c", "model-d"), small_body, goal="<= 90 us",
             expected=ensemble_answer),
    Scenario("switch16k", ("model-a", "model-b", "model-c"), switch_body, goal="<= 60 us",
             expected=answer_of("model-b")),
    Scenario("seq3-1mb", ("model-a", "model-b", "model-c"), mb_body, echo_body=True, bare_chain="response",
             large_bodies=True, goal="<= 800 us", expected=echoed),
]}


# ----------------------------------------------------------------------------- CPU accounting

def parse_stat(text: str) -> list[str]:
    """The fields of a /proc/<pid>/stat line after the command name (state first)."""
    # comm (field 2) may hold spaces and parentheses: split after its last ')'.
    return text[text.rindex(")") + 2:].split()


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return parse_stat(f.read())


def stat_cpu_ticks(fields: list[str], *, system_only: bool = False) -> int:
    """utime+stime+cutime+cstime (or stime+cstime) from `parse_stat` fields."""
    # after comm: state=0 ppid=1 pgrp=2 ... utime=11 stime=12 cutime=13 cstime=14
    if system_only:
        return int(fields[12]) + int(fields[14])
    return int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])


def proc_cpu_ticks(pid: int, *, system_only: bool = False) -> int:
    """CPU clock ticks of `pid` plus those of its reaped children (`system_only`: system time)."""
    return stat_cpu_ticks(_stat_fields(pid), system_only=system_only)


def proc_children(pid: int) -> list[int]:
    """Live direct children of `pid`."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                found.extend(int(c) for c in f.read().split())
        return found
    except FileNotFoundError:
        pass
    for entry in os.listdir("/proc"):  # kernels without /proc/<pid>/task/<tid>/children
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[1]) == pid:
                    found.append(int(entry))
            except (OSError, ValueError):
                continue
    return found


def tree_pids(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo.extend(proc_children(p))
        except OSError:
            continue
    return out


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                f = _stat_fields(int(entry))
            except (OSError, ValueError):
                continue
            if int(f[2]) == pgid and f[0] not in ("Z", "X"):
                members.append(int(entry))
    return members


def tree_cpu_seconds(pid: int, *, system_only: bool = False) -> float:
    """CPU seconds (user+system, or system only) used by `pid`'s process tree, reaped
    children included."""
    total, system = tree_cpu_split(pid)
    return system if system_only else total


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(user+system, system) CPU seconds of `pid`'s tree, read in one pass."""
    total = system = 0
    for p in tree_pids(pid):
        try:
            fields = _stat_fields(p)
        except (OSError, ValueError):
            continue  # exited between listing and reading; its time moved to its parent
        total += stat_cpu_ticks(fields)
        system += stat_cpu_ticks(fields, system_only=True)
    return total / CLK_TCK, system / CLK_TCK


# ----------------------------------------------------------------------------- wrk

@dataclasses.dataclass
class WrkResult:
    """What one wrk run reports."""

    requests: int
    duration_s: float
    p50_us: float
    p99_us: float
    errors: dict

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
_JSON_MARK = "BENCH_JSON "

WRK_SCRIPT = """\
-- generated by bench/load.py, do not edit
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(%(body)s, "rb"))
wrk.body = f:read("*a")
f:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\\n%(mark)s{\\"requests\\":%%d,\\"duration_us\\":%%d,\\"p50_us\\":%%d,\\"p99_us\\":%%d," ..
    "\\"errors\\":{\\"connect\\":%%d,\\"read\\":%%d,\\"write\\":%%d,\\"status\\":%%d,\\"timeout\\":%%d}}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def wrk_script(body_path: str) -> str:
    """The wrk Lua script posting the file `body_path` and printing a JSON summary."""
    return WRK_SCRIPT % {"body": json.dumps(body_path), "mark": _JSON_MARK}


def _duration_us(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk_output(text: str) -> WrkResult:
    """Parse wrk's output: the script's JSON summary if present, else wrk's own text."""
    for line in text.splitlines():
        if line.startswith(_JSON_MARK):
            d = json.loads(line[len(_JSON_MARK):])
            return WrkResult(d["requests"], d["duration_us"] / 1e6, float(d["p50_us"]), float(d["p99_us"]),
                             d["errors"])
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError("no request count in wrk output:\n" + text)
    requests, duration = int(m.group(1)), _duration_us(m.group(2) + m.group(3)) / 1e6
    pct = dict(re.findall(r"^\s+(50|99)(?:\.0+)?%\s+(\S+)$", text, re.M))
    if "50" not in pct or "99" not in pct:
        raise ValueError("no latency distribution in wrk output (run wrk with --latency)")
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    s = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if s:
        errors.update(zip(("connect", "read", "write", "timeout"), map(int, s.groups())))
    n = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if n:
        errors["status"] = int(n.group(1))
    return WrkResult(requests, duration, _duration_us(pct["50"]), _duration_us(pct["99"]), errors)


# ----------------------------------------------------------------------------- processes

def cpu_plan() -> tuple[str | None, str | None]:
    """(router CPUs, other CPUs) for taskset, or (None, None) on one CPU or without taskset."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return str(cpus[0]), ",".join(map(str, cpus[1:]))


def pinned(argv: list[str], cpus: str | None) -> list[str]:
    """`argv` under `taskset -c cpus` (taskset execs, so the pid stays the program's)."""
    return ["taskset", "-c", cpus, *argv] if cpus else list(argv)


class Child:
    """A child in its own process group, stopped with the whole group; stderr to a log file."""

    def __init__(self, argv: list[str], *, name: str, logdir: str, cwd: str | None = None, pipe_stdout=False):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, start_new_session=True,
                                     stdout=subprocess.PIPE if pipe_stdout else self._log, stderr=self._log)
        self.pid = self.proc.pid

    def read_line(self, deadline: float) -> str:
        """One line of stdout, waiting at most until `deadline` (time.monotonic())."""
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise TimeoutError(f"{self.name}: no output in time; log: {self.log_tail()}")
                chunk = os.read(self.proc.stdout.fileno(), 1)
                if not chunk:
                    raise RuntimeError(f"{self.name} exited ({self.proc.poll()}); log: {self.log_tail()}")
                line += chunk
        return line.decode().strip()

    def log_tail(self, n: int = 2000) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the group, SIGKILL it if it outlives `timeout`, and reap."""
        try:
            if self.proc.poll() is None:
                for sig in (signal.SIGTERM, signal.SIGKILL):
                    try:
                        os.killpg(self.pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        self.proc.wait(timeout)
                        break
                    except subprocess.TimeoutExpired:
                        continue
            # the leader may be gone while members of its group live on
            deadline = time.monotonic() + timeout
            while group_members(self.pid) and time.monotonic() < deadline:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    break
                time.sleep(0.01)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
            self._log.close()


def free_port() -> int:
    """A port free right now on 127.0.0.1 (the router binds it a moment later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post_once(port: int, path: str, body: bytes, timeout: float = 10.0) -> tuple[int, bytes]:
    """One POST on a fresh connection (closed after); returns (status, body)."""
    head = (f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer: dict = {"body": []}

    class Collect:
        def on_body(self, chunk):
            answer["body"].append(chunk)

        def on_message_complete(self):
            answer["done"] = True

    parser = httptools.HttpResponseParser(Collect())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        while "done" not in answer:
            data = s.recv(1 << 20)
            if not data:
                raise RuntimeError("connection closed before a complete answer")
            parser.feed_data(data)
    return parser.get_status_code(), b"".join(answer["body"])


def check_answer(port: int, scenario: Scenario, body: bytes, path: str) -> None:
    """Fail unless the target answers `body` with 200 and the scenario's expected JSON."""
    status, answer = post_once(port, path, body)
    try:
        got = json.loads(answer)
    except ValueError:
        got = answer[:200]
    if status != 200 or got != scenario.expected(body):
        raise RuntimeError(f"{scenario.name}: wrong answer: {status} {answer[:200]!r}")


def wait_ready(port: int, child: Child, timeout: float) -> None:
    """Poll `GET /readyz` until an HTTP answer other than 503, bounded by `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited with {child.proc.returncode}; log: {child.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                status = s.recv(64).split(b" ", 2)
                # 404: a server without /readyz is up all the same
                if len(status) > 1 and status[0].startswith(b"HTTP/") and status[1] != b"503":
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{child.name} not ready on port {port} within {timeout} s; log: {child.log_tail()}")


# ----------------------------------------------------------------------------- runs

@dataclasses.dataclass
class Row:
    """One measured (scenario, target) pair."""

    scenario: str
    target: str
    requests: int
    rps: float
    p50_us: float
    p99_us: float
    cpu_us_per_req: float
    sys_us_per_req: float
    router_cpu_pct: float
    mock_cpu_us_per_req: float
    errors: int
    goal: str = ""
    failure: str = ""  # why the row has no figures

    @classmethod
    def failed(cls, scenario: str, target: str, reason: str, goal: str = "") -> Row:
        nan = float("nan")
        return cls(scenario, target, 0, nan, nan, nan, nan, nan, nan, nan, 0, goal, reason)


def cpu_per_request(cpu_before: float, cpu_after: float, requests: int) -> float:
    """Microseconds of CPU per completed request (inf when nothing completed)."""
    return (cpu_after - cpu_before) * 1e6 / requests if requests else float("inf")


def start_mocks(scenario: Scenario, cpus: str | None, logdir: str, timeout: float, *,
                per_backend: bool = False, started: list | None = None) -> dict:
    """Mock processes for `scenario`'s models; returns name -> URL.

    One process serves every model's port, or with `per_backend` one process per model.
    Each started Child is appended to `started` at once, so the caller stops it even
    when a later start fails.
    """
    started = [] if started is None else started
    base = [sys.executable, "-m", "bench.mock_server"]
    if scenario.echo_body:
        base.append("--echo-body")
    groups = [[name] for name in scenario.services] if per_backend else [list(scenario.services)]
    deadline = time.monotonic() + timeout
    urls = {}
    for i, names in enumerate(groups):
        argv = base + ["--port", "0"] * len(names)
        for name in names:
            argv += ["--answer", model_answer(name).decode()]
        child = Child(pinned(argv, cpus), name=f"mocks-{scenario.name}-{i}", logdir=logdir, cwd=REPO_DIR,
                      pipe_stdout=True)
        started.append(child)
        for name in names:
            line = child.read_line(deadline)
            if not line.startswith("listening "):
                raise RuntimeError(f"unexpected mock output {line!r}")
            urls[name] = f"{line.split()[1]}/v1/models/{name}:predict"
        if child.read_line(deadline) != "ready":
            raise RuntimeError("mock server did not report ready")
    return urls


def group_cpu_seconds(children: list) -> float:
    """CPU seconds of several process trees."""
    return sum(tree_cpu_seconds(c.pid) for c in children)


def target_command(target: str, scenario: Scenario, urls: dict, port: int, workdir: str, template: str) -> list[str]:
    """The argv of one target: "router" (the template), "bare" or "nginx"."""
    if target == "bare":
        return [sys.executable, "-m", "bench.bare_forward", "--port", str(port), "--chain", scenario.bare_chain,
                *(["--direct-bodies"] if scenario.large_bodies else []), *(urls[name] for name in scenario.services)]
    if target == "nginx":
        ndir = tempfile.mkdtemp(prefix="nginx-", dir=workdir)
        conf = nginx.render_conf(ndir, upstream_url=urls[scenario.services[0]], port=port)
        return nginx.nginx_command(ndir, conf)
    services = os.path.join(workdir, f"services-{scenario.name}.yaml")
    with open(services, "w") as f:
        f.writelines(f"{name}: {url}\n" for name, url in urls.items())
    q = shlex.quote
    return shlex.split(template.format(python=q(sys.executable), graph=q(scenario.graph), services=q(services),
                                       port=port))


def run_wrk(url: str, script: str, *, duration: float, connections: int, threads: int, cpus: str | None) -> WrkResult:
    """Run wrk once, bounded by its duration plus a margin."""
    argv = pinned(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration:g}s", "--latency",
                   "--timeout", "10s", "-s", script, url], cpus)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    if r.returncode != 0:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stderr.strip()}")
    return parse_wrk_output(r.stdout)


def measure(target: str, scenario: Scenario, urls: dict, mocks: list, opts, workdir: str, body_path: str) -> Row:
    """Start one target, warm it up, run wrk, and account its CPU."""
    router_cpus, other_cpus = cpu_plan()
    port = free_port()
    argv = pinned(target_command(target, scenario, urls, port, workdir, opts.router_template), router_cpus)
    child = Child(argv, name=f"{target}-{scenario.name}", logdir=workdir, cwd=REPO_DIR)
    try:
        wait_ready(port, child, opts.ready_timeout)
        script = os.path.join(workdir, f"wrk-{scenario.name}.lua")
        with open(script, "w") as f:
            f.write(wrk_script(body_path))
        path = f"/v1/models/{scenario.name}:predict"
        with open(body_path, "rb") as f:
            check_answer(port, scenario, f.read(), path)
        url = f"http://127.0.0.1:{port}{path}"
        wrk = dict(connections=opts.connections, threads=opts.threads, cpus=other_cpus)
        if opts.warmup > 0:
            run_wrk(url, script, duration=opts.warmup, **wrk)
        (cpu0, sys0), mock0, t0 = tree_cpu_split(child.pid), group_cpu_seconds(mocks), time.monotonic()
        result = run_wrk(url, script, duration=opts.duration, **wrk)
        (cpu1, sys1), mock1, t1 = tree_cpu_split(child.pid), group_cpu_seconds(mocks), time.monotonic()
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} died during the run; log: {child.log_tail()}")
    finally:
        child.stop()
    return Row(scenario.name, target, result.requests, result.rps, result.p50_us, result.p99_us,
               cpu_per_request(cpu0, cpu1, result.requests), cpu_per_request(sys0, sys1, result.requests),
               100.0 * (cpu1 - cpu0) / (t1 - t0),
               cpu_per_request(mock0, mock1, result.requests), result.error_count,
               scenario.goal if target == "router" else "")


def plan_runs(router: str, scenarios: list[str], references: list[str]) -> list[tuple[str, str]]:
    """(scenario, target) pairs in run order; nginx seq1 first so every ratio has its base."""
    runs: list[tuple[str, str]] = []
    if "nginx" in references or router == "nginx":
        runs.append(("seq1", "nginx"))
    for name in scenarios:
        s = SCENARIOS[name]
        # nginx proxies one model, the bare forward chains models: neither has graph semantics
        if not ((router == "nginx" and name != "seq1") or (router == "bare" and s.bare_chain is None)):
            runs.append((name, router if router in ("bare", "nginx") else "router"))
        if "bare" in references and s.bare_chain is not None:
            runs.append((name, "bare"))
    seen: set = set()
    return [r for r in runs if not (r in seen or seen.add(r))]


def _failure(scenario: str, target: str, reason: str) -> Row:
    # one row fails, the run goes on: the other rows are still worth having
    print(f"bench: {scenario} / {target} FAILED: {reason}", file=sys.stderr, flush=True)
    return Row.failed(scenario, target, failure_summary(reason), SCENARIOS[scenario].goal if target == "router" else "")


def failure_summary(reason: str) -> str:
    """One table-safe line: the message's first line, and its last when it carries a log."""
    lines = [ln.strip() for ln in reason.strip().splitlines() if ln.strip()] or ["failed"]
    text = lines[0] if len(lines) == 1 else f"{lines[0].split('; log:')[0]} ... {lines[-1]}"
    return text.replace("|", "/")[:200]


def run_all(opts) -> list[Row]:
    """Every planned run, mocks started once per scenario; processes always stopped."""
    rows: list[Row] = []
    runs = plan_runs(opts.router, opts.scenarios, opts.references)
    _, other_cpus = cpu_plan()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as workdir:
        for name in dict.fromkeys(s for s, _ in runs):
            scenario = SCENARIOS[name]
            body_path = os.path.join(workdir, f"body-{name}.json")
            with open(body_path, "wb") as f:
                f.write(scenario.body())
            mocks: list[Child] = []
            targets = [t for s, t in runs if s == name]
            try:
                try:
                    urls = start_mocks(scenario, other_cpus, workdir, opts.ready_timeout,
                                       per_backend=opts.mock_procs == "per-backend", started=mocks)
                except (OSError, RuntimeError, TimeoutError) as e:
                    rows += [_failure(name, t, f"mock models: {e}") for t in targets]
                    continue
                for target in targets:
                    print(f"bench: {name} / {target} ...", file=sys.stderr, flush=True)
                    try:
                        rows.append(measure(target, scenario, urls, mocks, opts, workdir, body_path))
                    except (OSError, RuntimeError, TimeoutError, ValueError, subprocess.SubprocessError) as e:
                        rows.append(_failure(name, target, str(e)))
            finally:
                for mock in mocks:
                    mock.stop()
    return rows


# ----------------------------------------------------------------------------- reports

def _uname() -> str:
    try:
        return subprocess.run(["uname", "-a"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return " ".join(platform.uname())


def machine_info() -> dict:
    """Date, kernel, CPUs and load: what a figure needs to be read."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "uname": _uname(), "nproc": os.cpu_count(), "cpu_model": model,
            "loadavg": os.getloadavg(), "python": platform.python_version()}


def base_cpu(rows: list[Row]) -> float | None:
    """nginx's seq1 CPU per request in this run, the base of every ratio."""
    return next((r.cpu_us_per_req for r in rows if r.scenario == "seq1" and r.target == "nginx" and not r.failure),
                None)


def table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells shared by the text and markdown reports."""
    base = base_cpu(rows)
    head = ["scenario", "target", "req/s", "p50 ms", "p99 ms", "router CPU us/req", "x nginx seq1",
            "of which sys", "router CPU %", "mock CPU us/req", "errors", "goal"]
    cells = []
    for r in rows:
        if r.failure:
            cells.append([r.scenario, r.target, f"FAILED: {r.failure}"] + [""] * (len(head) - 4) + [r.goal])
            continue
        cells.append([r.scenario, r.target, f"{r.rps:,.0f}", f"{r.p50_us / 1e3:.2f}", f"{r.p99_us / 1e3:.2f}",
                      f"{r.cpu_us_per_req:,.1f}", f"{r.cpu_us_per_req / base:.2f}" if base else "-",
                      f"{r.sys_us_per_req:,.1f}", f"{r.router_cpu_pct:.0f}", f"{r.mock_cpu_us_per_req:,.1f}",
                      str(r.errors), r.goal])
    return head, cells


def format_text(rows: list[Row]) -> str:
    head, cells = table(rows)
    widths = [max(len(c) for c in col) for col in zip(head, *cells)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in [head, *cells])


def format_markdown(rows: list[Row], info: dict, opts, command: str) -> str:
    head, cells = table(rows)
    router_cpus, other_cpus = cpu_plan()
    pinning = (f"router on CPU {router_cpus}, mocks and wrk on CPU {other_cpus}" if router_cpus
               else "no pinning (one CPU or no taskset)")
    lines = [f"### {info['date']}: `--router {opts.router_label}`", "",
             f"- command: `{command}`",
             f"- machine: `{info['uname']}`, nproc {info['nproc']}, {info['cpu_model']}, "
             f"load average at start {info['loadavg'][0]:.2f} {info['loadavg'][1]:.2f} {info['loadavg'][2]:.2f}",
             f"- wrk -t{opts.threads} -c{opts.connections}, {opts.duration:g} s per row after a "
             f"{opts.warmup:g} s warm-up; {pinning}; mock processes: {opts.mock_procs}", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(c) + " |" for c in cells]
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--router", default=DEFAULT_ROUTER,
                   help="command template ({python} {graph} {services} {port}), or 'bare' or 'nginx'")
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma separated: " + ",".join(SCENARIOS))
    p.add_argument("--references", default="nginx,bare", help="comma separated from nginx,bare; or 'none'")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per row")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ready-timeout", type=float, default=20.0)
    p.add_argument("--mock-procs", choices=["single", "per-backend"], default="single",
                   help="one mock process for all models of a scenario, or one per model")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a RESULTS.md section")
    fmt.add_argument("--json", action="store_true", help="print JSON")
    opts = p.parse_args(argv)
    opts.scenarios = [s for s in opts.scenarios.split(",") if s]
    unknown = [s for s in opts.scenarios if s not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenarios {unknown}; known: {list(SCENARIOS)}")
    opts.references = [] if opts.references == "none" else [r for r in opts.references.split(",") if r]
    if set(opts.references) - {"nginx", "bare"}:
        p.error("--references takes nginx, bare or none")
    if opts.threads > opts.connections:
        p.error("--threads cannot exceed --connections")
    if opts.router in ("bare", "nginx"):
        opts.router_template, opts.router_label = "", opts.router
    else:
        opts.router_template, opts.router_label = opts.router, opts.router
        opts.router = "router"
    return opts


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # so every finally block stops its processes


def main(argv=None) -> int:
    """CLI entry point."""
    opts = parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench: wrk is not installed; run bench/setup.sh", file=sys.stderr)
        return 2
    if (opts.router == "nginx" or "nginx" in opts.references) and nginx.nginx_binary() is None:
        print("bench: nginx is not installed; run bench/setup.sh or pass --references bare", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _interrupt)
    command = "python -m bench.load " + " ".join(map(shlex.quote, sys.argv[1:] if argv is None else argv))
    info = machine_info()
    try:
        rows = run_all(opts)
    except KeyboardInterrupt:
        print("bench: interrupted; every process started was stopped", file=sys.stderr)
        return 130
    if opts.json:
        settings = {k: getattr(opts, k) for k in ("duration", "warmup", "connections", "threads", "mock_procs")}
        print(json.dumps({"machine": info, "command": command, "settings": settings,
                          "rows": [{k: (None if isinstance(v, float) and v != v else v)
                                    for k, v in dataclasses.asdict(r).items()} for r in rows],
                          "nginx_seq1_cpu_us_per_req": base_cpu(rows)}, indent=2))
    elif opts.markdown:
        print(format_markdown(rows, info, opts, command))
    else:
        print(format_text(rows))
    return 1 if any(r.failure or r.errors for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
