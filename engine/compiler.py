"""Spec -> Plan: flat node and step tables with resolved backends and compiled
conditions, so that nothing on the per-request path looks up a name or touches a
spec object."""
from __future__ import annotations

import os
from typing import Any

from . import _core
from .bridge import BRIDGE
from .errors import GraphSpecError
# the router table is the plan's (explain() names routers back); Policy is plain
# configuration, importable without the runtime: these names stay importable here
from .plan import ROUTER_NAMES, ROUTER_TYPES, Plan  # noqa: F401
from .policy import DEFAULT_ISTIO_PROBE_URL, DEFAULT_SERVICE_TEMPLATE, Policy  # noqa: F401
from .spec.model import reachable_nodes


def resolve_namespace(graph, policy: Policy) -> str:
    return (policy.namespace or getattr(graph, "namespace", None)
            or os.environ.get("POD_NAMESPACE") or "default")


class _Backends:
    """Builds one backend per distinct target, so steps that name the same service
    share it (and its connection pool)."""

    def __init__(self, graph, policy: Policy):
        self.graph = graph
        self.policy = policy
        self.services = dict(getattr(graph, "services", None) or {})
        self.services.update(policy.services or {})
        self.namespace = resolve_namespace(graph, policy)
        self.by_key: dict[Any, Any] = {}
        self.bridge = BRIDGE    # the OIP message converters, for backends that convert
        self.http = None
        self.grpc = None    # engine.backends.grpc.ChannelPool, once a step needs it

    def for_step(self, step, path: str):
        if step.service_url:
            return self._url(step.service_url, f"{path}.serviceUrl")
        name = step.service_name
        target = self.services.get(name)
        if target is None:
            target = self.policy.service_template.format(name=name, namespace=self.namespace)
        if callable(target):
            key = ("local", id(target))
            if key not in self.by_key:
                self.by_key[key] = _core.LocalBackend(target, name, self.bridge)
            return self.by_key[key]
        if not isinstance(target, str):
            raise GraphSpecError(f"service {name!r} maps to {target!r}: expected a URL or a callable",
                                 path=f"{path}.serviceName")
        return self._url(target, f"{path}.serviceName")

    def with_policy(self, step, sp, node: str, path: str):
        """The step's backend under its StepPolicy ``sp`` (engine.spec.traffic): a
        PolicyBackend over the endpoints' backends."""
        if sp.endpoints:
            targets = [(url, self._url(url, f"{path} (policy endpoint)")) for url in sp.endpoints]
        else:
            backend = self.for_step(step, path)
            targets = [(backend.description, backend)]
        # state (breakers, the concurrency bound) is shared per services entry, else
        # kept per step (docs/policy.md)
        service = sp.service or f"{node}/{step.name or step.index}"
        breaker = sp.circuit_breaker
        endpoints = []
        for label, backend in targets:
            key = ("endpoint", service, label)
            if key not in self.by_key:
                self.by_key[key] = _core.EndpointState(
                    backend, label, breaker.consecutive_failures if breaker else 0,
                    breaker.open_for if breaker else 0.0)
            endpoints.append(self.by_key[key])
        limiter = None
        if sp.concurrency is not None:
            lkey = ("limiter", service)
            if lkey not in self.by_key:
                self.by_key[lkey] = _core.ServiceLimiter(
                    service, sp.concurrency.max_in_flight, sp.concurrency.max_queued)
            limiter = self.by_key[lkey]
        retry = sp.retry
        return _core.PolicyBackend(
            tuple(endpoints), least_outstanding=sp.load_balancer == "least-outstanding",
            timeout=sp.timeout or 0.0, max_retries=retry.max_retries if retry else 0,
            initial_delay=retry.initial_delay_ms / 1000.0 if retry else 0.1,
            max_delay=retry.max_delay_ms / 1000.0 if retry else 300.0, limiter=limiter,
            hedge_after=sp.hedge.after if sp.hedge else 0.0,
            site=(node, step.name or str(step.index)))

    def _url(self, url: str, path: str):
        key = ("url", url)
        if key not in self.by_key:
            if self.policy.backend_factory is not None:
                backend = self.policy.backend_factory(url, path)
            else:
                from .backends import make_url_backend
                backend = make_url_backend(url, path, self)
            self.by_key[key] = backend
        return self.by_key[key]


def _step_data(policy: Policy, node_name: str, step, router: int):
    """(use_response, data path or None, data as written) of a step: KServe's
    ``$response`` (never on a Sequence's first step), or a data path (extension:
    ``$response.<path>``, ``$request.<path>``: the TrafficPolicy's ``data``, else the
    graph's when ``policy.data_paths`` asks; without it a path in the graph is read as
    KServe's router reads it, the request). Only a Sequence reads ``data``, as in
    KServe's router."""
    from . import gjson
    from .spec.rules import split_data
    from .spec.traffic import step_data

    if router != _core.RouterType.ROUTER_SEQUENCE:
        return False, None, ""
    data = step_data(policy.traffic, node_name, step)
    if data is None:
        data = step.data
        if not policy.data_paths and split_data(data) is not None:
            return False, None, ""          # KServe: any value but "$response" is the request
    split = split_data(data)
    if split is None:
        return data == "$response" and step.index > 0, None, ""
    source, path = split
    # a path on the first step selects from the request, as $response means it there
    return source == "$response" and step.index > 0, gjson.compile(path), data


