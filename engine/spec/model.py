"""The typed InferenceGraph model: dataclasses mirroring the CRD, built from plain dicts.

Every attribute is ``None`` when the document did not set it, so ``to_dict()``
gives back exactly the fields that were set, under their CRD JSON names. A value
of the wrong scalar type is kept as written (validation reports it); a container
holding something malformed (``nodes`` that is a list, a step that is a string)
is kept raw in the owner's ``extra`` so that serialising and validating still see
what the user wrote, while the typed attributes hold only the well-formed parts.
Unknown fields are kept in ``extra`` too: Kubernetes would prune them, we warn.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Union

API_VERSION = "serving.kserve.io/v1alpha1"
KIND = "InferenceGraph"
ROOT_NODE = "root"
ROUTER_TYPES = ("Sequence", "Splitter", "Ensemble", "Switch")
DEPENDENCIES = ("Soft", "Hard")
# the engine's extension field Node.outputs: "last" (KServe's Sequence: the last
# answer) or "all" (every step's answer, keyed as an Ensemble's)
OUTPUTS = ("last", "all")
SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")

# KServe's router defaults (pkg/constants: RouterTimeoutsServerRead, ...Write, ...Idle).
DEFAULT_SERVER_READ = 60
DEFAULT_SERVER_WRITE = 60
DEFAULT_SERVER_IDLE = 180

ServiceTarget = Union[str, Callable[..., Any]]


def _take(doc: dict, fields: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``doc`` into known attributes (JSON name -> attribute) and extra keys.

    A null value counts as unset: Kubernetes drops nulls of non-nullable fields.
    """
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in doc.items():
        attr = fields.get(key)
        if attr is None:
            extra[key] = value
        elif value is not None:
            known[attr] = value
    return known, extra


def _put(out: dict, fields: dict[str, str], obj: Any) -> dict:
    for key, attr in fields.items():
        value = getattr(obj, attr)
        if value is not None:
            out[key] = value.to_dict() if isinstance(value, RetryConfig) else value
    out.update(obj.extra)
    return out


def _take_retry(known: dict, extra: dict, attr: str, key: str) -> None:
    """Type ``known[attr]`` as a RetryConfig; a value that is no mapping goes to
    ``extra`` under ``key``, kept as written for validation."""
    value = known.pop(attr, None)
    if isinstance(value, dict):
        known[attr] = RetryConfig.from_dict(value)
    elif value is not None:
        extra[key] = value


# KServe PR #5386's RetryConfig defaults (an omitted field takes them)
DEFAULT_MAX_RETRIES = 3
DEFAULT_INITIAL_DELAY_MS = 100
DEFAULT_MAX_DELAY_MS = 300000
MAX_RETRIES_LIMIT = 10


@dataclass
class RetryConfig:
    """``spec.defaultRetry`` and ``steps[].retry`` (KServe PR #5386): integers, ``None``
    when unset; ``effective()`` fills KServe's defaults."""

    max_retries: int | None = None
    initial_delay_ms: int | None = None
    max_delay_ms: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    FIELDS = {"maxRetries": "max_retries", "initialDelayMs": "initial_delay_ms",
              "maxDelayMs": "max_delay_ms"}

    @classmethod
    def from_dict(cls, doc: dict) -> "RetryConfig":
        known, extra = _take(doc, cls.FIELDS)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        return _put({}, self.FIELDS, self)

    def effective(self) -> tuple[int, int, int]:
        """(maxRetries, initialDelayMs, maxDelayMs) with KServe's defaults for the unset ones."""
        return (DEFAULT_MAX_RETRIES if self.max_retries is None else self.max_retries,
                DEFAULT_INITIAL_DELAY_MS if self.initial_delay_ms is None else self.initial_delay_ms,
                DEFAULT_MAX_DELAY_MS if self.max_delay_ms is None else self.max_delay_ms)


