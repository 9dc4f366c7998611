"""Backends: where a step's request goes.

- ``http://`` / ``https://`` URLs: pooled keep-alive HTTP/1.1 (engine._core.HttpClient);
  a URL ending in ``/v2/models/<m>/infer`` gets bytes as any URL does and also carries
  OIP messages with the binary tensor extension (engine.backends.v2http); inside an
  Istio mesh https URLs are called over plain HTTP, as KServe's router does
  (engine.backends.mesh)
- ``grpc://host:port/<model>``: Open Inference Protocol v2 over gRPC (engine.backends.grpc)
- Python callables: in process (engine._core.LocalBackend)
- anything else fails each call with the error Go's client gives for it, as KServe's
  router does, and `ige validate` warns about it at load time.
"""
from __future__ import annotations

import sys
from urllib.parse import urlsplit

from .. import _core
# the URL checks are the spec's (validation warns with them); both names stay importable here
from ..spec.urls import go_url_problem, url_problem  # noqa: F401
from .mesh import https_plain_twin, probe_for


def make_url_backend(url: str, path: str, registry):
    """A backend for a step URL; ``registry`` holds the shared HTTP client and gRPC
    channels."""
    problem = url_problem(url)
    if problem is not None:
        return _core.FailingBackend(url, problem)
    if url.startswith("grpc://"):
        from .grpc import make_grpc_backend
        return make_grpc_backend(url, registry)
    if registry.http is None:
        # 0: no cap, as Go's default transport
        registry.http = _core.HttpClient(
            max_connections_per_host=registry.policy.max_connections_per_host or sys.maxsize)
    backend = _http_backend(url, registry)
    plain = https_plain_twin(url)
    probe_url = getattr(registry.policy, "istio_probe_url", None)
    if plain is not None and probe_url:
        # KServe: inside an Istio mesh an https step is called over plain HTTP
        backend = _core.IstioMeshBackend(backend, _http_backend(plain, registry), probe_for(probe_url))
    return backend


def _http_backend(url: str, registry):
    from .v2http import make_v2_backend, v2_model_of
    v2 = v2_model_of(urlsplit(url).path)
    if v2 is not None:
        return make_v2_backend(url, v2[0], v2[1], registry.http, registry.policy.v2_bridge)
    return _core.HttpBackend(_core.Endpoint(url), registry.http, getattr(registry, "bridge", None))
