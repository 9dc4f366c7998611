"""The CRD's OpenAPI schema for InferenceGraph, and a walker that checks a document against it.

The schema follows config/crd/full/serving.kserve.io_inferencegraphs.yaml in KServe:
types, enums and required fields give errors worded like the Kubernetes API server's;
fields the schema does not know give warnings, because Kubernetes prunes them silently
and the user usually meant something (a typo such as ``serviceURL``). ``affinity`` is
checked as an object only: its deep core/v1 schema is the API server's business.
"""
from __future__ import annotations

from typing import Any, Callable

from .model import DEPENDENCIES, OUTPUTS, ROUTER_TYPES, SCALE_METRICS

Report = Callable[[str, str, str], None]  # (severity, path, message)


def _obj(props: dict | None = None, required: tuple = (), values: dict | None = None) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props or {}, "required": required}
    if values is not None:
        schema["values"] = values
    return schema


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_ANY_OBJECT = {"type": "object", "free": True}
_STR_MAP = _obj(values=_STR)
_QUANTITY = {"type": "quantity"}

# KServe PR #5386's RetryConfig (kubebuilder: maxRetries 0..10, delays non-negative)
RETRY = _obj({
    "maxRetries": {"type": "integer", "minimum": 0, "maximum": 10},
    "initialDelayMs": {"type": "integer", "minimum": 0},
    "maxDelayMs": {"type": "integer", "minimum": 0},
})

STEP = _obj({
    "name": _STR,
    "nodeName": _STR,
    "serviceName": _STR,
    "serviceUrl": _STR,
    "data": _STR,
    "mapPredictionsToInstances": _BOOL,
    # The CRD says int64; a traffic share outside 0..100 is meaningless, so we bound it.
    "weight": {"type": "integer", "minimum": 0, "maximum": 100},
    "condition": _STR,
    "dependency": {"type": "string", "enum": DEPENDENCIES},
    "retry": RETRY,
})

NODE = _obj({
    "routerType": {"type": "string", "enum": ROUTER_TYPES},
    "steps": {"type": "array", "items": STEP},
    # not in KServe's CRD: the engine's extension (rules.py warns that Kubernetes prunes it)
    "outputs": {"type": "string", "enum": OUTPUTS},
}, required=("routerType",))

SPEC = _obj({
    "nodes": _obj(values=NODE),
    "routerTimeouts": _obj({k: _INT for k in ("serverRead", "serverWrite", "serverIdle",
                                             "serviceClient")}),
    "timeout": _INT,
    "minReplicas": _INT,
    "maxReplicas": _INT,
    "scaleTarget": _INT,
    "scaleMetric": {"type": "string", "enum": SCALE_METRICS},
    "resources": _obj({
        "claims": {"type": "array", "items": _obj({"name": _STR, "request": _STR},
                                                 required=("name",))},
        "limits": _obj(values=_QUANTITY),
        "requests": _obj(values=_QUANTITY),
    }),
    "affinity": _ANY_OBJECT,
    "tolerations": {"type": "array", "items": _obj({
        "effect": _STR, "key": _STR, "operator": _STR, "tolerationSeconds": _INT, "value": _STR})},
    "nodeSelector": _STR_MAP,
    "nodeName": _STR,
    "serviceAccountName": _STR,
    "defaultRetry": RETRY,
}, required=("nodes",))

STATUS = _obj({
    "annotations": _STR_MAP,
    "conditions": {"type": "array", "items": _obj({
        "lastTransitionTime": _STR, "message": _STR, "reason": _STR, "severity": _STR,
        "status": _STR, "type": _STR}, required=("status", "type"))},
    "deploymentMode": _STR,
    "observedGeneration": _INT,
    "url": _STR,
})

# ObjectMeta: the fields the engine reads are typed; the rest are known, so no warning.
_OBJECT_META_OTHERS = ("generateName", "uid", "resourceVersion", "creationTimestamp",
                       "deletionTimestamp", "deletionGracePeriodSeconds", "finalizers",
                       "ownerReferences", "managedFields", "selfLink")
METADATA = _obj({
    "name": _STR, "namespace": _STR, "labels": _STR_MAP, "annotations": _STR_MAP,
    "generation": _INT, **{k: {"type": "any"} for k in _OBJECT_META_OTHERS},
})

DOCUMENT = _obj({
    "apiVersion": _STR, "kind": _STR, "metadata": METADATA, "spec": SPEC, "status": STATUS,
}, required=("spec",))


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value, as Kubernetes names it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(value: Any, expected: str) -> bool:
    actual = json_type(value)
    if expected == "any":
        return True
    if expected == "quantity":
        return actual in ("integer", "string")
    return actual == expected


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def walk(value: Any, schema: dict, path: str, report: Report) -> None:
    """Check ``value`` against ``schema``; call ``report`` for each problem found."""
    expected = schema["type"]
    if not _type_ok(value, expected):
        wanted = "integer or string" if expected == "quantity" else expected
        report("error", path, f'Invalid value: "{json_type(value)}": must be of type {wanted}')
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(f'"{v}"' for v in schema["enum"])
        report("error", path, f'Unsupported value: "{value}": supported values: {supported}')
    if "minimum" in schema and value < schema["minimum"]:
        report("error", path,
               f"Invalid value: {value}: must be greater than or equal to {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        report("error", path,
               f"Invalid value: {value}: must be less than or equal to {schema['maximum']}")
    if expected == "array":
        for i, item in enumerate(value):
            walk(item, schema["items"], f"{path}[{i}]", report)
    elif expected == "object" and not schema.get("free"):
        _walk_object(value, schema, path, report)


def _walk_object(value: dict, schema: dict, path: str, report: Report) -> None:
    props = schema["properties"]
    values = schema.get("values")
    for key in schema["required"]:
        if value.get(key) is None:
            report("error", _join(path, key), "Required value")
    for key, item in value.items():
        key = str(key)
        sub = props.get(key, values)
        if sub is None:
            report("warning", _join(path, key),
                   f'unknown field "{key}" (Kubernetes prunes it silently)')
        elif item is not None or values is not None and key not in props:
            # null means unset for declared fields; a null map value is still a wrong type
            walk(item, sub, _join(path, key), report)
