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
    python -m bench.load --scenarios seq2 --references none --rounds 3 \
        --variant no-metrics=--no-metrics \
        --variant 'tracing=OTEL_TRACES_EXPORTER=otlp OTEL_TRACES_SAMPLER=always_on'
                                                  # variants of the router, same run

A variant is the router with more `ige serve` arguments and environment variables
(words of the form NAME=value); `{otlp}` in them is the URL of an OTLP/HTTP sink the
harness starts (a mock that answers 200 to every export), and a variant that sets
OTEL_TRACES_EXPORTER without an endpoint gets that sink as its endpoint. With
`--rounds N` the router and its variants run N times each, in alternating order
(A B C, C B A, ...), so that drift in the machine's load falls on all of them.

This module is the CLI and the orchestration; the parts live beside it:
bench/scenarios.py (graphs, bodies, expected answers), bench/procs.py (children,
pinning, mocks, probes), bench/cpu.py (/proc CPU accounting), bench/wrk.py (the wrk
driver) and bench/report.py (rows, machine info, text/markdown/JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import nginx
from .cpu import (CLK_TCK, cpu_per_request, group_cpu_seconds, group_members, parse_stat, proc_cpu_ticks,
                  stat_cpu_ticks, tree_cpu_seconds, tree_cpu_split, tree_pids)
from .procs import REPO_DIR, Child, check_answer, cpu_plan, free_port, pinned, start_mocks, wait_ready
from .report import Row, failure_summary, format_json, format_markdown, format_text, machine_info
from .scenarios import (BENCH_DIR, DEFAULT_SCENARIOS, SCENARIOS, Scenario, mb_body, model_answer, small_body,
                        switch_body)
from .wrk import parse_wrk_output, run_wrk, wrk_script

__all__ = [
    # the CLI and the orchestration, defined here
    "DEFAULT_ROUTER", "main", "measure", "parse_args", "plan_runs", "run_all", "target_command",
    # re-exported from the modules beside it, for the callers and tests of bench.load
    "BENCH_DIR", "CLK_TCK", "DEFAULT_SCENARIOS", "REPO_DIR", "SCENARIOS", "Child", "Row", "Scenario", "check_answer",
    "cpu_per_request", "cpu_plan", "failure_summary", "format_json", "format_markdown", "format_text",
    "free_port", "group_cpu_seconds", "group_members", "machine_info", "mb_body", "model_answer",
    "parse_stat", "parse_wrk_output", "pinned", "proc_cpu_ticks", "run_wrk", "small_body", "start_mocks",
    "stat_cpu_ticks", "switch_body", "tree_cpu_seconds", "tree_cpu_split", "tree_pids", "wait_ready",
    "wrk_script",
]

# no drain pause: the harness stops the router between rows
DEFAULT_ROUTER = "{python} -m engine serve {graph} --services {services} --http-port {port} --drain-seconds 0"


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
    argv = shlex.split(template.format(python=q(sys.executable), graph=q(scenario.graph), services=q(services),
                                       port=port))
    if scenario.policy is not None:
        # the policy needs the mocks' URLs, so it is written per run; only `ige serve` takes it
        policy = os.path.join(workdir, f"policy-{scenario.name}.json")
        with open(policy, "w") as f:
            json.dump(scenario.policy(urls), f)
        argv += ["--policy", policy]
    return argv


def variant_template(template: str, words: str, otlp: str | None) -> str:
    """``template`` with a variant's environment (NAME=value words) in front and its
    other words appended; ``{otlp}`` is the OTLP sink's URL."""
    env, args = [], []
    for word in shlex.split(words):
        if otlp is not None:
            word = word.replace("{otlp}", otlp)
        (env if re.match(r"[A-Z_][A-Z0-9_]*=", word) else args).append(word)
    if otlp is not None and any(w.startswith("OTEL_TRACES_EXPORTER=") for w in env) \
            and not any(w.startswith(("OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="))
                        for w in env):
        env.append(f"OTEL_EXPORTER_OTLP_ENDPOINT={otlp}")
    quote = lambda w: shlex.quote(w).replace("{", "{{").replace("}", "}}")
    head = "env " + " ".join(map(quote, env)) + " " if env else ""
    return head + template + "".join(" " + quote(a) for a in args)


def needs_otlp_sink(opts) -> bool:
    return any("{otlp}" in words or "OTEL_TRACES_EXPORTER=" in words for words in opts.variants.values())


def measure(target: str, scenario: Scenario, urls: dict, mocks: list, opts, workdir: str, body_path: str,
            otlp: str | None = None) -> Row:
    """Start one target, warm it up, run wrk, and account its CPU."""
    router_cpus, other_cpus = cpu_plan()
    port = free_port()
    template = opts.router_template
    if target.startswith("router+"):
        template = variant_template(template, opts.variants[target[len("router+"):]], otlp)
    argv = pinned(target_command(target, scenario, urls, port, workdir, template), router_cpus)
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


def plan_runs(router: str, scenarios: list[str], references: list[str], variants=(), rounds: int = 1
              ) -> list[tuple[str, str]]:
    """(scenario, target) pairs in run order; nginx seq1 first so every ratio has its
    base. The router and its ``variants`` (targets "router+<label>") run ``rounds``
    times each, alternating their order."""
    runs: list[tuple[str, str]] = []
    if "nginx" in references or router == "nginx":
        runs.append(("seq1", "nginx"))
    for name in scenarios:
        s = SCENARIOS[name]
        # nginx proxies one model, the bare forward chains models: neither has graph semantics
        if not ((router == "nginx" and name != "seq1") or (router == "bare" and s.bare_chain is None)):
            targets = [router if router in ("bare", "nginx") else "router"]
            if router not in ("bare", "nginx"):
                targets += [f"router+{label}" for label in variants]
            for i in range(max(1, rounds)):
                runs += [(name, t) for t in (targets if i % 2 == 0 else targets[::-1])]
        if "bare" in references and s.bare_chain is not None:
            runs.append((name, "bare"))
    seen: set = set()
    # references once; the router's rows as often as the rounds ask
    return [r for r in runs if r[1].startswith("router") or not (r in seen or seen.add(r))]


def _failure(scenario: str, target: str, reason: str) -> Row:
    # one row fails, the run goes on: the other rows are still worth having
    print(f"bench: {scenario} / {target} FAILED: {reason}", file=sys.stderr, flush=True)
    return Row.failed(scenario, target, failure_summary(reason), SCENARIOS[scenario].goal if target == "router" else "")


def run_all(opts) -> list[Row]:
    """Every planned run, mocks started once per scenario; processes always stopped."""
    rows: list[Row] = []
    runs = plan_runs(opts.router, opts.scenarios, opts.references, list(opts.variants), opts.rounds)
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
                    otlp = None
                    if needs_otlp_sink(opts):
                        sink = start_mocks(SCENARIOS["seq1"], other_cpus, workdir, opts.ready_timeout,
                                           started=mocks)
                        otlp = next(iter(sink.values())).split("/v1/")[0]
                except (OSError, RuntimeError, TimeoutError) as e:
                    rows += [_failure(name, t, f"mock models: {e}") for t in targets]
                    continue
                for target in targets:
                    print(f"bench: {name} / {target} ...", file=sys.stderr, flush=True)
                    try:
                        rows.append(measure(target, scenario, urls, mocks, opts, workdir, body_path, otlp))
                    except (OSError, RuntimeError, TimeoutError, ValueError, subprocess.SubprocessError) as e:
                        rows.append(_failure(name, target, str(e)))
            finally:
                for mock in mocks:
                    mock.stop()
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    p.add_argument("--router", default=DEFAULT_ROUTER,
                   help="command template ({python} {graph} {services} {port}), or 'bare' or 'nginx'")
    p.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                   help="comma separated, from: " + ",".join(SCENARIOS))
    p.add_argument("--references", default="nginx,bare", help="comma separated from nginx,bare; or 'none'")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of measured load per row")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--ready-timeout", type=float, default=20.0)
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=WORDS",
                   help="also run the router with these extra `ige serve` arguments and NAME=value "
                        "environment variables (repeatable; row target router+LABEL)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the router and its variants this many times each, alternating")
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
    opts.variants = {}
    for v in opts.variant:
        label, sep, words = v.partition("=")
        if not sep or not re.fullmatch(r"[\w.-]+", label) or label in opts.variants:
            p.error(f"--variant {v!r}: expected a new LABEL=WORDS (label: letters, digits, . - _)")
        opts.variants[label] = words
    if opts.rounds < 1:
        p.error("--rounds must be at least 1")
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
        print(format_json(rows, info, opts, command))
    elif opts.markdown:
        print(format_markdown(rows, info, opts, command))
    else:
        print(format_text(rows))
    # errors are the point of a row that expects them (fault-503-nopolicy)
    return 1 if any(r.failure or (r.errors and not SCENARIOS[r.scenario].expect_errors) for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
