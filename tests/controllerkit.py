"""What KServe's InferenceGraph controller hands its router, generated for tests.

KServe's controller (pkg/controller/v1alpha1/inferencegraph/controller.go) resolves
every ``serviceName`` step to the InferenceService's predictor URL
(isvcutils.GetPredictorEndpoint), writes it into ``serviceUrl`` beside the name, and
starts the router with ``--graph-json`` set to ``json.Marshal(graph.Spec)``
(raw_ig.go, knative_reconciler.go). This module follows those rules (our own code,
written from reading theirs) so that tests run the exact shape the router receives:
Go's field order and ``omitempty`` rules, map keys sorted, ``"resources": {}`` always
present, and Go's HTML-safe string escaping (``<`` as ``\\u003c``).
"""
from __future__ import annotations

import dataclasses
import json

PROTOCOL_V1, PROTOCOL_V2 = "v1", "v2"


class ControllerError(Exception):
    """The controller would requeue and never start the router."""


@dataclasses.dataclass
class InferenceService:
    """The parts of an InferenceService that GetPredictorEndpoint reads.

    ``url`` is ``status.address.url`` (None: not ready yet); ``protocol`` the
    predictor's protocolVersion; ``runtime_protocols`` the ServingRuntime's
    ``protocolVersions`` when the predictor names a runtime; ``transformer_protocol``
    set when the service has a transformer; ``multi_model`` for a ModelMesh/MMS
    predictor (no path is added).
    """
    name: str
    url: str | None
    namespace: str = "default"
    protocol: str = PROTOCOL_V1
    model_name: str | None = None
    runtime_protocols: list[str] | None = None
    transformer_protocol: str | None = None
    multi_model: bool = False


def _predict_path(model: str, protocol: str) -> str:
    if protocol == PROTOCOL_V1:
        return f"/v1/models/{model}:predict"
    if protocol == PROTOCOL_V2:
        return f"/v2/models/{model}/infer"
    return ""  # grpc-v2 and others: the bare address


def predictor_endpoint(isvc: InferenceService) -> str:
    """GetPredictorEndpoint: the address plus the predict path of the service's protocol."""
    if isvc.url is None:
        raise ControllerError(f"service {isvc.name} is not ready")
    model = isvc.model_name or isvc.name
    path = ""
    if isvc.transformer_protocol is not None:
        path = _predict_path(model, isvc.transformer_protocol)
    elif not isvc.multi_model:
        protocol = isvc.protocol
        if isvc.runtime_protocols:
            supported = [p for p in isvc.runtime_protocols if p in (PROTOCOL_V1, PROTOCOL_V2)]
            if not supported:
                raise ControllerError("the runtime does not support a protocol compatible "
                                      "with Inference Graphs")
            protocol = supported[0]
        path = _predict_path(model, protocol)
    return isvc.url + path


def resolve(spec: dict, namespace: str, services: list[InferenceService]) -> dict:
    """The spec after the controller's loop: each serviceName step also carries the
    predictor URL of the InferenceService of that name in the graph's namespace
    (a serviceUrl the step already has is kept)."""
    by_key = {(s.namespace, s.name): s for s in services}
    out = json.loads(json.dumps(spec))
    for node in out["nodes"].values():
        for step in node.get("steps") or []:
            name = step.get("serviceName")
            if not name:
                continue
            isvc = by_key.get((namespace, name))
            if isvc is None:
                raise ControllerError(f"Failed to find graph service {name}")
            if not step.get("serviceUrl"):
                step["serviceUrl"] = predictor_endpoint(isvc)
    return out


# ---- json.Marshal(v1alpha1.InferenceGraphSpec) --------------------------------------

# Go struct field order (pkg/apis/serving/v1alpha1/inference_graph.go) and whether the
# field is kept when empty: pointers are kept when set (even to 0), values are dropped
# when zero under omitempty; a struct value (resources) is never dropped.
_SPEC_FIELDS = ("nodes", "resources", "affinity", "timeout", "routerTimeouts", "minReplicas",
                "maxReplicas", "scaleTarget", "scaleMetric", "tolerations", "nodeSelector",
                "nodeName", "serviceAccountName")
