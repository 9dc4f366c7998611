"""GJSON paths (tidwall/gjson v1.18.0 syntax, KServe's pin) evaluated on raw JSON bytes.

    from engine import gjson
    cond = gjson.compile('instances.#(modelId=="2")')
    cond.get(body).exists         # what KServe's Switch uses to pick a step

Evaluation never decodes the document; results carry gjson's exact ``Raw`` bytes.
Like gjson, a malformed path is not an error, it simply matches nothing:
``Path.diagnose()`` (or ``compile(path, strict=True)``) points at suspicious syntax.
"""
from __future__ import annotations

from ._gjson import Path, PathProblem, Result, SwitchTable, get, switch_key, valid
from .errors import GraphSpecError

__all__ = ["Path", "PathProblem", "Result", "SwitchTable", "compile", "get", "switch_key", "valid"]


def compile(path: str, *, strict: bool = False) -> Path:  # noqa: A001 - mirrors re.compile
    """Compile a GJSON path once for repeated evaluation.

    With ``strict=True`` the first problem ``diagnose()`` finds raises GraphSpecError.
    """
    compiled = Path(path)
    if strict:
        problems = compiled.diagnose()
        if problems:
            first = problems[0]
            raise GraphSpecError(
                f"GJSON path {path!r} at position {first.position}: {first.message}")
    return compiled