@dataclass
class RouterTimeouts:
    """``spec.routerTimeouts``: seconds, ``None`` when unset."""

    server_read: int | None = None
    server_write: int | None = None
    server_idle: int | None = None
    service_client: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    FIELDS = {"serverRead": "server_read", "serverWrite": "server_write",
              "serverIdle": "server_idle", "serviceClient": "service_client"}

    @classmethod
    def from_dict(cls, doc: dict) -> "RouterTimeouts":
        known, extra = _take(doc, cls.FIELDS)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        return _put({}, self.FIELDS, self)

    def effective(self) -> "RouterTimeouts":
        """The timeouts KServe's router runs with: 60/60/180 s, service client unset = none."""
        return RouterTimeouts(
            server_read=DEFAULT_SERVER_READ if self.server_read is None else self.server_read,
            server_write=DEFAULT_SERVER_WRITE if self.server_write is None else self.server_write,
            server_idle=DEFAULT_SERVER_IDLE if self.server_idle is None else self.server_idle,
            service_client=self.service_client,
        )


@dataclass
class Step:
    """One step of a node; exactly one of ``node_name``/``service_name``/``service_url``."""

    name: str | None = None
    node_name: str | None = None
    service_name: str | None = None
    service_url: str | None = None
    data: str | None = None
    map_predictions_to_instances: bool | None = None
    weight: int | None = None
    condition: str | None = None
    dependency: str | None = None
    retry: RetryConfig | None = None
    index: int = 0
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    FIELDS = {"name": "name", "nodeName": "node_name", "serviceName": "service_name",
              "serviceUrl": "service_url", "data": "data",
              "mapPredictionsToInstances": "map_predictions_to_instances",
              "weight": "weight", "condition": "condition", "dependency": "dependency",
              "retry": "retry"}

    @classmethod
    def from_dict(cls, doc: dict, index: int) -> "Step":
        known, extra = _take(doc, cls.FIELDS)
        _take_retry(known, extra, "retry", "retry")
        return cls(**known, index=index, extra=extra)

    def to_dict(self) -> dict:
        return _put({}, self.FIELDS, self)

    @property
    def target_kind(self) -> str | None:
        """``"node"``, ``"service"`` or ``"url"``: the first target set, as KServe's router checks them."""
        if self.node_name:
            return "node"
        if self.service_name:
            return "service"
        if self.service_url:
            return "url"
        return None

    @property
    def target(self) -> str | None:
        """The node name, service name or URL this step calls."""
        return self.node_name or self.service_name or self.service_url or None

    @property
    def effective_dependency(self) -> str:
        """``dependency`` with KServe's semantics: anything but ``Hard`` behaves as ``Soft``."""
        return "Hard" if self.dependency == "Hard" else "Soft"

    @property
    def label(self) -> str:
        """The key KServe's Ensemble uses for this step's answer: its name, else its index."""
        return self.name if isinstance(self.name, str) and self.name else str(self.index)


@dataclass
class Node:
    """A router node: ``routerType`` and its ordered ``steps``; ``outputs`` is the
    engine's extension (``"all"``: a Sequence answers every step's answer), which
    KServe's CRD lacks."""

    name: str
    router_type: str | None = None
    steps: list[Step] = field(default_factory=list)
    outputs: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, name: str, doc: dict) -> "Node":
        known, extra = _take(doc, {"routerType": "router_type", "steps": "steps",
                                   "outputs": "outputs"})
        raw_steps = known.pop("steps", None)
        steps: list[Step] = []
        if isinstance(raw_steps, list):
            steps = [Step.from_dict(s, i) for i, s in enumerate(raw_steps) if isinstance(s, dict)]
            if len(steps) != len(raw_steps):
                extra["steps"] = raw_steps
        elif raw_steps is not None:
            extra["steps"] = raw_steps
        return cls(name=name, steps=steps, extra=extra, **known)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        if self.router_type is not None:
            out["routerType"] = self.router_type
        if self.steps:
            out["steps"] = [s.to_dict() for s in self.steps]
        if self.outputs is not None:
            out["outputs"] = self.outputs
        out.update(self.extra)
        return out


