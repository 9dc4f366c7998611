"""`ige serve` and `ige run`: the router commands of the CLI."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

import orjson
import uvloop
import yaml

from .compiler import Policy
from .errors import EngineError, GraphSpecError
from .spec.traffic import TrafficPolicy, load_policy

# The ``ige`` exit statuses (engine.cli's docstring says what each means); here, below
# engine.cli, so that both modules use them without importing each other
EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3


def add_serve(sub) -> None:
    serve = sub.add_parser("serve", help="run the router (HTTP and gRPC) for a graph",
                           description="Serve an InferenceGraph as KServe's router does.")
    add_graph_source(serve)
    serve.add_argument("--http-port", type=int, default=8080)
    serve.add_argument("--grpc-port", type=int, default=8081,
                       help="gRPC front end (inference.GRPCInferenceService); 0 disables it")
    serve.add_argument("--grpc-impl", choices=("native", "grpcio"), default=None,
                       help="gRPC front end: native (HTTP/2 in the compiled core; the "
                            "default) or grpcio (grpc.aio); env IGE_GRPC_IMPL")
    serve.add_argument("--grpc-tls-cert", default=None, metavar="PEM",
                       help="serve gRPC over TLS (ALPN h2) with this certificate chain "
                            "(with --grpc-tls-key; native front end)")
    serve.add_argument("--grpc-tls-key", default=None, metavar="PEM",
                       help="the private key of --grpc-tls-cert")
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes sharing the port (SO_REUSEPORT)")
    serve.add_argument("--drain-seconds", type=float, default=None,
                       help="after SIGTERM, seconds of failing readiness before the "
                            "listener closes (KServe: 30)")
    serve.add_argument("--max-body-size", type=int, default=64 * 1024 * 1024, metavar="BYTES",
                       help="larger request bodies get 413 (default 64 MiB; 0: no limit, "
                            "as KServe's router)")
    serve.add_argument("--max-grpc-message-size", type=int, default=None, metavar="BYTES",
                       help="larger gRPC request messages get RESOURCE_EXHAUSTED (default: "
                            "--max-body-size; 0: no limit)")
    serve.add_argument("--max-header-size", type=int, default=1024 * 1024, metavar="BYTES",
                       help="request line and headers; larger get 431 (default 1 MiB, as Go's server)")
    serve.add_argument("--max-headers", type=int, default=1000, metavar="N",
                       help="more header lines get 431 (default 1000; Go's server has no count limit)")
    serve.add_argument("--max-connections-per-host", type=int, default=64, metavar="N",
                       help="open connections to one model server; calls beyond wait for one "
                            "(default 64; 0: no cap, as KServe's router)")
    serve.add_argument("--worker-crash-limit", type=int, default=5, metavar="N",
                       help="with --workers > 1: stop (exit 3) after N workers in a row die "
                            "within 10 s of their start; restarts back off from 0.5 s to 8 s")
    serve.add_argument("--log-level", default=None,
                       help="INFO (default), or DEBUG for one record per step")
    serve.add_argument("--metrics-buckets", default=None, metavar="S,S,...",
                       help="bounds in seconds of the duration histograms on /metrics, increasing "
                            "(default 0.5 ms to 60 s; env IGE_METRICS_BUCKETS)")
    serve.add_argument("--no-metrics", action="store_true",
                       help="no per-step metrics (request metrics stay)")
    serve.add_argument("--watch", action="store_true",
                       help="reload the graph, services and policy files when they change "
                            "(SIGHUP reloads them in any case)")
    serve.add_argument("--access-log", action="store_true",
                       help="one JSON log record per graph request")
    serve.add_argument("--reserved-paths", metavar="engine|kserve", default=None,
                       help="paths the router answers itself besides /readyz: engine "
                            "(health, metrics, /v2/models/...; the default) or kserve (none, "
                            "as KServe's router: every other path runs the graph); "
                            "env IGE_RESERVED_PATHS")
    serve.add_argument("--inferencegraph-name", help="the InferenceGraph's name (KServe's router flag)")
    serve.add_argument("--enable-tls", action="store_true",
                       help="serve HTTPS on the HTTP port (Open Data Hub's router flag); the "
                            "certificate is reloaded when its files change")
    serve.add_argument("--tls-cert", default=None, metavar="FILE",
                       help="with --enable-tls: the certificate chain (default /etc/tls/private/tls.crt)")
    serve.add_argument("--tls-key", default=None, metavar="FILE",
                       help="with --enable-tls: the private key (default /etc/tls/private/tls.key)")
    serve.add_argument("--enable-auth", action="store_true",
                       help="graph requests need a bearer token that may 'get' the "
                            "InferenceGraph --inferencegraph-name (Kubernetes TokenReview and "
                            "SubjectAccessReview; Open Data Hub's router flag; docs/security.md)")
    serve.add_argument("--auth-allow-ttl", type=float, default=10.0, metavar="S",
                       help="with --enable-auth: seconds an allowed token stays allowed (default 10)")
    serve.add_argument("--auth-deny-ttl", type=float, default=5.0, metavar="S",
                       help="with --enable-auth: seconds a refused token stays refused (default 5)")
    serve.add_argument("--auth-timeout", type=float, default=5.0, metavar="S",
                       help="with --enable-auth: bound on the API server's reviews of a token; "
                            "later, the request gets 503 (default 5)")
    serve.set_defaults(handler=cmd_serve)


def add_run(sub) -> None:
    run = sub.add_parser("run", help="send one request through a graph in process and print the answer")
    add_graph_source(run)
    run.add_argument("--data", required=True, help="request body: JSON text, or @FILE")
    run.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    run.set_defaults(handler=cmd_run)


def add_graph_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("graph", nargs="?", help="InferenceGraph file (YAML or JSON)")
    p.add_argument("--graph-json", help="the graph spec as JSON (what KServe's controller "
                                        "passes), or @FILE")
    p.add_argument("--services", type=Path, help="YAML file mapping serviceName -> URL")
    p.add_argument("--namespace", help="namespace for KServe's in-cluster service addresses "
                                       "(default: the graph's, else $POD_NAMESPACE, else default)")
    p.add_argument("--v2-bridge", action="store_true", default=None,
                   help="let a v2 infer URL step take a previous step's v2 JSON response as "
                        "its inputs (KServe sends the bytes unchanged); env IGE_V2_BRIDGE=1")
    p.add_argument("--data-paths", action="store_true", default=None,
                   help="apply the graph's data paths (data: $response.<path> or $request.<path>; "
                        "KServe's router sends the request for them); env IGE_DATA_PATHS=1")
    p.add_argument("--policy", type=Path, default=None, metavar="FILE",
                   help="TrafficPolicy file (timeouts, retries, breakers, endpoints, "
                        "concurrency per step; docs/policy.md); env IGE_POLICY_FILE")
    p.add_argument("--service-template", default=None,
                   help="URL for a serviceName that --services does not map, with {name} and "
                        "{namespace} (default: KServe's http://{name}.{namespace}.svc.cluster.local"
                        "/v1/models/{name}:predict)")


def read_at_file(value: str, option: str) -> bytes:
    """The bytes of ``@FILE`` for ``option``; a clear GraphSpecError when unreadable."""
    path = Path(value[1:])
    try:
        return path.read_bytes()
    except OSError as e:
        raise GraphSpecError(f"{option} @{path}: cannot read {path}: {e.strerror or e}") from None


def load_graph(args):
    from . import load
    if bool(args.graph) == bool(args.graph_json):
        raise GraphSpecError("give exactly one of GRAPH_FILE or --graph-json")
    if args.graph_json:
        source = args.graph_json
        if source.startswith("@"):  # the spec in a file, as curl's -d @FILE
            source = read_at_file(source, "--graph-json")
        return load(source)
    return load(args.graph)


def load_services(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(path.read_text())
    except OSError as e:
        raise GraphSpecError(f"cannot read services file {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise GraphSpecError(f"services file {path}: {e}",
                             line=mark.line + 1 if mark else None,
                             column=mark.column + 1 if mark else None) from e
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in doc.items()):
        raise GraphSpecError(f"services file {path}: expected a mapping of service name to URL")
    return doc


def env_flag(name: str, environ=None) -> bool:
    """A boolean environment variable (1/true/yes/on, 0/false/no/off or unset)."""
    value = (environ if environ is not None else os.environ).get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise GraphSpecError(f"{name}={value!r}: expected 1/true/yes/on or 0/false/no/off")


def reserved_paths_from(args, environ=None) -> str:
    """--reserved-paths, else IGE_RESERVED_PATHS, else "engine" (ServeOptions checks it)."""
    if args.reserved_paths is not None:
        return args.reserved_paths
    return (environ if environ is not None else os.environ).get(
        "IGE_RESERVED_PATHS", "").strip() or "engine"


def policy_file_from(args, environ=None) -> Path | None:
    """--policy, else IGE_POLICY_FILE (empty: none), else None."""
    if getattr(args, "policy", None) is not None:
        return args.policy
    value = (environ if environ is not None else os.environ).get("IGE_POLICY_FILE", "").strip()
    return Path(value) if value else None


def load_traffic(path: Path | None) -> TrafficPolicy | None:
    """The TrafficPolicy in ``path``, checked; GraphSpecError / GraphValidationError
    (naming the file and each field's path) when it cannot be used."""
    if path is None:
        return None
    return load_policy(path)


def policy_from(args, environ=None) -> Policy:
    policy = Policy(services=load_services(args.services), namespace=args.namespace,
                    v2_bridge=bool(args.v2_bridge) or env_flag("IGE_V2_BRIDGE", environ),
                    data_paths=bool(getattr(args, "data_paths", None)) or env_flag("IGE_DATA_PATHS", environ),
                    traffic=load_traffic(policy_file_from(args, environ)))
    if getattr(args, "no_metrics", False):
        policy.metrics = False
    if getattr(args, "metrics_buckets", None):
        policy.metrics_buckets = args.metrics_buckets
    cap = getattr(args, "max_connections_per_host", None)
    if cap is not None:
        if cap < 0:
            raise GraphSpecError(f"--max-connections-per-host {cap}: must be 0 (no cap) or more")
        policy.max_connections_per_host = cap
    if args.service_template:
        try:
            args.service_template.format(name="n", namespace="ns")
        except (KeyError, IndexError, ValueError) as e:
            raise GraphSpecError(f"--service-template {args.service_template!r}: "
                                 f"only {{name}} and {{namespace}} may be used ({e})") from e
        policy.service_template = args.service_template
    return policy


def _limit(value: int, option: str) -> int:
    """A size or count limit; 0 means none."""
    if value < 0:
        raise GraphSpecError(f"{option} {value}: must be 0 (no limit) or more")
    return value or sys.maxsize


def tracing_from_env():
    """OpenTelemetry tracing as the OTEL_* env asks (None: off), checked at start."""
    from . import tracing
    config = tracing.from_env()
    if config is not None:
        tracing.check_available(config)
    return config


def reload_source(args):
    """What SIGHUP (and --watch) reloads: the graph file (or the @FILE of
    --graph-json), the services file and the policy file, read again (with an inline
    --graph-json the graph stays as it was and only the files can change)."""
    def load_again():
        graph = load_graph(args)
        graph.validate()
        if args.inferencegraph_name and not graph.name:
            graph.metadata.name = args.inferencegraph_name
        return graph, policy_from(args)
    return load_again


def watch_files(args) -> tuple:
    """The files --watch polls: the graph's, the services file and the policy file."""
    files = []
    if args.graph:
        files.append(args.graph)
    elif args.graph_json and args.graph_json.startswith("@"):
        files.append(args.graph_json[1:])
    for path in (args.services, policy_file_from(args)):
        if path is not None:
            files.append(str(path))
    if not files:
        raise GraphSpecError("--watch: the graph came inline (--graph-json JSON) and there is no "
                             "--services or --policy file to watch")
    return tuple(str(f) for f in files)


def cmd_serve(args, out, err, stdin) -> int:
    from . import logs
    from .server.runner import KSERVE_DRAIN_SECONDS, ServeOptions, default_grpc_impl, serve
    tls, auth = security_from(args)
    grpc_port = args.grpc_port or None
    if auth is not None and grpc_port is not None:
        # the token check covers HTTP only: a gRPC port would let requests around it
        logging.getLogger("engine.server").warning(
            "--enable-auth: the gRPC front end is off (the token check covers HTTP only)")
        grpc_port = None
    logs.configure(args.log_level)
    graph = load_graph(args)
    graph.validate()
    if args.inferencegraph_name and not graph.name:
        graph.metadata.name = args.inferencegraph_name
    options = ServeOptions(
        host=args.host, http_port=args.http_port, workers=args.workers,
        grpc_port=grpc_port, tls=tls, auth=auth,
        grpc_impl=args.grpc_impl or default_grpc_impl(),
        grpc_tls_cert=args.grpc_tls_cert, grpc_tls_key=args.grpc_tls_key,
        drain_seconds=KSERVE_DRAIN_SECONDS if args.drain_seconds is None else args.drain_seconds,
        max_body_size=_limit(args.max_body_size, "--max-body-size"),
        max_grpc_message_size=None if args.max_grpc_message_size is None
        else _limit(args.max_grpc_message_size, "--max-grpc-message-size"),
        max_header_size=_limit(args.max_header_size, "--max-header-size"),
        max_headers=_limit(args.max_headers, "--max-headers"),
        policy=policy_from(args),  # a TrafficPolicy is loaded and checked here, at start
        max_quick_crashes=max(1, args.worker_crash_limit),
        access_log=args.access_log, reserved_paths=reserved_paths_from(args),
        tracing=tracing_from_env(), reload_source=reload_source(args),
        watch_files=watch_files(args) if args.watch else ())
    if options.policy.traffic is not None:
        for d in options.policy.traffic.warnings + options.policy.traffic.diagnose(graph):
            logging.getLogger("engine.server").warning(f"policy {d}")
    graph.compile(policy=options.policy)  # fail here, before any worker starts
    return serve(graph, options)


def security_from(args) -> tuple:
    """(TlsConfig or None, AuthConfig or None) of --enable-tls and --enable-auth,
    checked here: certificate, key, API server address, token, CA and namespace files
    are loaded once at start, so that a pod missing one fails to start."""
    tls = auth = None
    if args.enable_tls:
        from .server import tls as tls_module
        tls = tls_module.TlsConfig(cert_file=args.tls_cert or tls_module.DEFAULT_CERT,
                                   key_file=args.tls_key or tls_module.DEFAULT_KEY)
        tls_module.server_context(tls)
    elif args.tls_cert or args.tls_key:
        raise GraphSpecError("--tls-cert and --tls-key need --enable-tls")
    if args.enable_auth:
        from .server.auth import AuthConfig, KubeAuthorizer
        for option, value in (("--auth-allow-ttl", args.auth_allow_ttl),
                              ("--auth-deny-ttl", args.auth_deny_ttl)):
            if value < 0:
                raise GraphSpecError(f"{option} {value}: must be 0 (no caching) or more")
        if args.auth_timeout <= 0:
            raise GraphSpecError(f"--auth-timeout {args.auth_timeout}: must be more than 0")
        auth = AuthConfig.from_env(args.inferencegraph_name or "", allow_ttl=args.auth_allow_ttl,
                                   deny_ttl=args.auth_deny_ttl, timeout=args.auth_timeout)
        KubeAuthorizer(auth)
    return tls, auth


def cmd_run(args, out, err, stdin) -> int:
    graph = load_graph(args)
    data = args.data
    if data.startswith("@"):
        data = read_at_file(data, "--data")
    headers = []
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep:
            raise GraphSpecError(f"--header {h!r}: expected NAME:VALUE")
        headers.append((name.strip(), value.strip()))
    plan = graph.compile(policy=policy_from(args))

    async def once():
        try:
            return await plan.infer(data if isinstance(data, bytes) else data.encode(), headers=headers)
        finally:
            await plan.aclose()

    response = uvloop.run(once())
    body = bytes(response.body)
    try:
        text = orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace")
    err.write(f"status: {response.status}\n")
    out.write(text + "\n")
    return EXIT_OK if 200 <= response.status <= 299 else EXIT_FAILED
