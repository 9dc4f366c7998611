"""The TrafficPolicy document: timeouts, retries, circuit breakers, endpoints, load
balancing, concurrency limits and hedging per step, kept outside the InferenceGraph.

    policy = load_policy("policy.yaml")          # or YAML/JSON text, a dict
    policy.diagnose(graph)                       # warnings: keys that match nothing
    step_policy(policy, graph, "root", step)     # the merged StepPolicy of one step
    node_outputs(policy, "root")                 # spec.nodes overrides: outputs
    step_data(policy, "root", step)              #   and a step's data (path)

The document lives beside the graph because the Kubernetes API server prunes what
KServe's CRD does not define. Every field is checked with its path and unknown fields
are errors (unlike a graph's, which Kubernetes prunes): a typo in a policy must not
silently do nothing. An invalid document raises GraphValidationError, as an invalid
graph does. The merged StepPolicy is what the runtime consumes (docs/policy.md).

The document also carries the graph extensions Kubernetes would prune from the graph
(docs/spec.md, "Extensions"): a node's ``outputs`` (``spec.nodes.<node>.outputs``) and
a step's ``data`` (in its ``spec.steps`` entry), which override the graph's own.
"""
from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Callable

import yaml

from ..errors import GraphSpecError, GraphValidationError
from . import loader
from .model import (DEFAULT_INITIAL_DELAY_MS, DEFAULT_MAX_DELAY_MS, DEFAULT_MAX_RETRIES,
                    MAX_RETRIES_LIMIT, OUTPUTS, RetryConfig, Step)
from .rules import KNOWN_DATA, Diagnostic, data_path_problems, split_data
from .schema import json_type
from .urls import url_problem

if TYPE_CHECKING:
    from .graph import Graph

API_VERSION = "ige/v1alpha1"
KIND = "TrafficPolicy"
LOAD_BALANCERS = ("round-robin", "least-outstanding")
DEFAULT_LOAD_BALANCER = "round-robin"
DEFAULT_CONSECUTIVE_FAILURES = 5
DEFAULT_OPEN_FOR = 10.0
DEFAULT_MAX_QUEUED = 0


