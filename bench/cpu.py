"""CPU accounting from /proc: the clock ticks a process tree or a process group spent,
reaped children included, and the CPU per request derived from them."""
from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


def cpu_per_request(cpu_before: float, cpu_after: float, requests: int) -> float:
    """Microseconds of CPU per completed request (inf when nothing completed)."""
    return (cpu_after - cpu_before) * 1e6 / requests if requests else float("inf")


def group_cpu_seconds(children: list) -> float:
    """CPU seconds of several process trees."""
    return sum(tree_cpu_seconds(c.pid) for c in children)
