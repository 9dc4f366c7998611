"""inference-graph-engine: a compiled execution engine for KServe InferenceGraph.

    import engine
    graph = engine.load("graph.yaml", services={"classifier": my_model})
    plan = graph.compile()
    response = await plan.infer({"instances": [[1, 2, 3]]})
"""
from .errors import (
    BadRequestError,
    EngineError,
    GraphSpecError,
    GraphValidationError,
    InternalEngineError,
    UpstreamError,
)
from .policy import Policy
from .graph import Graph, load
from .spec import Diagnostic
from .spec.traffic import StepPolicy, TrafficPolicy, load_policy

__version__ = "0.1.0"

__all__ = [
    "BadRequestError",
    "Diagnostic",
    "EngineError",
    "Graph",
    "GraphSpecError",
    "GraphValidationError",
    "InternalEngineError",
    "Policy",
    "StepPolicy",
    "TrafficPolicy",
    "UpstreamError",
    "__version__",
    "load",
    "load_policy",
]