# -- what the runtime consumes ---------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """KServe PR #5386's retry: up to ``max_retries`` more attempts after a 5xx answer or a
    transport failure, the delay before retry n drawn from [0, min(max_delay_ms,
    initial_delay_ms * 2^(n-1)))."""

    max_retries: int
    initial_delay_ms: int
    max_delay_ms: int


@dataclass(frozen=True)
class BreakerPolicy:
    """Per endpoint: open after ``consecutive_failures`` failed calls, for ``open_for`` seconds."""

    consecutive_failures: int
    open_for: float


@dataclass(frozen=True)
class ConcurrencyPolicy:
    """At most ``max_in_flight`` calls at once and ``max_queued`` waiting; beyond, 503."""

    max_in_flight: int
    max_queued: int


@dataclass(frozen=True)
class HedgePolicy:
    """A second attempt when the first has no answer after ``after`` seconds."""

    after: float


@dataclass(frozen=True)
class StepPolicy:
    """The effective policy of one step call, merged from every level that applies."""

    timeout: float | None = None          # seconds, per attempt
    retry: RetryPolicy | None = None
    endpoints: tuple[str, ...] = ()       # (): the step's own target
    load_balancer: str = DEFAULT_LOAD_BALANCER
    circuit_breaker: BreakerPolicy | None = None
    concurrency: ConcurrencyPolicy | None = None
    hedge: HedgePolicy | None = None
    service: str | None = None            # the services key that applied (state is shared per service)

    def is_empty(self) -> bool:
        """True when nothing is set: the step runs exactly as without a policy."""
        return self == _EMPTY

    def summary(self) -> str:
        """One compact line, as ``ige explain --plan`` prints it ("" when empty)."""
        parts = []
        if self.timeout is not None:
            parts.append(f"timeout {format_duration(self.timeout)}")
        if self.retry is not None:
            r = self.retry
            parts.append(f"retry {r.max_retries}x {r.initial_delay_ms}..{r.max_delay_ms}ms")
        if self.endpoints:
            parts.append(f"endpoints {len(self.endpoints)} ({self.load_balancer})")
        if self.circuit_breaker is not None:
            b = self.circuit_breaker
            parts.append(f"breaker {b.consecutive_failures}/{format_duration(b.open_for)}")
        if self.concurrency is not None:
            c = self.concurrency
            parts.append(f"concurrency {c.max_in_flight}+{c.max_queued}")
        if self.hedge is not None:
            parts.append(f"hedge {format_duration(self.hedge.after)}")
        if self.service is not None and parts:
            parts.append(f"service {self.service}")
        return ", ".join(parts)


_EMPTY = StepPolicy()


@dataclass(frozen=True)
class PolicyLevel:
    """One entry of the document (``default``, ``services[k]``, ``steps[k]``) as parsed:
    ``None`` where the entry does not set the field."""

    timeout: float | None = None
    retry: RetryPolicy | None = None
    endpoints: tuple[str, ...] | None = None
    load_balancer: str | None = None
    circuit_breaker: BreakerPolicy | None = None
    concurrency: ConcurrencyPolicy | None = None
    hedge: HedgePolicy | None = None


LEVEL_FIELDS = tuple(f.name for f in fields(PolicyLevel))


@dataclass(frozen=True)
class NodePolicy:
    """One ``spec.nodes`` entry: the node's ``outputs`` (overrides the graph's)."""

    outputs: str | None = None


# -- durations -------------------------------------------------------------------------

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")


def parse_duration(value: Any) -> float:
    """Seconds from ``250ms``, ``2s``, ``1.5s``, ``1m``, ``1h``, ``1m30s``, or a plain
    number of seconds; raises ValueError with the reason. Zero and negative durations
    are refused: no policy duration means anything at zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f'Invalid value: "{json_type(value)}": must be a duration '
                         '(such as "250ms", "2s", "1m") or a number of seconds')
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ValueError(f'Invalid value: "{value}": must be greater than 0')
        pos, seconds = 0, 0.0
        for m in _DURATION_PART.finditer(text):
            if m.start() != pos:
                break
            seconds += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ValueError(f'Invalid value: "{value}": must be a duration such as '
                             '"250ms", "2s", "1m" (units ms, s, m, h)')
    else:
        seconds = float(value)
        if not math.isfinite(seconds):
            raise ValueError(f"Invalid value: {value}: must be a finite number of seconds")
    if seconds <= 0:
        shown = f'"{value}"' if isinstance(value, str) else value
        raise ValueError(f"Invalid value: {shown}: must be greater than 0")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest of ``1m``, ``2s``, ``500ms`` that says ``seconds`` exactly."""
    if seconds >= 60 and float(seconds / 60).is_integer():
        return f"{int(seconds // 60)}m"
    if seconds >= 1 and float(seconds).is_integer():
        return f"{int(seconds)}s"
    ms = round(seconds * 1000, 6)
    return f"{int(ms)}ms" if ms.is_integer() else f"{ms:g}ms"


# -- checking and parsing the document -------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _join(path: str, key: str) -> str:
    """``path.key``, or ``path["key"]`` for keys holding dots or slashes (URLs, steps)."""
    if _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"


class _Checker:
    """Collects diagnostics while it turns the document's parts into typed values."""

    def __init__(self) -> None:
        self.found: list[Diagnostic] = []

    def error(self, path: str, message: str) -> None:
        self.found.append(Diagnostic("error", path, message))

    def warning(self, path: str, message: str) -> None:
        self.found.append(Diagnostic("warning", path, message))

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...] | None) -> dict | None:
        """``value`` if it is an object (unknown keys reported when ``allowed``), else None."""
        if not isinstance(value, dict):
            self.error(path, f'Invalid value: "{json_type(value)}": must be of type object')
            return None
        if allowed is not None:
            for key in value:
                if key not in allowed:
                    supported = ", ".join(f'"{k}"' for k in allowed)
                    self.error(_join(path, str(key)),
                               f'unknown field "{key}": supported fields: {supported}')
        return value

    def integer(self, value: Any, path: str, minimum: int, maximum: int | None = None) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(path, f'Invalid value: "{json_type(value)}": must be of type integer')
            return None
        if value < minimum:
            self.error(path, f"Invalid value: {value}: must be greater than or equal to {minimum}")
            return None
        if maximum is not None and value > maximum:
            self.error(path, f"Invalid value: {value}: must be less than or equal to {maximum}")
            return None
        return value

    def duration(self, value: Any, path: str) -> float | None:
        try:
            return parse_duration(value)
        except ValueError as e:
            self.error(path, str(e))
            return None

    def string(self, value: Any, path: str) -> str | None:
        if not isinstance(value, str):
            self.error(path, f'Invalid value: "{json_type(value)}": must be of type string')
            return None
        return value


