"""``Policy``: how the engine runs a graph, beyond what the InferenceGraph resource says.

Plain configuration, importable without the compiled runtime (``import engine`` loads
only the spec layer and this).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Sequence

from .spec.traffic import TrafficPolicy

# What KServe's controller gives a serviceName step (v1 protocol, in-cluster address)
DEFAULT_SERVICE_TEMPLATE = "http://{name}.{namespace}.svc.cluster.local/v1/models/{name}:predict"
# Envoy's admin port: KServe's router takes a 200 there for an Istio sidecar
DEFAULT_ISTIO_PROBE_URL = "http://localhost:15000"


@dataclasses.dataclass
class Policy:
    """Engine-level options that are not part of the InferenceGraph resource.

    ``services`` maps a serviceName to a URL or a Python callable (in-process model);
    names it does not cover resolve through ``service_template`` with the graph's
    namespace (else ``POD_NAMESPACE``, else ``default``). ``propagate_headers`` is
    KServe's ``PROPAGATE_HEADERS`` (comma separated regular expressions); None reads
    the environment variable. ``max_connections_per_host`` caps the open connections
    to one model server (calls beyond it wait for a free one); 0 means no cap, as
    KServe's router (Go's default transport). ``v2_bridge`` lets a step with a v2
    infer URL take a previous step's v2 JSON response (bytes) as its request, outputs
    as inputs, where KServe's router would send those bytes unchanged (docs/oip.md,
    "Bridging"); off by default, and implied for requests that enter as OIP messages.
    ``istio_probe_url`` is where KServe's router looks for an Istio sidecar before its
    first https step call (inside a mesh, https steps are called over plain HTTP); it
    defaults to ``IGE_ISTIO_PROBE_URL``, else ``http://localhost:15000``, and None or
    "" turns the rule off. ``traffic`` is the TrafficPolicy document (timeouts,
    retries, breakers, endpoints, concurrency, hedging per step; docs/policy.md); None
    and a graph without KServe's retry fields run every step as KServe's router does.
    ``data_paths`` applies the graph's own data paths (``data: $response.<path>``,
    ``$request.<path>``: docs/spec.md); off by default because KServe's router sends the
    request for any such value, and KServe's controller hands the field over as
    written; a TrafficPolicy's ``data`` applies either way.
    ``metrics`` off turns per-step metrics off (request metrics stay);
    ``metrics_buckets`` are the bounds in seconds of the duration histograms (None:
    ``IGE_METRICS_BUCKETS``; a sequence or comma separated text, increasing positive numbers; else 0.5 ms to 60 s; docs/metrics.md).
    """
    services: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    service_template: str = DEFAULT_SERVICE_TEMPLATE
    namespace: str | None = None
    propagate_headers: str | None = None
    max_connections_per_host: int = 64
    backend_factory: Callable[[str, str], Any] | None = None
    v2_bridge: bool = False
    istio_probe_url: str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("IGE_ISTIO_PROBE_URL", DEFAULT_ISTIO_PROBE_URL))
    traffic: TrafficPolicy | None = None
    data_paths: bool = False
    metrics: bool = True
    metrics_buckets: Sequence[float] | str | None = dataclasses.field(
        default_factory=lambda: os.environ.get("IGE_METRICS_BUCKETS") or None)
