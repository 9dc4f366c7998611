"""Validation rules: KServe's admission webhook, the CRD schema, and what both miss.

KServe's webhook (pkg/apis/serving/v1alpha1/inference_graph_validation.go) stops at the
first problem; we report every one, in document order, with KServe's own message texts
so that users can search for them. The rules KServe lacks catch what would otherwise
fail only at request time (a ``nodeName`` that names nothing, a cycle, a node without
steps) or is silently ignored (unreachable nodes, Switch steps without a condition,
``data`` values the router does not know, fields Kubernetes prunes).
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import schema
from .model import API_VERSION, KIND, ROOT_NODE, reachable_nodes
from .urls import url_problem

if TYPE_CHECKING:
    from .graph import Graph

# KServe's message texts, verbatim (Go format verbs turned into str.format fields).
GRAPH_NAME_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
# fullmatch, not "^...$": Python's "$" also matches before a trailing newline, Go's does not
GRAPH_NAME_RE = re.compile(GRAPH_NAME_FMT)
INVALID_GRAPH_NAME = (
    'The InferenceGraph "{0}" is invalid: a InferenceGraph name must consist of lower case '
    "alphanumeric characters or '-', and must start with alphabetical character. "
    '(e.g. "my-name" or "abc-123", regex used for validation is \'{1}\')')
ROOT_NODE_NOT_FOUND = ("root node not found, InferenceGraph needs a node with name 'root' "
                       "as the root node of the graph")
WEIGHT_NOT_PROVIDED = "InferenceGraph[{0}] Node[{1}] Route[{2}] missing the 'Weight'"
INVALID_WEIGHT = ("InferenceGraph[{0}] Node[{1}] splitter node: the sum of traffic weights "
                  "for all routing targets should be 100")
DUPLICATE_STEP_NAME = 'Node "{0}" of InferenceGraph "{1}" contains more than one step with name "{2}"'
TARGET_NOT_PROVIDED = ('Step {0} ("{1}") in node "{2}" of InferenceGraph "{3}" '
                       "does not specify an inference target")
INVALID_TARGET = ('Step {0} ("{1}") in node "{2}" of InferenceGraph "{3}" '
                  "specifies more than one of nodeName, serviceName, serviceUrl")

KNOWN_DATA = ("$request", "$response")
OUTPUTS_PRUNED = ('outputs is the engine\'s extension, not in KServe\'s CRD: the Kubernetes API '
                  'server prunes it; in Kubernetes set it in the TrafficPolicy '
                  '(spec.nodes.{0}.outputs)')


def split_data(value) -> tuple[str, str] | None:
    """(``"$request"`` or ``"$response"``, GJSON path) of a data path, the engine's
    extension ``$response.<path>`` / ``$request.<path>``; None for anything else
    (plain ``$request``/``$response``, or a value KServe's router reads as ``$request``)."""
    if isinstance(value, str):
        for source in KNOWN_DATA:
            if value.startswith(source + "."):
                return source, value[len(source) + 1:]
    return None


def data_path_problems(value: str) -> list[str]:
    """What is wrong with a data path's GJSON syntax (empty when nothing is): unlike a
    condition's, a data path's problems are errors, since the path says what a step
    is sent."""
    split = split_data(value)
    if split is None:
        return []
    try:
        gjson = importlib.import_module("..gjson", __package__)
    except ImportError:
        return []  # the GJSON engine is not built in: nothing can be compiled either
    return [f"data {value!r}: GJSON path {split[1]!r} at position {p.position}: {p.message}"
            for p in gjson.compile(split[1]).diagnose()]


def step_keys_repeated(steps) -> list[tuple[int, int, str]]:
    """(earlier index, later index, key) for each step whose answer key (its name, else
    its index) an earlier step of ``steps`` already has: ``outputs: all`` needs one
    key per step."""
    seen: dict[str, int] = {}
    out = []
    for step in steps:
        key = step.label
        if key in seen:
            out.append((seen[key], step.index, key))
        else:
            seen[key] = step.index
    return out


@dataclass(frozen=True)
class Diagnostic:
    """One finding of validation: ``severity`` is ``"error"`` or ``"warning"``."""

    severity: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.severity}: {self.message}"

    def to_dict(self) -> dict:
        """A JSON-ready dict (``severity``, ``path``, ``message``)."""
        return {"severity": self.severity, "path": self.path, "message": self.message}


class _Collector(list):
    def __call__(self, severity: str, path: str, message: str) -> None:
        self.append(Diagnostic(severity, path, message))


def _step_path(node: str, index: int, field: str | None = None) -> str:
    path = f"spec.nodes.{node}.steps[{index}]"
    return f"{path}.{field}" if field else path


def _s(value) -> str:
    """Go's ``%s`` of an unset string field is the empty string."""
    return "" if value is None else str(value)