def _fields(check: _Checker, doc: dict, path: str,
            parsers: dict[str, Callable[[Any, str], Any]]) -> dict[str, Any] | None:
    """Parse each present key of ``doc`` with its parser; None when any failed."""
    out, ok = {}, True
    for key, parse in parsers.items():
        if key in doc:
            value = parse(doc[key], _join(path, key))
            ok = ok and value is not None
            out[key] = value
    return out if ok else None


def _retry(check: _Checker, value: Any, path: str) -> RetryPolicy | None:
    doc = check.mapping(value, path, ("maxRetries", "initialDelayMs", "maxDelayMs"))
    if doc is None:
        return None
    got = _fields(check, doc, path, {
        "maxRetries": lambda v, p: check.integer(v, p, 0, MAX_RETRIES_LIMIT),
        "initialDelayMs": lambda v, p: check.integer(v, p, 0),
        "maxDelayMs": lambda v, p: check.integer(v, p, 0)})
    if got is None:
        return None
    return RetryPolicy(got.get("maxRetries", DEFAULT_MAX_RETRIES),
                       got.get("initialDelayMs", DEFAULT_INITIAL_DELAY_MS),
                       got.get("maxDelayMs", DEFAULT_MAX_DELAY_MS))


def _breaker(check: _Checker, value: Any, path: str) -> BreakerPolicy | None:
    doc = check.mapping(value, path, ("consecutiveFailures", "openFor"))
    if doc is None:
        return None
    got = _fields(check, doc, path, {
        "consecutiveFailures": lambda v, p: check.integer(v, p, 1),
        "openFor": check.duration})
    if got is None:
        return None
    return BreakerPolicy(got.get("consecutiveFailures", DEFAULT_CONSECUTIVE_FAILURES),
                         got.get("openFor", DEFAULT_OPEN_FOR))


def _concurrency(check: _Checker, value: Any, path: str) -> ConcurrencyPolicy | None:
    doc = check.mapping(value, path, ("maxInFlight", "maxQueued"))
    if doc is None:
        return None
    if "maxInFlight" not in doc:
        check.error(_join(path, "maxInFlight"), "Required value")
        return None
    got = _fields(check, doc, path, {
        "maxInFlight": lambda v, p: check.integer(v, p, 1),
        "maxQueued": lambda v, p: check.integer(v, p, 0)})
    if got is None:
        return None
    return ConcurrencyPolicy(got["maxInFlight"], got.get("maxQueued", DEFAULT_MAX_QUEUED))


def _hedge(check: _Checker, value: Any, path: str) -> HedgePolicy | None:
    doc = check.mapping(value, path, ("after",))
    if doc is None:
        return None
    if "after" not in doc:
        check.error(_join(path, "after"), "Required value")
        return None
    after = check.duration(doc["after"], _join(path, "after"))
    return None if after is None else HedgePolicy(after)


def _endpoints(check: _Checker, value: Any, path: str) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        check.error(path, f'Invalid value: "{json_type(value)}": must be of type array')
        return None
    if not value:
        check.error(path, "Required value: at least one endpoint (omit the field to call "
                          "the step's own target)")
        return None
    ok, seen, kinds = True, set(), set()
    for i, url in enumerate(value):
        where = f"{path}[{i}]"
        if check.string(url, where) is None:
            ok = False
            continue
        problem = url_problem(url)
        if problem is not None:
            check.error(where, f"not a usable endpoint: {problem}")
            ok = False
            continue
        kinds.add("grpc" if url.startswith("grpc://") else "http")
        if url in seen:
            check.warning(where, f'"{url}" is listed twice: it gets twice the share of calls')
        seen.add(url)
    if len(kinds) > 1:
        check.error(path, "endpoints of one step must all be HTTP(S) or all grpc://")
        ok = False
    return tuple(value) if ok else None