def _merges_outputs(policy: Policy, node_name: str, node, router: int) -> bool:
    """Whether a Sequence answers every step's answer (``outputs: all``; the
    TrafficPolicy's ``spec.nodes`` wins over the graph's)."""
    from .spec.rules import step_keys_repeated
    from .spec.traffic import node_outputs

    outputs = node_outputs(policy.traffic, node_name) or node.outputs
    if outputs != "all" or router != _core.RouterType.ROUTER_SEQUENCE:
        return False
    for first, later, key in step_keys_repeated(node.steps):
        raise GraphSpecError(f'outputs: all: steps {first} and {later} would both answer under '
                             f'the key "{key}"', path=f"spec.nodes.{node_name}.steps[{later}]")
    return True


# Off only to compare the grouped Switch evaluation with one Path per condition (tests).
SWITCH_TABLES = True


def _switch_groups(steps) -> tuple | None:
    """A Switch's maximal runs of two or more consecutive steps whose conditions are
    equality queries on the same path and key (gjson.switch_key), each as
    (first step index, SwitchTable): run_switch decides such a run in one walk."""
    from . import gjson

    if not SWITCH_TABLES:
        return None
    groups: list = []
    run: list = []
    run_key: tuple | None = None

    def close():
        if len(run) >= 2:
            groups.append((run[0].index, gjson.SwitchTable([s.condition for s in run])))

    for step in steps:
        found = gjson.switch_key(step.condition_text) if step.condition is not None else None
        key = found[:2] if found is not None else None     # the path and key; the literal differs
        if key is None or key != run_key:
            close()
            run = []
        run_key = key
        if key is not None:
            run.append(step)
    close()
    return tuple(groups) or None


def compile_graph(graph, *, policy: Policy | None = None, reuse=None):
    """Compile a validated Graph into a Plan (see engine.plan.Plan). ``reuse``: a
    Plan whose backend connection pools (HTTP client, gRPC channels) the new plan
    shares, so that a reload keeps the warm connections to models both graphs call."""
    from . import gjson
    from .spec.traffic import step_policy

    policy = policy or Policy()
    graph.validate()
    names = reachable_nodes(graph.nodes)
    index = {name: i for i, name in enumerate(names)}
    backends = _Backends(graph, policy)
    if reuse is not None:
        backends.http = reuse.http_client
        backends.grpc = reuse.grpc_pool
    nodes = []
    for name in names:
        node = graph.nodes[name]
        router = ROUTER_TYPES[node.router_type or "Sequence"]
        merge = _merges_outputs(policy, name, node, router)
        steps, weight_end = [], 0
        for i, step in enumerate(node.steps):
            path = f"spec.nodes.{name}.steps[{i}]"
            weight_end += step.weight or 0
            condition = gjson.compile(step.condition) if step.condition else None
            use_response, data_path, data_text = _step_data(policy, name, step, router)
            sp = None
            if step.node_name:
                target, node_index, backend = _core.StepTarget.TARGET_NODE, index[step.node_name], None
            else:
                target, node_index = _core.StepTarget.TARGET_BACKEND, -1
                sp = step_policy(policy.traffic, graph, name, step)
                if sp.is_empty():
                    sp, backend = None, backends.for_step(step, path)
                else:
                    backend = backends.with_policy(step, sp, name, path)
            steps.append(_core.PlanStep(
                i, step.name or "", target, node_index, backend, condition, step.condition or "",
                use_response, bool(step.map_predictions_to_instances), step.dependency == "Hard",
                weight_end, sp, data_path, data_text,
            ))
        groups = _switch_groups(steps) if router == _core.RouterType.ROUTER_SWITCH else None
        nodes.append(_core.PlanNode(index[name], name, router, tuple(steps), merge, groups))
    timeouts = graph.effective_router_timeouts()
    spec = policy.propagate_headers
    if spec is None:
        spec = os.environ.get("PROPAGATE_HEADERS")
    patterns, problems = _core.compile_header_patterns(spec) if spec is not None else ([], [])
    try:
        buckets = _core.metrics_buckets(policy.metrics_buckets)
    except ValueError as e:
        raise GraphSpecError(str(e)) from None
    compiled = _core.CompiledPlan(
        tuple(nodes), float(timeouts.service_client or 0), graph.name or "", backends.bridge,
        buckets, bool(policy.metrics))
    plan = Plan(graph, compiled, _core.HeaderPropagation(patterns), backends.http,
                timeouts=timeouts, warnings=problems)
    plan.grpc_pool = backends.grpc
    return plan
