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
from .spec import Diagnostic, Graph, load
from .spec.graph import install_compiler


def _compile_graph(graph, *, policy=None):
    # imported on first compile: loading, validating and drawing a graph need none of
    # the runtime
    from .compiler import compile_graph
    return compile_graph(graph, policy=policy)


install_compiler(_compile_graph)

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
    "UpstreamError",
    "__version__",
    "load",
]
