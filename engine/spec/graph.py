"""``Graph``, the loaded InferenceGraph resource, and the ``load`` entry points."""
from __future__ import annotations

import json
from typing import Any, Mapping

import yaml

from ..errors import GraphSpecError, GraphValidationError
from . import loader, rules
from .model import GraphSpec, GraphStatus, Metadata, Node, RouterTimeouts, ServiceTarget
from .rules import Diagnostic

_TOP = ("apiVersion", "kind", "metadata", "spec", "status")


class Graph:
    """An InferenceGraph: the resource as written, plus the ``services`` map for the compiler.

    ``bare`` is true when the source was a bare spec (``{"nodes": ...}``), the form
    KServe's controller passes its router with ``--graph-json``; such a graph has no
    apiVersion, kind or metadata, and serialises back to the bare spec.
    """

    def __init__(self, *, api_version: str | None = None, kind: str | None = None,
                 metadata: Metadata | None = None, spec: GraphSpec | None = None,
                 status: GraphStatus | None = None, extra: dict | None = None,
                 bare: bool = False, services: Mapping[str, ServiceTarget] | None = None,
                 source: str | None = None):
        self.api_version = api_version
        self.kind = kind
        self.metadata = metadata if metadata is not None else Metadata()
        self.spec = spec if spec is not None else GraphSpec()
        self.status = status
        self.extra = extra if extra is not None else {}
        self.bare = bare
        self.services = services
        self.source = source
        # False when a full document had no ``spec``: it is not emitted, so validation sees it
        self.has_spec = True

    @classmethod
    def from_dict(cls, doc: dict, *, services=None, source: str | None = None) -> "Graph":
        """Build a Graph from a decoded document (full resource or bare spec)."""
        if not isinstance(doc, dict):
            raise GraphSpecError(f"expected a mapping, got {type(doc).__name__}")
        if loader.is_bare_spec(doc):
            return cls(spec=GraphSpec.from_dict(doc), bare=True, services=services, source=source)
        extra = {k: v for k, v in doc.items() if k not in _TOP}
        parts: dict[str, Any] = {}
        for key, build in (("metadata", Metadata.from_dict), ("spec", GraphSpec.from_dict),
                           ("status", GraphStatus.from_dict)):
            value = doc.get(key)
            if isinstance(value, dict):
                parts[key] = build(value)
            elif value is not None:
                extra[key] = value  # wrong type: kept raw so validation reports it
        graph = cls(api_version=doc.get("apiVersion"), kind=doc.get("kind"), extra=extra,
                    services=services, source=source, **parts)
        graph.has_spec = "spec" in parts or "spec" in extra
        return graph

    # -- convenience views -------------------------------------------------------------
    @property
    def name(self) -> str | None:
        """``metadata.name``."""
        return self.metadata.name

    @property
    def namespace(self) -> str | None:
        """``metadata.namespace``."""
        return self.metadata.namespace

    @property
    def nodes(self) -> dict[str, Node]:
        """``spec.nodes``: node name -> Node, in document order."""
        return self.spec.nodes

    @property
    def router_timeouts(self) -> RouterTimeouts:
        """``spec.routerTimeouts`` as written (fields ``None`` when unset)."""
        return self.spec.router_timeouts if self.spec.router_timeouts is not None else RouterTimeouts()

    def effective_router_timeouts(self) -> RouterTimeouts:
        """The timeouts KServe's router applies: defaults 60/60/180 s, serviceClient none."""
        return self.router_timeouts.effective()

    # -- validation and compilation -----------------------------------------------------
    def diagnose(self) -> list[Diagnostic]:
        """Every diagnostic (errors and warnings) without raising."""
        return rules.diagnose(self)

    def validate(self) -> list[Diagnostic]:
        """Check the graph; raise GraphValidationError listing every error, else return warnings."""
        found = self.diagnose()
        if any(d.severity == "error" for d in found):
            raise GraphValidationError(found)
        return found

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The document with CRD JSON names, holding exactly the fields that were set."""
        spec = self.spec.to_dict()
        if self.bare:
            return spec
        out: dict[str, Any] = {}
        if self.api_version is not None:
            out["apiVersion"] = self.api_version
        if self.kind is not None:
            out["kind"] = self.kind
        metadata = self.metadata.to_dict()
        if metadata:
            out["metadata"] = metadata
        if self.has_spec or self.spec.nodes:
            out["spec"] = spec
        if self.status is not None:
            out["status"] = self.status.to_dict()
        out.update(self.extra)
        return out

    def to_json(self, *, indent: int | None = None) -> str:
        """``to_dict()`` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    def to_yaml(self) -> str:
        """``to_dict()`` as YAML text, fields in CRD order.

        Non-ASCII text is escaped: PyYAML would emit some characters (NEL, U+0085)
        raw and read them back as line breaks.
        """
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def __repr__(self) -> str:
        return f"<Graph {self.name or '(bare spec)'} nodes={list(self.nodes)}>"


def load_all(source: Any, *, services=None, graph_class: type[Graph] | None = None) -> list[Graph]:
    """Every InferenceGraph in ``source`` (multi-document YAML may hold several), as
    ``graph_class`` (a subclass of Graph; engine.Graph adds ``compile``)."""
    docs, origin = loader.documents(source)
    cls = graph_class or Graph
    return [cls.from_dict(doc, services=services, source=origin)
            for doc in loader.graph_documents(docs)]


def load(source: Any, *, services: Mapping[str, ServiceTarget] | None = None,
         graph_class: type[Graph] | None = None) -> Graph:
    """Load one InferenceGraph.

    ``source`` is a file path (str or Path), YAML or JSON text (multi-document YAML:
    the ``kind: InferenceGraph`` document is picked), a dict, or a bare spec
    ``{"nodes": ...}``. ``services`` maps serviceName -> URL or callable and is kept
    on the graph, untouched, for the compiler. Malformed text raises GraphSpecError
    with ``line``/``column``; call ``validate()`` to check the graph itself.
    """
    graphs = load_all(source, services=services, graph_class=graph_class)
    if len(graphs) > 1:
        names = ", ".join(str(g.name) for g in graphs)
        raise GraphSpecError(f"{len(graphs)} InferenceGraph documents found ({names}); "
                             "use engine.spec.load_all or one document per file")
    return graphs[0]
