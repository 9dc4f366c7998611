"""The exception hierarchy, split by who is at fault.

EngineError
├── GraphSpecError (also ValueError)      the user's graph
│   └── GraphValidationError              every diagnostic of a graph that failed validation
├── BadRequestError (also ValueError)     the request sent to the graph
├── UpstreamError                         a model server (status or transport failure)
├── ServeError                            the router's environment (a port in use,
│                                         workers that keep crashing)
└── InternalEngineError                   the engine itself
"""
from __future__ import annotations


class EngineError(Exception):
    """Root of every error the engine raises on purpose."""


class GraphSpecError(EngineError, ValueError):
    """The InferenceGraph document is malformed or cannot be used.

    ``path`` is the field path (``spec.nodes.root.steps[1].weight``) when known;
    ``line``/``column`` locate a YAML or JSON syntax error in the source text.
    """

    def __init__(self, message: str, *, path: str | None = None,
                 line: int | None = None, column: int | None = None):
        self.path = path
        self.line = line
        self.column = column
        where = path or ""
        if line is not None:
            where = f"line {line}" + (f", column {column}" if column is not None else "")
        super().__init__(f"{where}: {message}" if where else message)
        self.message = message


class GraphValidationError(GraphSpecError):
    """Validation found one or more errors; ``diagnostics`` holds all of them."""

    def __init__(self, diagnostics):
        self.diagnostics = list(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        lines = "\n".join(f"  {d}" for d in errors)
        EngineError.__init__(self, f"invalid InferenceGraph ({len(errors)} error(s)):\n{lines}")
        self.path = errors[0].path if errors else None
        self.line = self.column = None
        self.message = str(self)


class BadRequestError(EngineError, ValueError):
    """The request cannot be processed as sent (HTTP 400, gRPC INVALID_ARGUMENT)."""


class UpstreamError(EngineError):
    """A model server failed: ``status`` for an HTTP answer, ``cause`` for transport."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url


class ServeError(EngineError):
    """The router could not start, or could not keep its workers running."""


class InternalEngineError(EngineError):
    """A bug in the engine: an invariant did not hold."""
