"""Backends: where a step's request goes.

- ``http://`` / ``https://`` URLs: pooled keep-alive HTTP/1.1 (engine._core.HttpClient)
- Python callables: in process (engine._core.LocalBackend)
- anything else fails each call with the error Go's client gives for it, as KServe's
  router does, and `ige validate` warns about it at load time.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from .. import _core


def go_url_problem(url: str) -> str | None:
    """The error Go's http.NewRequest / client.Do gives for ``url``, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        return f'parse "{url}": {e}'
    if not parts.scheme:
        return f'Post "{url}": unsupported protocol scheme ""'
    if parts.scheme not in ("http", "https"):
        return f'Post "{url}": unsupported protocol scheme "{parts.scheme}"'
    host = parts.hostname or ""
    if not host:
        return f'Post "{url}": http: no Host in request URL'
    for ch in host:
        if not (ch.isalnum() or ch in "-._:[]%"):
            return f'parse "{url}": invalid character "{ch}" in host name'
    return None


def make_url_backend(url: str, path: str, registry):
    """A backend for a step URL; ``registry`` holds the shared HTTP client."""
    problem = go_url_problem(url)
    if problem is not None:
        return _core.FailingBackend(url, problem)
    if registry.http is None:
        registry.http = _core.HttpClient(
            max_connections_per_host=registry.policy.max_connections_per_host)
    return _core.HttpBackend(_core.Endpoint(url), registry.http)