def _load_balancer(check: _Checker, value: Any, path: str) -> str | None:
    if check.string(value, path) is None:
        return None
    if value not in LOAD_BALANCERS:
        supported = ", ".join(f'"{v}"' for v in LOAD_BALANCERS)
        check.error(path, f'Unsupported value: "{value}": supported values: {supported}')
        return None
    return value


# document key -> (PolicyLevel attribute, parser)
_LEVEL_KEYS: dict[str, tuple[str, Callable[[_Checker, Any, str], Any]]] = {
    "timeout": ("timeout", lambda check, v, p: check.duration(v, p)),
    "retry": ("retry", _retry),
    "endpoints": ("endpoints", _endpoints),
    "loadBalancer": ("load_balancer", _load_balancer),
    "circuitBreaker": ("circuit_breaker", _breaker),
    "concurrency": ("concurrency", _concurrency),
    "hedge": ("hedge", _hedge),
}
# where each target spreads to: one set of endpoints for every step makes no sense
_NOT_IN_DEFAULT = ("endpoints", "loadBalancer")


def _level(check: _Checker, value: Any, path: str, *, is_default: bool = False,
           extra: tuple[str, ...] = ()) -> PolicyLevel:
    doc = check.mapping(value, path, tuple(_LEVEL_KEYS) + extra)
    if doc is None:
        return PolicyLevel()
    parsed = {}
    for key, item in doc.items():
        if key not in _LEVEL_KEYS:
            continue  # reported by mapping()
        if is_default and key in _NOT_IN_DEFAULT:
            check.error(_join(path, key), f"{key} is per service or per step: a default "
                                          "would send every step to the same endpoints")
            continue
        attr, parse = _LEVEL_KEYS[key]
        result = parse(check, item, _join(path, key))
        if result is not None:
            parsed[attr] = result
    return PolicyLevel(**parsed)


def _entries(check: _Checker, spec: dict, key: str, validate_key=None,
             extra: tuple[str, ...] = ()) -> dict[str, PolicyLevel]:
    if key not in spec:
        return {}
    path = _join("spec", key)
    doc = check.mapping(spec[key], path, None)
    if doc is None:
        return {}
    out = {}
    for name, value in doc.items():
        name = str(name)
        where = _join(path, name)
        if validate_key is not None and not validate_key(check, name, where):
            continue
        out[name] = _level(check, value, where, extra=extra)
    return out


def _data(check: _Checker, value: Any, path: str) -> str | None:
    """A step's ``data``: ``$request``, ``$response`` or a data path with a sound GJSON path."""
    if check.string(value, path) is None:
        return None
    if value not in KNOWN_DATA and split_data(value) is None:
        check.error(path, f'Unsupported value: "{value}": supported values: "$request", '
                          '"$response", "$request.<GJSON path>", "$response.<GJSON path>"')
        return None
    problems = data_path_problems(value)
    for problem in problems:
        check.error(path, problem)
    return None if problems else value


def _step_data(check: _Checker, spec: dict) -> dict[str, str]:
    """The ``data`` of each well-formed ``spec.steps`` entry that sets it."""
    steps = spec.get("steps")
    out: dict[str, str] = {}
    if not isinstance(steps, dict):
        return out
    for name, value in steps.items():
        name = str(name)
        node, sep, step = name.partition("/")
        if not (sep and node and step) or not isinstance(value, dict) or "data" not in value:
            continue  # the key or the entry is reported by _entries
        data = _data(check, value["data"], _join(_join("spec.steps", name), "data"))
        if data is not None:
            out[name] = data
    return out


