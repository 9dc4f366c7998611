"""The ``ige`` command (also ``python -m engine``).

Each subcommand is a function ``add_<name>(subparsers)`` registered in ``SUBCOMMANDS``:
it declares its arguments and sets ``handler``, which receives the parsed arguments
and returns the exit status. Bad input never escapes as a traceback: an EngineError
becomes one ``error:`` line on stderr.

Exit status: 0 success; 1 invalid input (a graph, file or option value that cannot be
used); 2 usage (unknown option, missing argument); 3 failed while running (``ige
run`` got a non-2xx answer; ``ige serve`` could not listen, or its workers kept
crashing).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence, TextIO

from . import __version__
from .cli_router import EXIT_FAILED, EXIT_INVALID, EXIT_OK, EXIT_USAGE, add_run, add_serve
from .errors import EngineError, GraphSpecError, GraphValidationError, ServeError
from .graph import Graph, load, load_all
from .spec import Diagnostic
from .spec.traffic import TrafficPolicy, load_policy
from .spec.render import FORMATS


def _read_graphs(file: str, stdin: TextIO) -> list[Graph]:
    """Every graph in ``file`` (``-`` reads standard input)."""
    if file == "-":
        return load_all(stdin.read())
    return load_all(file)


def _spec_error_where(file: str, exc: GraphSpecError) -> str:
    """``file:line:column`` for a syntax error, ``file`` otherwise."""
    where = exc.path or file
    if exc.line is not None:
        where += f":{exc.line}" + (f":{exc.column}" if exc.column is not None else "")
    return where


# -- ige validate ---------------------------------------------------------------------

def add_validate(sub) -> None:
    p = sub.add_parser("validate", help="check InferenceGraph files",
                       description="Check InferenceGraph files: one line per diagnostic "
                                   "(path: severity: message); exit 1 on any error. With "
                                   "--policy, the TrafficPolicy too, alone and against "
                                   "each graph given.")
    p.add_argument("files", nargs="*", metavar="FILE", help="YAML or JSON file, - for stdin")
    p.add_argument("--policy", metavar="FILE", help="a TrafficPolicy file to check")
    p.add_argument("--json", action="store_true", help="print one JSON report")
    p.set_defaults(handler=run_validate)


def _policy_records(file: str) -> tuple[TrafficPolicy | None, list[dict]]:
    """The policy in ``file`` (None when invalid) and its diagnostics as records."""
    try:
        policy = load_policy(file)
    except GraphValidationError as exc:
        return None, [{"file": file, "graph": None, **d.to_dict(), "line": None,
                       "column": None, "prefix": f"{file}: "} for d in exc.diagnostics]
    except GraphSpecError as exc:
        return None, [{"file": file, "graph": None, "severity": "error", "path": None,
                       "line": exc.line, "column": exc.column, "message": exc.message,
                       "prefix": _spec_error_where(file, exc) + ": "}]
    return policy, [{"file": file, "graph": None, **d.to_dict(), "line": None, "column": None,
                     "prefix": f"{file}: "} for d in policy.warnings]


def run_validate(args, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    if not args.files and not args.policy:
        err.write("ige validate: error: give InferenceGraph files, --policy FILE, or both\n")
        return EXIT_USAGE
    records: list[dict] = []
    policy = None
    if args.policy:
        policy, records = _policy_records(args.policy)
    several_files = len(args.files) > 1 or bool(args.policy)
    for file in args.files:
        try:
            graphs = _read_graphs(file, stdin)
        except GraphSpecError as exc:
            records.append({"file": file, "graph": None, "severity": "error", "path": None,
                            "line": exc.line, "column": exc.column, "message": exc.message,
                            "prefix": _spec_error_where(file, exc) + ": "})
            continue
        for graph in graphs:
            label = file if several_files else ""
            if len(graphs) > 1:  # a multi-document file: say which graph
                label = f"{file}[{graph.name}]"
            for d in graph.diagnose():
                records.append({"file": file, "graph": graph.name, **d.to_dict(),
                                "line": None, "column": None,
                                "prefix": f"{label}: " if label else ""})
            if policy is not None:  # the policy's keys against this graph
                for d in policy.diagnose(graph):
                    records.append({"file": args.policy, "graph": graph.name, **d.to_dict(),
                                    "line": None, "column": None,
                                    "prefix": f"{args.policy} (with {label}): "})
    errors = sum(r["severity"] == "error" for r in records)
    warnings = len(records) - errors
    if args.json:
        for r in records:
            del r["prefix"]
        json.dump({"valid": errors == 0, "errors": errors, "warnings": warnings,
                   "diagnostics": records}, out, indent=2, default=str)
        out.write("\n")
    else:
        for r in records:
            body = (f"error: {r['message']}" if r["path"] is None
                    else str(Diagnostic(r["severity"], r["path"], r["message"])))
            out.write(r["prefix"] + body + "\n")
        count = len(args.files) + bool(args.policy)
        err.write(f"{count} file(s): {errors} error(s), {warnings} warning(s)\n")
    return EXIT_INVALID if errors else EXIT_OK


# -- ige explain ----------------------------------------------------------------------

def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="draw an InferenceGraph",
                       description="Show the graph as an indented tree of nodes and steps "
                                   "(or as Mermaid / Graphviz DOT).")
    p.add_argument("file", metavar="FILE", help="YAML or JSON file, - for stdin")
    p.add_argument("--format", choices=sorted(FORMATS), default="text")
    p.add_argument("--plan", action="store_true",
                   help="print the compiled plan (flat node and step tables) instead")
    p.add_argument("--services", help="YAML file mapping serviceName -> URL (with --plan)")
    p.add_argument("--policy", help="TrafficPolicy file (with --plan: each step's effective "
                                    "policy); env IGE_POLICY_FILE")
    p.set_defaults(handler=run_explain)


def run_explain(args, out: TextIO, err: TextIO, stdin: TextIO) -> int:
    try:
        graph = load(stdin.read()) if args.file == "-" else load(args.file)
    except GraphSpecError as exc:
        err.write(f"{_spec_error_where(args.file, exc)}: error: {exc.message}\n")
        return EXIT_INVALID
    if args.plan:
        from .cli_router import load_services, load_traffic, policy_file_from
        from .compiler import Policy
        from pathlib import Path
        services = load_services(Path(args.services)) if args.services else {}
        args.policy = Path(args.policy) if args.policy else None
        traffic = load_traffic(policy_file_from(args))
        out.write(graph.compile(policy=Policy(services=services, traffic=traffic)).explain()
                  + "\n")
        return EXIT_OK
    out.write(FORMATS[args.format](graph))
    found = graph.diagnose()
    for d in found:
        err.write(f"{d}\n")
    return EXIT_INVALID if any(d.severity == "error" for d in found) else EXIT_OK


# -- entry point ----------------------------------------------------------------------

SUBCOMMANDS: list[Callable] = [add_validate, add_explain, add_serve, add_run]

# KServe's controller starts its router as `router --graph-json '<spec>' [flags]`;
# with no subcommand those arguments mean `ige serve`.
_SERVE_FLAGS = ("--graph-json", "--inferencegraph-name", "--enable-tls", "--enable-auth")


def _default_to_serve(argv: list[str]) -> list[str]:
    if argv and argv[0].split("=", 1)[0] in _SERVE_FLAGS:
        return ["serve", *argv]
    return argv


def build_parser() -> argparse.ArgumentParser:
    """The ``ige`` argument parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="ige", description="inference-graph-engine: run KServe InferenceGraphs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None,
         stderr: TextIO | None = None, stdin: TextIO | None = None) -> int:
    """Run ``ige`` with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = build_parser()
    argv = _default_to_serve(list(sys.argv[1:] if argv is None else argv))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed usage or help
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if getattr(args, "handler", None) is None:
        parser.print_usage(err)
        err.write("ige: error: a command is required\n")
        return EXIT_USAGE
    try:
        return args.handler(args, out, err, stdin or sys.stdin)
    except ServeError as exc:
        err.write(f"ige: error: {exc}\n")
        return EXIT_FAILED
    except EngineError as exc:
        err.write(f"ige: error: {exc}\n")
        return EXIT_INVALID
    except BrokenPipeError:  # `ige explain x | head`: the reader left, nothing to report
        return EXIT_OK

