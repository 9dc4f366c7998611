"""Processes of a load run: CPU pinning with taskset, children stopped with their
whole process group, the mock models, and the HTTP probes (readiness, one checked
answer) made before the load."""
from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time

import httptools

from .cpu import group_members
from .scenarios import BENCH_DIR, Scenario, model_answer

REPO_DIR = os.path.dirname(BENCH_DIR)


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
    mocks = dict(scenario.mocks)
    faults = dict(scenario.fail_every)
    groups = [[name] for name in mocks] if per_backend else [list(mocks)]
    deadline = time.monotonic() + timeout
    urls = {}
    for i, names in enumerate(groups):
        argv = base + ["--port", "0"] * len(names)
        for name in names:
            argv += ["--answer", model_answer(mocks[name]).decode()]
        if faults:
            for name in names:
                argv += ["--fail-every", str(faults.get(name, 0))]
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