def _nodes(check: _Checker, spec: dict) -> dict[str, NodePolicy]:
    if "nodes" not in spec:
        return {}
    doc = check.mapping(spec["nodes"], "spec.nodes", None)
    if doc is None:
        return {}
    out = {}
    for name, value in doc.items():
        name = str(name)
        where = _join("spec.nodes", name)
        entry = check.mapping(value, where, ("outputs",))
        if entry is None:
            continue
        outputs = None
        if "outputs" in entry:
            outputs = check.string(entry["outputs"], _join(where, "outputs"))
            if outputs is not None and outputs not in OUTPUTS:
                supported = ", ".join(f'"{v}"' for v in OUTPUTS)
                check.error(_join(where, "outputs"),
                            f'Unsupported value: "{outputs}": supported values: {supported}')
                outputs = None
        out[name] = NodePolicy(outputs=outputs)
    return out


def _step_key_ok(check: _Checker, key: str, path: str) -> bool:
    node, sep, step = key.partition("/")
    if not sep or not node or not step:
        check.error(path, f'step key "{key}": expected "<node>/<step name or index>"')
        return False
    return True


def _parse(doc: Any) -> tuple[dict[str, Any], list[Diagnostic]]:
    """The parts of a TrafficPolicy document and every diagnostic, in document order."""
    check = _Checker()
    parts: dict[str, Any] = {"name": None, "default": PolicyLevel(), "services": {}, "steps": {},
                             "nodes": {}, "data": {}}
    top = check.mapping(doc, "", ("apiVersion", "kind", "metadata", "spec"))
    if top is None:
        return parts, check.found
    for key, want in (("apiVersion", API_VERSION), ("kind", KIND)):
        if key not in top:
            check.error(key, "Required value")
        elif top[key] != want:
            check.error(key, f'Invalid value: "{top[key]}": must be "{want}"')
    if "metadata" in top:
        meta = check.mapping(top["metadata"], "metadata", ("name", "namespace", "labels",
                                                          "annotations"))
        if meta is not None:
            for key in ("name", "namespace"):
                if key in meta:
                    check.string(meta[key], f"metadata.{key}")
            for key in ("labels", "annotations"):
                if key in meta and check.mapping(meta[key], f"metadata.{key}", None) is not None:
                    for k, v in meta[key].items():
                        check.string(v, _join(f"metadata.{key}", str(k)))
            if isinstance(meta.get("name"), str):
                parts["name"] = meta["name"]
    if "spec" not in top:
        check.error("spec", "Required value")
        return parts, check.found
    spec = check.mapping(top["spec"], "spec", ("default", "services", "steps", "nodes"))
    if spec is None:
        return parts, check.found
    if "default" in spec:
        parts["default"] = _level(check, spec["default"], "spec.default", is_default=True)
    parts["services"] = _entries(check, spec, "services")
    parts["steps"] = _entries(check, spec, "steps", _step_key_ok, extra=("data",))
    parts["data"] = _step_data(check, spec)
    parts["nodes"] = _nodes(check, spec)
    return parts, check.found


def diagnose_document(doc: Any) -> list[Diagnostic]:
    """Every diagnostic of a decoded TrafficPolicy document, without raising."""
    return _parse(doc)[1]


# -- the policy ------------------------------------------------------------------------

