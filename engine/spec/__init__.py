"""The KServe InferenceGraph model: load YAML/JSON, serialise back, validate.

    graph = engine.load("graph.yaml")        # or YAML/JSON text, a dict, a bare spec
    warnings = graph.validate()              # raises GraphValidationError on errors
    graph.nodes["root"].steps[0].service_name

See docs/spec.md (the model) and docs/validation.md (the rules).
"""
from .graph import Graph, load, load_all
from .model import (
    API_VERSION,
    DEPENDENCIES,
    KIND,
    ROOT_NODE,
    ROUTER_TYPES,
    SCALE_METRICS,
    GraphSpec,
    GraphStatus,
    Metadata,
    Node,
    RetryConfig,
    RouterTimeouts,
    Step,
    reachable_nodes,
)
from .rules import Diagnostic
from .traffic import StepPolicy, TrafficPolicy, load_policy, step_policy

__all__ = [
    "API_VERSION", "DEPENDENCIES", "KIND", "ROOT_NODE", "ROUTER_TYPES", "SCALE_METRICS",
    "Diagnostic", "Graph", "GraphSpec", "GraphStatus", "Metadata", "Node", "RetryConfig", "RouterTimeouts",
    "Step", "StepPolicy", "TrafficPolicy", "load", "load_all", "load_policy", "reachable_nodes",
    "step_policy",
]
