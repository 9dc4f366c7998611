"""The exception hierarchy, split by who is at fault.

EngineError
├── GraphSpecError (also ValueError)      the user's graph
│   └── GraphValidationError              every diagnostic of a graph that failed validation
├── BadRequestError (also ValueError)     the request sent to the graph
├── UpstreamError                         a model server (transport failure, unusable answer)
├── ServeError                            the router's environment (a port in use,
│                                         workers that keep crashing)
└── InternalEngineError                   the engine itself

Every error text the router sends a client goes through ``bound_message``.
"""
from __future__ import annotations

MESSAGE_LIMIT = 1024
"""The most UTF-8 bytes of an error message the router sends a client (HTTP ``error``
and ``cause``, gRPC status details). gRPC carries the details in a header, and
standard clients refuse a response whose headers pass 16 KiB: a longer message would
reach them as RESOURCE_EXHAUSTED instead of the error."""


def bound_message(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes: a longer one keeps its start and its
    end (usually the reason) around a marker giving the original length."""
    if len(text) * 4 <= limit:      # no character takes more than 4 bytes
        return text
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    marker = f" ... ({len(data)} bytes, middle elided) ... "
    room = limit - len(marker)
    if room < 16:
        return data[:limit].decode("utf-8", "ignore")
    head, tail = room * 3 // 4, room - room * 3 // 4
    # cut on byte counts, then drop a character split by a cut
    return (data[:head].decode("utf-8", "ignore") + marker
            + data[len(data) - tail:].decode("utf-8", "ignore"))


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
    """Validation found one or more errors; ``diagnostics`` holds all of them.
    ``kind`` names what was validated (an InferenceGraph, a TrafficPolicy)."""

    def __init__(self, diagnostics, *, kind: str = "InferenceGraph"):
        self.diagnostics = list(diagnostics)
        self.kind = kind
        errors = [d for d in self.diagnostics if d.severity == "error"]
        lines = "\n".join(f"  {d}" for d in errors)
        EngineError.__init__(self, f"invalid {kind} ({len(errors)} error(s)):\n{lines}")
        self.path = errors[0].path if errors else None
        self.line = self.column = None
        self.message = str(self)


class BadRequestError(EngineError, ValueError):
    """The request cannot be processed as sent (HTTP 400, gRPC INVALID_ARGUMENT)."""


class UpstreamError(EngineError):
    """A model server could not be reached or answered what cannot be used (refused,
    reset, timed out, a malformed answer); ``url`` names the step's target. A model's
    own non-2xx answer is no error: it is a result that Soft/Hard dependencies act on."""

    def __init__(self, message: str, *, url: str | None = None):
        super().__init__(message)
        self.url = url


class ServeError(EngineError):
    """The router could not start, or could not keep its workers running."""


class InternalEngineError(EngineError):
    """A bug in the engine: an invariant did not hold."""