_SPEC_VALUE_FIELDS = {"maxReplicas", "tolerations", "nodeSelector", "nodeName",
                      "serviceAccountName"}
_STEP_FIELDS = ("name", "nodeName", "serviceName", "serviceUrl", "data",
                "mapPredictionsToInstances", "weight", "condition", "dependency")
_TIMEOUT_FIELDS = ("serverRead", "serverWrite", "serverIdle", "serviceClient")
_TOLERATION_FIELDS = ("key", "operator", "value", "effect", "tolerationSeconds")
_RESOURCE_FIELDS = ("limits", "requests", "claims")


def _empty(value) -> bool:
    return value is None or value is False or value == 0 and not isinstance(value, bool) \
        or value in ("", [], {})


def _struct(src: dict, fields, keep_when_set=()) -> dict:
    out = {}
    for f in fields:
        if f not in src or src[f] is None:
            continue
        if f not in keep_when_set and _empty(src[f]):
            continue
        out[f] = src[f]
    return out


def _quantities(m: dict) -> dict:
    # resource.Quantity marshals as its canonical string; the inputs here are canonical
    return {k: str(m[k]) for k in sorted(m)}


def _go_map(value):
    """A map[string]... or free-form object: keys sorted at every level."""
    if isinstance(value, dict):
        return {k: _go_map(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_go_map(v) for v in value]
    return value


def marshal_spec(spec: dict) -> str:
    """``json.Marshal(graph.Spec)`` as the controller passes it to ``--graph-json``."""
    nodes = {}
    for name in sorted(spec["nodes"]):
        node = spec["nodes"][name]
        router = {"routerType": node.get("routerType", "")}
        steps = [_struct(s, _STEP_FIELDS, keep_when_set=("weight",)) for s in node.get("steps") or []]
        if steps:
            router["steps"] = steps
        nodes[name] = router
    src = dict(spec, nodes=nodes)
    resources = spec.get("resources") or {}
    src["resources"] = {k: (_quantities(resources[k]) if k != "claims" else resources[k])
                        for k in _RESOURCE_FIELDS if resources.get(k)}
    if spec.get("routerTimeouts") is not None:
        src["routerTimeouts"] = _struct(spec["routerTimeouts"], _TIMEOUT_FIELDS,
                                        keep_when_set=_TIMEOUT_FIELDS)
    if spec.get("tolerations"):
        src["tolerations"] = [_struct(t, _TOLERATION_FIELDS, keep_when_set=("tolerationSeconds",))
                              for t in spec["tolerations"]]
    if spec.get("nodeSelector") is not None:
        src["nodeSelector"] = _go_map(spec["nodeSelector"])
    # affinity is a core/v1 struct: its fields keep their declared order, which is the
    # order a manifest written from the API reference has
    out = {}
    for f in _SPEC_FIELDS:
        if f == "resources":
            out[f] = src[f]
        elif f in src and src[f] is not None and not (f in _SPEC_VALUE_FIELDS and _empty(src[f])):
            out[f] = src[f]
    return go_json(out)


def _go_string(s: str) -> str:
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif o < 0x20 or ch in "<>&" or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_json(value) -> str:
    """Go's encoding/json output for decoded JSON values kept in the given key order."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return _go_string(value)
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_string(k)}:{go_json(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no Go encoding for {type(value).__name__} in this generator")


def graph_json(document: dict, services: list[InferenceService]) -> str:
    """The ``--graph-json`` argument for an InferenceGraph document as a user applies it."""
    namespace = (document.get("metadata") or {}).get("namespace") or "default"
    return marshal_spec(resolve(document["spec"], namespace, services))


def pod_args(document: dict, services: list[InferenceService]) -> list[str]:
    """The router container's args in the pod the controller creates."""
    return ["--graph-json", graph_json(document, services)]
