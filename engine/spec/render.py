"""Pictures of a graph for ``ige explain``: an indented text tree, Mermaid, Graphviz DOT.

The text tree starts at ``root`` and expands each ``nodeName`` step in place, so the
reader sees the request's path; a node reached twice is expanded twice, a cycle is cut
where it closes, and nodes that root never reaches are listed after the tree.
"""
from __future__ import annotations

import json

from .graph import Graph
from .model import ROOT_NODE, Step, reachable_nodes


def step_summary(step: Step) -> str:
    """One line for a step: name, target and the fields that change its behaviour."""
    kind = step.target_kind
    target = f"{kind} {step.target}" if kind else "(no target)"
    if kind == "service" and step.service_url:  # resolved by KServe's controller: called
        target += f" at {step.service_url}"
    parts = [f"[{step.index}]"]
    if step.name:
        parts.append(f"{step.name}:")
    parts.append(target)
    if step.condition:
        parts.append(f"if {step.condition}")
    if step.weight is not None:
        parts.append(f"weight {step.weight}")
    if step.data is not None:
        parts.append(f"data {step.data}")
    if step.map_predictions_to_instances:
        parts.append("predictions->instances")
    if step.dependency is not None:
        parts.append(str(step.dependency))
    return "  ".join(parts)


def _node_title(graph: Graph, name: str) -> str:
    node = graph.nodes[name]
    return f"{name} ({node.router_type or 'no routerType'})"


def text_tree(graph: Graph) -> str:
    """The graph as an indented ASCII tree, starting at root."""
    title = f"InferenceGraph {graph.name}" if graph.name else "InferenceGraph (bare spec)"
    if graph.namespace:
        title += f" in namespace {graph.namespace}"
    lines = [title]

    def node_lines(name: str, prefix: str, path: tuple[str, ...]) -> None:
        steps = graph.nodes[name].steps
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            lines.append(prefix + ("`-- " if last else "|-- ") + step_summary(step))
            child = prefix + ("    " if last else "|   ")
            target = step.node_name
            if isinstance(target, str) and target in graph.nodes:
                if target in path:
                    lines.append(child + f"`-- {target} (cycle: back to {target})")
                else:
                    lines.append(child + "`-- " + _node_title(graph, target))
                    node_lines(target, child + "    ", path + (target,))

    reached = set(reachable_nodes(graph.nodes))
    for name in graph.nodes:
        if name == ROOT_NODE or name not in reached:
            note = "" if name == ROOT_NODE else "  [unreachable from root]"
            lines.append(_node_title(graph, name) + note)
            node_lines(name, "", (name,))
    if not graph.nodes:
        lines.append("(no nodes)")
    lines.extend(_deployment_lines(graph))
    return "\n".join(lines) + "\n"


# Spec fields that shape the router's pod (KServe's controller reads them); the router
# process itself never looks at them.
_SCHEDULING = (("resources", "resources"), ("affinity", "affinity"),
               ("tolerations", "tolerations"), ("nodeSelector", "node_selector"),
               ("nodeName", "node_name"), ("serviceAccountName", "service_account_name"),
               ("timeout", "timeout"), ("minReplicas", "min_replicas"),
               ("maxReplicas", "max_replicas"), ("scaleTarget", "scale_target"),
               ("scaleMetric", "scale_metric"))


def _deployment_lines(graph: Graph) -> list[str]:
    out = []
    t = graph.spec.router_timeouts
    if t is not None:
        set_ = [f"{k}={getattr(t, a)}s" for k, a in (
            ("serverRead", "server_read"), ("serverWrite", "server_write"),
            ("serverIdle", "server_idle"), ("serviceClient", "service_client"))
            if getattr(t, a, None) is not None]
        if set_:
            out.append("routerTimeouts: " + ", ".join(set_))
    ignored = [k for k, a in _SCHEDULING if getattr(graph.spec, a) not in (None, {}, [], "")]
    if ignored:
        out.append("for KServe's controller, ignored by the router: " + ", ".join(ignored))
    return out


def _label(text: str) -> str:
    return json.dumps(text)  # a double-quoted string with escapes, valid in DOT


def _edge_label(graph: Graph, node_name: str, step: Step) -> str:
    router = graph.nodes[node_name].router_type
    bits = [step.label if router != "Sequence" else f"{step.index + 1}. {step.label}"]
    if step.condition:
        bits.append(f"if {step.condition}")
    if step.weight is not None:
        bits.append(f"{step.weight}%")
    if step.dependency == "Hard":
        bits.append("Hard")
    return " ".join(str(b) for b in bits)


def _ids(graph: Graph) -> dict[str, str]:
    return {name: f"n{i}" for i, name in enumerate(graph.nodes)}


def _leaves(graph: Graph):
    """(node name, step, leaf id, leaf label) for each step calling a service or URL."""
    for i, (name, node) in enumerate(graph.nodes.items()):
        for step in node.steps:
            if not (isinstance(step.node_name, str) and step.node_name in graph.nodes):
                yield name, step, f"s{i}_{step.index}", str(step.target or "(no target)")


def _edges(graph: Graph, ids: dict):
    """(source id, destination id, edge label) for every step: to its node, or to the
    leaf _leaves() names for it."""
    for i, (name, node) in enumerate(graph.nodes.items()):
        for step in node.steps:
            if isinstance(step.node_name, str) and step.node_name in graph.nodes:
                dest = ids[step.node_name]
            else:
                dest = f"s{i}_{step.index}"
            yield ids[name], dest, _edge_label(graph, name, step)


def mermaid(graph: Graph) -> str:
    """A Mermaid flowchart: router nodes as boxes, services as rounded boxes."""
    ids = _ids(graph)
    out = ["flowchart TD"]

    def text(s: str) -> str:
        return s.replace('"', "#quot;")

    for name, node_id in ids.items():
        out.append(f'    {node_id}["{text(_node_title(graph, name))}"]')
    for name, step, leaf_id, label in _leaves(graph):
        out.append(f'    {leaf_id}("{text(label)}")')
    for src, dest, label in _edges(graph, ids):
        out.append(f'    {src} -->|"{text(label)}"| {dest}')
    return "\n".join(out) + "\n"


def dot(graph: Graph) -> str:
    """A Graphviz digraph: router nodes as boxes, services as ellipses."""
    ids = _ids(graph)
    out = [f"digraph {_label(graph.name or 'InferenceGraph')} {{", "    rankdir=TB;"]
    for name, node_id in ids.items():
        out.append(f"    {node_id} [shape=box, label={_label(_node_title(graph, name))}];")
    for name, step, leaf_id, label in _leaves(graph):
        out.append(f"    {leaf_id} [shape=ellipse, label={_label(label)}];")
    for src, dest, label in _edges(graph, ids):
        out.append(f"    {src} -> {dest} [label={_label(label)}];")
    out.append("}")
    return "\n".join(out) + "\n"


FORMATS = {"text": text_tree, "mermaid": mermaid, "dot": dot}