def diagnose(graph: "Graph") -> list[Diagnostic]:
    """Every diagnostic for ``graph``, errors and warnings, in document order."""
    out = _Collector()
    doc = graph.to_dict()
    if graph.bare:
        schema.walk(doc, schema.SPEC, "spec", out)
    else:
        schema.walk(doc, schema.DOCUMENT, "", out)
        _check_header(graph, out)
    _check_root(graph, out)
    for node in graph.nodes.values():
        _check_node(graph, node, out)
    _check_references(graph, out)
    _check_conditions(graph, out)
    return list(out)


def _check_header(graph: "Graph", out: _Collector) -> None:
    if graph.api_version is None:
        out("error", "apiVersion", "Required value")
    elif graph.api_version != API_VERSION:
        out("error", "apiVersion", f'Invalid value: "{graph.api_version}": must be "{API_VERSION}"')
    if graph.kind is None:
        out("error", "kind", "Required value")
    elif graph.kind != KIND:
        out("error", "kind", f'Invalid value: "{graph.kind}": must be "{KIND}"')
    name = graph.metadata.name
    if name is None:
        if not graph.metadata.extra.get("generateName"):
            out("error", "metadata.name", "Required value: name or generateName is required")
    elif isinstance(name, str) and not GRAPH_NAME_RE.fullmatch(name):
        out("error", "metadata.name", INVALID_GRAPH_NAME.format(name, GRAPH_NAME_FMT))


def _node_names(graph: "Graph") -> set[str]:
    raw = graph.spec.extra.get("nodes")
    if isinstance(raw, dict):  # some node was malformed: the raw map still names it
        return {str(k) for k in raw}
    return set(graph.nodes)


def _check_root(graph: "Graph", out: _Collector) -> None:
    if not graph.has_spec or ("nodes" in graph.spec.extra
                              and not isinstance(graph.spec.extra["nodes"], dict)):
        return  # the schema already reported spec or spec.nodes
    if ROOT_NODE not in _node_names(graph):
        out("error", "spec.nodes", ROOT_NODE_NOT_FOUND)


def _check_node(graph: "Graph", node, out: _Collector) -> None:
    gname = _s(graph.name)
    if not node.steps and "steps" not in node.extra:
        out("error", f"spec.nodes.{node.name}.steps",
            "Required value: a node needs at least one step")
    seen: set = set()
    for step in node.steps:
        if isinstance(step.name, str) and step.name:
            if step.name in seen:
                out("error", _step_path(node.name, step.index, "name"),
                    DUPLICATE_STEP_NAME.format(node.name, gname, step.name))
            seen.add(step.name)
        _check_targets(graph, node, step, gname, out)
        if node.router_type == "Switch" and not step.condition:
            out("warning", _step_path(node.name, step.index, "condition"),
                "Switch step has no condition, so it never matches "
                "(an empty GJSON path selects nothing)")
        if node.router_type == "Sequence" and step.index == 0 and step.condition:
            out("warning", _step_path(node.name, step.index, "condition"),
                "a condition on a Sequence's first step is checked against the previous "
                "response, and there is none: KServe's router answers 500 "
                "\"invalid response\" for every request")
        if isinstance(step.service_url, str) and step.service_url:
            problem = url_problem(step.service_url)
            if problem is not None:
                out("warning", _step_path(node.name, step.index, "serviceUrl"),
                    f"every call of this step will fail with 500: {problem}")
        if step.node_name and ("retry" in step.to_dict()):
            out("warning", _step_path(node.name, step.index, "retry"),
                "retry applies only to service calls; a step that runs a node is not retried "
                "(its node's steps take their own retry or spec.defaultRetry)")
        if step.data is not None and step.data not in KNOWN_DATA:
            _check_data(node, step, out)
    if node.router_type == "Splitter":
        _check_weights(gname, node, out)
    if node.outputs is not None:
        _check_outputs(graph, node, out)


def _check_data(node, step, out: _Collector) -> None:
    path = _step_path(node.name, step.index, "data")
    split = split_data(step.data)
    if split is None:
        out("warning", path, f'data "{step.data}" is neither "$request" nor "$response"; '
                             'KServe\'s router treats it as "$request"')
        return
    problems = data_path_problems(step.data)
    for problem in problems:
        out("error", path, problem)
    if problems:
        return
    if node.router_type != "Sequence":
        out("warning", path, "data applies to Sequence steps only: the steps of "
                             f"{node.router_type or 'this'} nodes are sent the request as it is")
        return
    what = "the request" if split[0] == "$request" else "the previous response"
    out("warning", path, f'data "{step.data}": KServe\'s router ignores the path and sends the '
                         "original request, and so does the engine unless asked (--data-paths, "
                         f"IGE_DATA_PATHS=1, or the TrafficPolicy's data), which sends part of {what}")
    if split[0] == "$response" and step.index == 0:
        out("warning", path, "a Sequence's first step has no previous response: the path "
                             'selects from the request, as "$response" means the request there')


