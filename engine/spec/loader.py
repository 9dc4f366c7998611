"""Turning a source (path, YAML or JSON text, dict) into InferenceGraph documents.

YAML is read with PyYAML's safe loader, changed in two ways that match how Kubernetes
reads manifests: timestamps stay strings (``lastTransitionTime`` must round-trip as
written) and a key repeated in one mapping is an error rather than a silent overwrite
(two ``root:`` nodes is a real mistake; YAML merge keys may still be overridden).
JSON text is parsed by the json module so that its errors carry line and column as
well; a repeated key there is an error too.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from ..errors import GraphSpecError
from .model import KIND

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_MERGE = "tag:yaml.org,2002:merge"


class _Loader(yaml.SafeLoader):
    """SafeLoader without timestamps and with duplicate-key detection."""

    yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:  # `<<: *anchor` may be overridden by explicit keys
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable key: let PyYAML report it
                break
            if duplicate:
                mark = key_node.start_mark
                raise GraphSpecError(f"duplicate key {key!r}",
                                     line=mark.line + 1, column=mark.column + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)



def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise GraphSpecError(f"duplicate key {key!r}")
        out[key] = value
    return out


def parse_text(text: str) -> list[Any]:
    """Every document in ``text`` (JSON or YAML, possibly multi-document)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            return [json.loads(text, object_pairs_hook=_unique_keys)]
        except json.JSONDecodeError as exc:
            raise GraphSpecError(f"invalid JSON: {exc.msg}",
                                 line=exc.lineno, column=exc.colno) from None
    try:
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem:
            problem += f" ({exc.context})"
        raise GraphSpecError(f"invalid YAML: {problem}",
                             line=mark.line + 1 if mark else None,
                             column=mark.column + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise GraphSpecError(f"invalid YAML: {exc}") from None


def read_file(path: str | os.PathLike) -> str:
    """The text of ``path``; a GraphSpecError (no traceback material) when unreadable."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GraphSpecError("no such file", path=os.fspath(path)) from None
    except IsADirectoryError:
        raise GraphSpecError("is a directory", path=os.fspath(path)) from None
    except UnicodeDecodeError as exc:
        raise GraphSpecError(f"not UTF-8 text ({exc.reason})", path=os.fspath(path)) from None
    except OSError as exc:
        raise GraphSpecError(exc.strerror or str(exc), path=os.fspath(path)) from None


def _parse_file(path: str) -> list[Any]:
    try:
        return parse_text(read_file(path))
    except GraphSpecError as exc:
        exc.path = path  # line/column stay: they locate the problem inside this file
        raise


def _looks_like_text(source: str) -> bool:
    return "\n" in source or source.lstrip()[:1] in ("{", "[")


def documents(source: Any) -> tuple[list[Any], str | None]:
    """The parsed documents of ``source`` and the file name it came from (if any)."""
    if isinstance(source, dict):
        return [source], None
    if isinstance(source, os.PathLike):
        return _parse_file(os.fspath(source)), os.fspath(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        try:
            source = bytes(source).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GraphSpecError(f"source is not UTF-8 text ({exc.reason})") from None
        return parse_text(source), None
    if not isinstance(source, str):
        raise GraphSpecError(
            f"cannot load an InferenceGraph from {type(source).__name__}: "
            "expected a path, YAML or JSON text, or a dict")
    if not source.strip():
        raise GraphSpecError("the source is empty")
    if _looks_like_text(source):
        return parse_text(source), None
    if os.path.exists(source):
        return _parse_file(source), source
    # One line that is no file: YAML text such as "nodes: {...}", else a missing file.
    try:
        docs = parse_text(source)
    except GraphSpecError:
        docs = []
    if docs and isinstance(docs[0], dict):
        return docs, None
    raise GraphSpecError("no such file", path=source)


def is_bare_spec(doc: dict) -> bool:
    """A bare ``InferenceGraphSpec`` as KServe's controller hands it to its router."""
    return "nodes" in doc and "spec" not in doc and "kind" not in doc


def graph_documents(docs: list[Any]) -> list[dict]:
    """The InferenceGraph documents (full or bare) among ``docs``."""
    picked = [d for d in docs if isinstance(d, dict) and (d.get("kind") == KIND or is_bare_spec(d))]
    if picked:
        return picked
    if len(docs) == 1 and isinstance(docs[0], dict):
        return docs  # one document of another kind: let validation say what is wrong
    if not docs:
        raise GraphSpecError("the source holds no document")
    kinds = sorted({str(d.get("kind")) for d in docs if isinstance(d, dict)})
    if not kinds:
        raise GraphSpecError(f"expected a mapping, got {type(docs[0]).__name__}")
    raise GraphSpecError(f"no InferenceGraph document found (kinds: {', '.join(kinds)})")
