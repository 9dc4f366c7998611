"""``engine.Graph``: the spec layer's Graph, which compiles.

The spec layer (engine/spec/) knows the resource and nothing of the runtime; this
class adds the one step from it to the runtime, ``compile``, and ``load`` and
``load_all`` here give graphs of this class.
"""
from __future__ import annotations

from typing import Any, Mapping

from . import spec
from .policy import Policy
from .spec.model import ServiceTarget
from .spec.traffic import TrafficPolicy, load_policy


class Graph(spec.Graph):
    __doc__ = spec.Graph.__doc__

    def compile(self, *, policy: Policy | TrafficPolicy | Any = None, reuse: Any = None):
        """Compile into an executable Plan (see ``engine.compiler``).

        ``policy`` is an ``engine.Policy``, or a TrafficPolicy (or what
        ``engine.load_policy`` takes: a path, YAML or JSON text, a dict), which runs
        with the default Policy; an invalid one raises GraphValidationError.
        ``reuse``: a running Plan whose backend connection pools the new plan shares
        (a reload: the old plan's requests finish on its own tables)."""
        # imported on first compile: loading, validating and drawing a graph need none
        # of the runtime
        from .compiler import compile_graph
        if reuse is None:
            return compile_graph(self, policy=as_policy(policy))
        return compile_graph(self, policy=as_policy(policy), reuse=reuse)


def as_policy(policy: Policy | TrafficPolicy | Any) -> Policy | None:
    """``policy`` as an engine.Policy: a Policy or None as it is, anything else loaded
    as a TrafficPolicy and wrapped into the default Policy."""
    if policy is None or isinstance(policy, Policy):
        return policy
    return Policy(traffic=load_policy(policy))


def load_all(source: Any, *, services=None) -> list[Graph]:
    """Every InferenceGraph in ``source`` (see engine.spec.load_all)."""
    return spec.load_all(source, services=services, graph_class=Graph)  # type: ignore[return-value]


def load(source: Any, *, services: Mapping[str, ServiceTarget] | None = None) -> Graph:
    """Load one InferenceGraph (see engine.spec.load), ready to compile."""
    return spec.load(source, services=services, graph_class=Graph)  # type: ignore[return-value]