def _check_outputs(graph: "Graph", node, out: _Collector) -> None:
    path = f"spec.nodes.{node.name}.outputs"
    if not graph.bare:
        out("warning", path, OUTPUTS_PRUNED.format(node.name))
    if node.router_type != "Sequence":
        out("warning", path, "outputs applies to Sequence nodes only: ignored here")
    elif node.outputs == "all":
        for first, later, key in step_keys_repeated(node.steps):
            out("error", _step_path(node.name, later),
                f'outputs: all: steps {first} and {later} would both answer under the key "{key}"')


def _check_targets(graph: "Graph", node, step, gname: str, out: _Collector) -> None:
    """One target per step, as the webhook has it for what users write. A bare spec is
    what KServe's controller hands its router: by then every ``serviceName`` step also
    carries the ``serviceUrl`` resolved from the InferenceService, and the router calls
    that URL; a ``nodeName`` beside a service is never produced by the controller, and
    the router would follow the node."""
    targets = sum(1 for t in (step.node_name, step.service_name, step.service_url) if t)
    if targets == 0:
        out("error", _step_path(node.name, step.index),
            TARGET_NOT_PROVIDED.format(step.index, _s(step.name), node.name, gname))
    elif targets > 1 and not graph.bare:
        out("error", _step_path(node.name, step.index),
            INVALID_TARGET.format(step.index, _s(step.name), node.name, gname))
    elif targets > 1 and step.node_name:
        out("warning", _step_path(node.name, step.index, "nodeName"),
            "a step with nodeName and a service: KServe's router follows the node and "
            "never calls the service")


def _check_weights(gname: str, node, out: _Collector) -> None:
    total, complete = 0, True
    for step in node.steps:
        if step.weight is None:
            # KServe names the route by its serviceName, even when the step has none
            out("error", _step_path(node.name, step.index, "weight"),
                WEIGHT_NOT_PROVIDED.format(gname, node.name, _s(step.service_name)))
            complete = False
        elif isinstance(step.weight, int) and not isinstance(step.weight, bool):
            total += step.weight
        else:
            complete = False  # wrong type: the schema reported it
    if complete and total != 100:
        out("error", f"spec.nodes.{node.name}.steps", INVALID_WEIGHT.format(gname, node.name))


def _edges(graph: "Graph", name: str):
    """(step, target node) for each step of ``name`` that calls a defined node."""
    for step in graph.nodes[name].steps:
        if isinstance(step.node_name, str) and step.node_name in graph.nodes:
            yield step, step.node_name


def _check_references(graph: "Graph", out: _Collector) -> None:
    known = _node_names(graph)
    for node in graph.nodes.values():
        for step in node.steps:
            if isinstance(step.node_name, str) and step.node_name and step.node_name not in known:
                out("error", _step_path(node.name, step.index, "nodeName"),
                    f'node "{step.node_name}" is not defined in spec.nodes; '
                    "KServe's router would fail every request that reaches this step")
    _check_cycles(graph, out)
    if ROOT_NODE in graph.nodes:
        reached = set(reachable_nodes(graph.nodes))
        for name in graph.nodes:
            if name not in reached:
                out("warning", f"spec.nodes.{name}",
                    f'node "{name}" is not reachable from root and never runs')


def _check_cycles(graph: "Graph", out: _Collector) -> None:
    # Depth-first search with an explicit stack; every back edge closes one cycle.
    done: set[str] = set()
    order = sorted(graph.nodes, key=lambda n: n != ROOT_NODE)  # stable: root first
    for start in order:
        if start in done:
            continue
        path = [start]
        on_path = {start}
        iters = [iter(list(_edges(graph, start)))]
        while iters:
            try:
                step, target = next(iters[-1])
            except StopIteration:
                iters.pop()
                done.add(path[-1])
                on_path.discard(path.pop())
                continue
            if target in on_path:
                cycle = path[path.index(target):] + [target]
                out("error", _step_path(path[-1], step.index, "nodeName"),
                    "cycle: " + " -> ".join(cycle))
            elif target not in done:
                path.append(target)
                on_path.add(target)
                iters.append(iter(list(_edges(graph, target))))


def _check_conditions(graph: "Graph", out: _Collector) -> None:
    try:
        gjson = importlib.import_module("..gjson", __package__)
    except ImportError:
        return  # the GJSON engine is not built in: conditions are checked at run time
    for node in graph.nodes.values():
        for step in node.steps:
            if not isinstance(step.condition, str) or not step.condition:
                continue
            path = _step_path(node.name, step.index, "condition")
            try:
                problems = gjson.compile(step.condition).diagnose()
            except Exception as exc:  # a compiler that rejects outright still yields a finding
                out("warning", path, f"condition {step.condition!r}: {exc}")
                continue
            for problem in problems:
                out("warning", path, f"condition {step.condition!r} at position "
                                     f"{problem.position}: {problem.message}")