class TrafficPolicy:
    """A validated TrafficPolicy document. ``default``, ``services`` and ``steps`` hold
    its entries as PolicyLevel values, ``nodes`` its node overrides (NodePolicy), ``data``
    the ``data`` of the ``steps`` entries that set one; ``warnings`` what validation
    warned about."""

    def __init__(self, *, name: str | None = None, default: PolicyLevel | None = None,
                 services: dict[str, PolicyLevel] | None = None,
                 steps: dict[str, PolicyLevel] | None = None,
                 nodes: dict[str, NodePolicy] | None = None,
                 data: dict[str, str] | None = None,
                 document: dict | None = None, source: str | None = None,
                 warnings: list[Diagnostic] | None = None):
        self.name = name
        self.default = default if default is not None else PolicyLevel()
        self.services = dict(services or {})
        self.steps = dict(steps or {})
        self.nodes = dict(nodes or {})
        self.data = dict(data or {})
        self.document = document
        self.source = source
        self.warnings = list(warnings or [])

    @classmethod
    def from_dict(cls, doc: Any, *, source: str | None = None) -> "TrafficPolicy":
        """Check and build a policy from a decoded document; GraphValidationError
        (listing every error with its path) when it is invalid."""
        parts, found = _parse(doc)
        if any(d.severity == "error" for d in found):
            raise GraphValidationError(found, kind=f"{KIND} {source}" if source else KIND)
        return cls(**parts, document=copy.deepcopy(doc), source=source, warnings=found)

    # -- against a graph ---------------------------------------------------------------
    def diagnose(self, graph: "Graph") -> list[Diagnostic]:
        """Warnings for ``graph``: a ``steps`` key naming no step (or a step that runs
        a node, for call policy), a ``services`` key matching no step's serviceName or
        serviceUrl, a ``nodes`` key naming no node, an override that a node's router
        type ignores (``outputs`` or ``data`` outside a Sequence)."""
        found: list[Diagnostic] = []
        used: set[str] = set()
        for node in graph.nodes.values():
            for step in node.steps:
                if not step.node_name:
                    used.update(t for t in (step.service_name, step.service_url)
                                if isinstance(t, str) and t)
        for key in self.services:
            if key not in used:
                found.append(Diagnostic("warning", _join("spec.services", key),
                                        f'"{key}" is no step\'s serviceName or serviceUrl '
                                        "in this graph: the entry applies to nothing"))
        for key in self.steps:
            path = _join("spec.steps", key)
            node_name, _, ref = key.partition("/")
            target = graph.nodes.get(node_name)
            if target is None:
                found.append(Diagnostic("warning", path, f'the graph has no node "{node_name}": '
                                                         "the entry applies to nothing"))
                continue
            steps = [s for s in target.steps if s.name == ref or str(s.index) == ref]
            if not steps:
                found.append(Diagnostic("warning", path, f'node "{node_name}" has no step named '
                                                         f'or numbered "{ref}": the entry '
                                                         "applies to nothing"))
                continue
            # an entry that sets only data applies to a node step too
            if all(s.node_name for s in steps) and (key not in self.data
                                                   or self.steps[key] != PolicyLevel()):
                found.append(Diagnostic("warning", path, "the step runs a node: a policy "
                                                         "applies only to service calls"))
            if key in self.data and target.router_type != "Sequence":
                found.append(Diagnostic("warning", _join(path, "data"),
                                        "data applies to Sequence steps only: the steps "
                                        f"of {target.router_type or 'this'} nodes are sent "
                                        "the request as it is"))
        for key, entry in self.nodes.items():
            path = _join("spec.nodes", key)
            named = graph.nodes.get(key)
            if named is None:
                found.append(Diagnostic("warning", path, f'the graph has no node "{key}": '
                                                         "the entry applies to nothing"))
            elif entry.outputs is not None and named.router_type != "Sequence":
                found.append(Diagnostic("warning", _join(path, "outputs"),
                                        "outputs applies to Sequence nodes only: ignored here"))
        return found

    def step_policy(self, graph: "Graph", node_name: str, step: Step) -> StepPolicy:
        """See ``step_policy``."""
        return step_policy(self, graph, node_name, step)

    # -- serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict:
        """The document as written."""
        return copy.deepcopy(self.document) if self.document is not None else {
            "apiVersion": API_VERSION, "kind": KIND, "spec": {}}

    def to_json(self, *, indent: int | None = None) -> str:
        """``to_dict()`` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_yaml(self) -> str:
        """``to_dict()`` as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def __repr__(self) -> str:
        return (f"<TrafficPolicy {self.name or '(unnamed)'} services={list(self.services)} "
                f"steps={list(self.steps)} nodes={list(self.nodes)}>")


def load_policy(source: Any) -> TrafficPolicy:
    """Load and check one TrafficPolicy: a path, YAML or JSON text, or a dict (a
    TrafficPolicy is returned as it is). In a multi-document file the ``kind:
    TrafficPolicy`` document is picked. GraphSpecError for unreadable or malformed
    text, GraphValidationError for an invalid document."""
    if isinstance(source, TrafficPolicy):
        return source
    docs, origin = loader.documents(source)
    picked = [d for d in docs if isinstance(d, dict) and d.get("kind") == KIND]
    if not picked:
        if len(docs) != 1:
            raise GraphSpecError(f"no {KIND} document found", path=origin)
        picked = docs  # one document of another kind: validation says what is wrong
    if len(picked) > 1:
        raise GraphSpecError(f"{len(picked)} {KIND} documents found; give one", path=origin)
    return TrafficPolicy.from_dict(picked[0], source=origin)


