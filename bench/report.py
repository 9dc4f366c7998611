"""Reports of a load run: the measured rows, the machine they ran on, and the text,
markdown (RESULTS.md section) and JSON renderings."""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess

from .procs import cpu_plan


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


def failure_summary(reason: str) -> str:
    """One table-safe line: the message's first line, and its last when it carries a log."""
    lines = [ln.strip() for ln in reason.strip().splitlines() if ln.strip()] or ["failed"]
    text = lines[0] if len(lines) == 1 else f"{lines[0].split('; log:')[0]} ... {lines[-1]}"
    return text.replace("|", "/")[:200]


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


def format_json(rows: list[Row], info: dict, opts, command: str) -> str:
    """The machine, the command, the settings and every row as JSON (NaN as null)."""
    settings = {k: getattr(opts, k) for k in ("duration", "warmup", "connections", "threads", "mock_procs")}
    return json.dumps({"machine": info, "command": command, "settings": settings,
                       "rows": [{k: (None if isinstance(v, float) and v != v else v)
                                 for k, v in dataclasses.asdict(r).items()} for r in rows],
                       "nginx_seq1_cpu_us_per_req": base_cpu(rows)}, indent=2)
