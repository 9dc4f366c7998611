"""Why a step URL can never be called: the checks validation warns with and the
backends fail each call with, in one place and without the runtime.

HTTP URLs get the error text Go's http.NewRequest / client.Do gives (KServe's router
fails every call of such a step with it); ``grpc://host:port/<model>`` URLs are parsed
here too, so that the gRPC backend and validation agree on what is well formed.
"""
from __future__ import annotations

from urllib.parse import urlsplit


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


def parse_grpc_url(url: str) -> tuple[str, str]:
    """``grpc://host:port/model`` -> (``host:port``, ``model``); GraphSpecError-free:
    raises ValueError with the reason."""
    parts = urlsplit(url)
    if parts.scheme != "grpc":
        raise ValueError(f'"{url}": not a grpc:// URL')
    host = parts.hostname
    if not host:
        raise ValueError(f'"{url}": no host')
    port = parts.port or 80
    model = parts.path.strip("/")
    if not model or "/" in model:
        raise ValueError(f'"{url}": expected grpc://host:port/<model>')
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return target, model


def grpc_url_problem(url: str) -> str | None:
    """Why ``url`` is not a usable ``grpc://host:port/<model>`` URL, or None."""
    try:
        parse_grpc_url(url)
    except ValueError as e:
        return f"parse {e}"
    return None


def url_problem(url: str) -> str | None:
    """Why every call to ``url`` fails (Go's client text for HTTP URLs), or None."""
    if url.startswith("grpc://"):
        return grpc_url_problem(url)
    return go_url_problem(url)