# -- merging ---------------------------------------------------------------------------

def _spec_retry(config: RetryConfig, path: str) -> RetryPolicy:
    """A graph's own KServe retry fields as a RetryPolicy; GraphSpecError when a value
    is out of KServe's ranges (a graph compiled without validate())."""
    values = config.effective()
    limits = ((0, MAX_RETRIES_LIMIT), (0, None), (0, None))
    for (key, _), value, (low, high) in zip(RetryConfig.FIELDS.items(), values, limits):
        if (isinstance(value, bool) or not isinstance(value, int) or value < low
                or high is not None and value > high):
            raise GraphSpecError(f"invalid value {value!r}", path=f"{path}.{key}")
    return RetryPolicy(*values)


def step_policy(traffic: TrafficPolicy | None, graph: "Graph", node_name: str,
                step: Step) -> StepPolicy:
    """The effective policy of ``step`` (the spec's Step) in node ``node_name``.

    Merged field by field, each more specific level winning: the policy's ``default``,
    the graph's ``spec.defaultRetry`` (retry only), the policy's ``services`` entry
    (the step's serviceName, else its serviceUrl), the step's own ``retry`` (retry
    only), the policy's ``steps`` entries (``<node>/<index>``, then ``<node>/<name>``).
    A step that runs a node gets an empty StepPolicy, and so does one whose retry ends
    up with maxRetries 0 and nothing else set."""
    if step.node_name:
        return _EMPTY
    levels: list[PolicyLevel] = []
    service = None
    if traffic is not None:
        levels.append(traffic.default)
    default_retry = getattr(graph.spec, "default_retry", None)
    if default_retry is not None:
        levels.append(PolicyLevel(retry=_spec_retry(default_retry, "spec.defaultRetry")))
    if traffic is not None:
        for key in (step.service_name, step.service_url):
            if isinstance(key, str) and key in traffic.services:
                levels.append(traffic.services[key])
                service = key
                break
    if step.retry is not None:
        path = f"spec.nodes.{node_name}.steps[{step.index}].retry"
        levels.append(PolicyLevel(retry=_spec_retry(step.retry, path)))
    if traffic is not None:
        keys = [f"{node_name}/{step.index}"]
        if isinstance(step.name, str) and step.name and step.name != str(step.index):
            keys.append(f"{node_name}/{step.name}")
        levels.extend(traffic.steps[k] for k in keys if k in traffic.steps)
    merged: dict[str, Any] = {}
    for level in levels:
        for attr in LEVEL_FIELDS:
            value = getattr(level, attr)
            if value is not None:
                merged[attr] = value
    if "retry" in merged and merged["retry"].max_retries == 0:
        del merged["retry"]  # maxRetries 0 is KServe's way of saying no retry
    if not merged.get("endpoints"):
        merged.pop("load_balancer", None)  # nothing to balance over
    result = StepPolicy(**merged)
    if result.is_empty():
        return _EMPTY
    return replace(result, service=service)


# -- graph extensions ------------------------------------------------------------------

def node_outputs(traffic: TrafficPolicy | None, node_name: str) -> str | None:
    """The ``outputs`` the policy sets for node ``node_name`` (over the graph's), or None."""
    if traffic is None or node_name not in traffic.nodes:
        return None
    return traffic.nodes[node_name].outputs


def step_data(traffic: TrafficPolicy | None, node_name: str, step: Step) -> str | None:
    """The ``data`` the policy sets for ``step`` of node ``node_name`` (over the
    graph's), or None: its ``"<node>/<name>"`` entry, else its ``"<node>/<index>"``
    entry, the same precedence as for call policy."""
    if traffic is None or not traffic.data:
        return None
    if isinstance(step.name, str) and step.name:
        data = traffic.data.get(f"{node_name}/{step.name}")
        if data is not None:
            return data
    return traffic.data.get(f"{node_name}/{step.index}")