@dataclass
class Metadata:
    """The ObjectMeta fields the engine uses; other ObjectMeta fields stay in ``extra``."""

    name: str | None = None
    namespace: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    generation: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    FIELDS = {"name": "name", "namespace": "namespace", "labels": "labels",
              "annotations": "annotations", "generation": "generation"}

    @classmethod
    def from_dict(cls, doc: dict) -> "Metadata":
        known, extra = _take(doc, cls.FIELDS)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        return _put({}, self.FIELDS, self)


@dataclass
class GraphSpec:
    """``spec``: the node map plus the deployment fields KServe's controller uses."""

    nodes: dict[str, Node] = field(default_factory=dict)
    router_timeouts: RouterTimeouts | None = None
    timeout: int | None = None
    min_replicas: int | None = None
    max_replicas: int | None = None
    scale_target: int | None = None
    scale_metric: str | None = None
    resources: dict | None = None
    affinity: dict | None = None
    tolerations: list | None = None
    node_selector: dict | None = None
    node_name: str | None = None
    service_account_name: str | None = None
    default_retry: RetryConfig | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    FIELDS = {"nodes": "nodes", "routerTimeouts": "router_timeouts", "timeout": "timeout",
              "minReplicas": "min_replicas", "maxReplicas": "max_replicas",
              "scaleTarget": "scale_target", "scaleMetric": "scale_metric",
              "resources": "resources", "affinity": "affinity", "tolerations": "tolerations",
              "nodeSelector": "node_selector", "nodeName": "node_name",
              "serviceAccountName": "service_account_name", "defaultRetry": "default_retry"}

    @classmethod
    def from_dict(cls, doc: dict) -> "GraphSpec":
        known, extra = _take(doc, cls.FIELDS)
        raw_nodes = known.pop("nodes", None)
        nodes: dict[str, Node] = {}
        if isinstance(raw_nodes, dict):
            nodes = {str(k): Node.from_dict(str(k), v)
                     for k, v in raw_nodes.items() if isinstance(v, dict)}
            if len(nodes) != len(raw_nodes):
                extra["nodes"] = raw_nodes
        elif raw_nodes is not None:
            extra["nodes"] = raw_nodes
        timeouts = known.pop("router_timeouts", None)
        if isinstance(timeouts, dict):
            known["router_timeouts"] = RouterTimeouts.from_dict(timeouts)
        elif timeouts is not None:
            extra["routerTimeouts"] = timeouts
        _take_retry(known, extra, "default_retry", "defaultRetry")
        return cls(nodes=nodes, **known, extra=extra)

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"nodes": {name: node.to_dict() for name, node in self.nodes.items()}}
        for key, attr in self.FIELDS.items():
            value = getattr(self, attr)
            if key == "nodes" or value is None:
                continue
            out[key] = value.to_dict() if isinstance(value, (RouterTimeouts, RetryConfig)) else value
        out.update(self.extra)
        return out


@dataclass
class GraphStatus:
    """``status`` as KServe's controller writes it (read-only for the engine)."""

    url: str | None = None
    conditions: list | None = None
    deployment_mode: str | None = None
    observed_generation: int | None = None
    annotations: dict | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    FIELDS = {"url": "url", "conditions": "conditions", "deploymentMode": "deployment_mode",
              "observedGeneration": "observed_generation", "annotations": "annotations"}

    @classmethod
    def from_dict(cls, doc: dict) -> "GraphStatus":
        known, extra = _take(doc, cls.FIELDS)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        return _put({}, self.FIELDS, self)


def reachable_nodes(nodes: Mapping[str, Node]) -> list[str]:
    """The names of the nodes a request can reach from root: root first, breadth
    first; none without a root. A step leads to a node when its ``nodeName`` is set
    and names one (KServe's router follows a ``nodeName`` only when it is not empty).
    Validation, rendering and the compiler all use this one walk."""
    if ROOT_NODE not in nodes:
        return []
    order, seen, queue = [], {ROOT_NODE}, deque([ROOT_NODE])
    while queue:
        name = queue.popleft()
        order.append(name)
        for step in nodes[name].steps:
            target = step.node_name
            if isinstance(target, str) and target and target not in seen and target in nodes:
                seen.add(target)
                queue.append(target)
    return order
