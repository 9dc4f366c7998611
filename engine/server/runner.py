"""Process and loop orchestration for the router."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import time

import uvloop

from .. import _core
from ..bridge import v2_front
from ..compiler import Policy
from ..errors import GraphSpecError, ServeError
from .graph_page import render_graph_page

log = logging.getLogger("engine.server")

# KServe's router sleeps this long after SIGTERM (readiness failing) before it stops
# accepting connections, so that load balancers take the pod out first.
KSERVE_DRAIN_SECONDS = 30.0
# In-flight gRPC calls get this long after the listener closes before they are cancelled
GRPC_GRACE_SECONDS = 30.0


# The gRPC front end's implementations: "native" (engine._core: HTTP/2 on libnghttp2,
# engine/server/grpc_native.py) or "grpcio" (grpc.aio, engine/server/grpc_front.py)
GRPC_IMPLS = ("native", "grpcio")


def default_grpc_impl() -> str:
    """IGE_GRPC_IMPL, else native."""
    return os.environ.get("IGE_GRPC_IMPL") or "native"


# What the HTTP front end keeps for itself besides KServe's /readyz (docs/semantics.md,
# "Paths"): "engine" (health, metrics, /v2/models/... endpoints) or "kserve" (none:
# every other path and method runs the graph, as in KServe's router).
RESERVED_PATHS = ("engine", "kserve")


@dataclasses.dataclass
class ServeOptions:
    host: str = "0.0.0.0"
    http_port: int = 8080
    # gRPC front end (inference.GRPCInferenceService): None disables it, 0 picks a free
    # port (tests); `ige serve --grpc-port` defaults to 8081 and maps 0 to None
    grpc_port: int | None = None
    workers: int = 1
    drain_seconds: float = KSERVE_DRAIN_SECONDS
    # KServe's router reads any body (io.ReadAll); a bound keeps one client from taking
    # the router's memory. Go's server limits the request head to 1 MiB
    # (http.DefaultMaxHeaderBytes) and does not count header lines.
    max_body_size: int = 64 * 1024 * 1024
    # largest gRPC request message; None: max_body_size, so that both front ends
    # accept the same payloads
    max_grpc_message_size: int | None = None
    # which gRPC front end (GRPC_IMPLS), and TLS for it (PEM files; native only)
    grpc_impl: str = dataclasses.field(default_factory=default_grpc_impl)
    grpc_tls_cert: str | None = None
    grpc_tls_key: str | None = None
    max_header_size: int = 1024 * 1024
    max_headers: int = 1000
    access_log: bool = False
    reserved_paths: str = "engine"
    policy: Policy = dataclasses.field(default_factory=Policy)
    # OpenTelemetry tracing (engine.tracing.from_env), None: off; each worker runs its
    # own tracer and export thread
    tracing: object = None
    # hot reload: ``reload_source()`` loads the graph and its Policy again (from their
    # files), for SIGHUP and ``watch_files``; None: the graph cannot be reloaded
    reload_source: object = None
    # files whose change (mtime, size, inode; polled every watch_interval s) reloads
    watch_files: tuple = ()
    watch_interval: float = 0.5
    # HTTPS on the HTTP port (engine.server.tls.TlsConfig), None: plain HTTP
    tls: object = None
    # Kubernetes token auth of graph requests (engine.server.auth.AuthConfig), None: off
    auth: object = None
    # A worker that dies within quick_crash_seconds of its start is restarted after a
    # delay that doubles from restart_delay (up to max_restart_delay); after
    # max_quick_crashes such deaths in a row the router stops and exits non-zero, as a
    # container whose workers cannot run should (the kubelet then backs off itself).
    max_quick_crashes: int = 5
    quick_crash_seconds: float = 10.0
    restart_delay: float = 0.5
    max_restart_delay: float = 8.0

    def __post_init__(self):
        if self.reserved_paths not in RESERVED_PATHS:
            raise GraphSpecError(f"reserved paths {self.reserved_paths!r} (--reserved-paths, "
                                 f"IGE_RESERVED_PATHS): expected one of {', '.join(RESERVED_PATHS)}")
        if self.grpc_impl not in GRPC_IMPLS:
            raise GraphSpecError(f"gRPC implementation {self.grpc_impl!r} (--grpc-impl, IGE_GRPC_IMPL): "
                                 f"expected one of {', '.join(GRPC_IMPLS)}")
        if (self.grpc_tls_cert is None) != (self.grpc_tls_key is None):
            raise GraphSpecError("--grpc-tls-cert and --grpc-tls-key go together")
        if self.grpc_tls_cert is not None and self.grpc_impl != "native":
            raise GraphSpecError("gRPC TLS (--grpc-tls-cert) needs the native gRPC front end")


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(4096)
    except OSError as e:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


class RouterInstance:
    """One worker: plan, app and HTTP server in the running loop."""

    def __init__(self, graph, options: ServeOptions, sock: socket.socket):
        self.graph = graph
        self.options = options
        self.sock = sock
        self.plan = graph.compile(policy=options.policy)
        self.app = _core.GraphApp(self.plan.compiled, self.plan.propagation,
                                  kserve_paths=options.reserved_paths == "kserve",
                                  v2_front=v2_front)
        self.app.http_client = self.plan.http_client
        self.app.graph_page = render_graph_page(self.plan.compiled)
        if options.access_log:
            self.app.enable_access_log(logging.getLogger("engine.access"))
        steps = logging.getLogger("engine.steps")
        if steps.isEnabledFor(logging.DEBUG):
            _core.set_step_tracing(steps)
        # failed step calls are logged at INFO (4xx) or WARNING; above that, no records
        # and no clock reads per step
        _core.set_step_failure_log(steps if steps.isEnabledFor(logging.WARNING) else None)
        timeouts = self.plan.timeouts
        self.http = _core.HttpServer(
            self.app,
            max_body_size=options.max_body_size,
            max_header_size=options.max_header_size,
            max_headers=options.max_headers,
            read_timeout=float(timeouts.server_read),
            write_timeout=float(timeouts.server_write),
            idle_timeout=float(timeouts.server_idle),
        )
        self.server = None
        self.grpc = None
        self.tracing = None
        self.stopping = asyncio.Event()
        self.reloading = None       # the reload in progress (a Task), or None
        self.watcher = None
        self.certs = None           # the CertReloader with TLS on
        self.cert_watcher = None
        self.grpc_certs = None      # the gRPC port's CertReloader with TLS on it
        self.authorizer = None      # the KubeAuthorizer with --enable-auth
        if options.auth is not None:
            from .auth import KubeAuthorizer
            self.authorizer = KubeAuthorizer(options.auth)
            self.app.authorizer = self.authorizer.check

    async def start(self):
        loop = asyncio.get_running_loop()
        if self.options.tracing is not None:
            from .. import tracing
            self.tracing = tracing.start(self.options.tracing, self.graph.name or "ige")
        if self.options.tls is not None:
            from . import tls
            ctx = tls.server_context(self.options.tls)
            self.certs = tls.CertReloader(ctx, self.options.tls)
            self.server = await loop.create_server(self.http.protocol_factory, sock=self.sock, ssl=ctx,
                                                   ssl_shutdown_timeout=tls.SHUTDOWN_SECONDS)
        else:
            self.server = await loop.create_server(self.http.protocol_factory, sock=self.sock)
        if self.options.watch_files:
            self.watcher = asyncio.ensure_future(self.watch())
        if self.options.grpc_port is not None:
            limit = self.options.max_grpc_message_size
            limit = self.options.max_body_size if limit is None else limit
            try:
                self.grpc = self._grpc_front_end(limit)
                await self.grpc.start()
            except (RuntimeError, OSError, ValueError) as e:  # grpc's "Failed to bind to address ..."
                self._abandon()
                raise ServeError(f"cannot start the gRPC front end on "
                                 f"{self.options.host}:{self.options.grpc_port}: {e}") from None
            except BaseException:
                self._abandon()
                raise
        reloaders = [c for c in (self.certs, self.grpc_certs) if c is not None]
        interval = min((c.config.reload_interval for c in reloaders), default=0)
        if interval > 0:
            self.cert_watcher = asyncio.ensure_future(self._watch_certs(reloaders, interval))
        for w in self.plan.warnings:
            log.warning(w)

    def request_reload(self):
        """Load, validate and compile the graph again and swap it in (SIGHUP): at
        most one reload runs; a request for one while it runs reloads again after."""
        if self.options.reload_source is None:
            log.warning("reload requested, but the graph has no file to reload from")
            return
        if self.reloading is not None and not self.reloading.done():
            self.reloading.add_done_callback(lambda _: self.request_reload())
            return
        self.reloading = asyncio.ensure_future(self.reload())

    async def reload(self) -> bool:
        """One reload: the new plan is compiled off the loop (a thread), sharing the
        running plan's connection pools, then swapped in; requests already running
        finish on the old plan. An invalid graph or policy changes nothing: logged
        with its field paths, counted in ige_graph_reloads_total{result="error"}."""
        loop = asyncio.get_running_loop()
        old = self.plan
        try:
            graph, policy = await loop.run_in_executor(None, self.options.reload_source)
            plan = await loop.run_in_executor(None, lambda: graph.compile(policy=policy, reuse=old))
        except Exception as e:
            self.app.reload_errors += 1
            fields = {"error": str(e)}
            diagnostics = getattr(e, "diagnostics", None)
            if diagnostics:
                fields["diagnostics"] = [f"{d.path}: {d.severity}: {d.message}" for d in diagnostics]
            log.error("reload failed: the running graph serves on", extra=fields)
            return False
        from .graph_page import render_graph_page
        self.app.swap(plan.compiled, plan.propagation, render_graph_page(plan.compiled))
        self.app.http_client = plan.http_client
        # the old plan's pools are the new plan's: nothing to close; requests running
        # on it hold it until they finish
        self.graph, self.plan = graph, plan
        for w in plan.warnings:
            log.warning(w)
        log.info("reloaded", extra={"graph": graph.name or "", "reloads": self.app.reloads})
        return True

    async def watch(self):
        """Reload when a watched file changes (polled: no inotify needed, and a file
        replaced by rename, as Kubernetes updates a mounted ConfigMap, is seen)."""
        def stamp():
            out = []
            for path in self.options.watch_files:
                try:
                    st = os.stat(path)
                    out.append((st.st_mtime_ns, st.st_size, st.st_ino))
                except OSError:
                    out.append(None)
            return out
        last = stamp()
        while True:
            await asyncio.sleep(self.options.watch_interval)
            now = stamp()
            if now != last:
                last = now
                self.request_reload()

    def _grpc_front_end(self, limit: int):
        """The gRPC front end; TLS with --grpc-tls-cert/--grpc-tls-key, else, under
        --enable-tls, with the HTTP port's certificate (both reloaded when they change)."""
        options = self.options
        if options.grpc_impl == "grpcio":
            from .grpc_front import GrpcFrontEnd
            if options.tls is not None:
                log.warning("--enable-tls: the grpcio gRPC front end serves plain HTTP/2; "
                            "the native one (the default) serves TLS")
            return GrpcFrontEnd(self.app, options.host, options.grpc_port, limit)
        from .grpc_native import NativeGrpcFrontEnd, tls_context
        from .tls import CertReloader, TlsConfig
        files = options.tls
        if options.grpc_tls_cert is not None:
            files = TlsConfig(options.grpc_tls_cert, options.grpc_tls_key,
                              reload_interval=options.tls.reload_interval if options.tls is not None else 5.0)
        tls = None
        if files is not None:
            tls = tls_context(files.cert_file, files.key_file)
            self.grpc_certs = CertReloader(tls, files)
        return NativeGrpcFrontEnd(self.app, options.host, options.grpc_port, limit, tls)

    async def _watch_certs(self, reloaders, interval: float):
        """Poll the certificate files of both ports until cancelled."""
        while True:
            await asyncio.sleep(interval)
            for reloader in reloaders:
                reloader.check()

    def _readiness_changed(self):
        changed = getattr(self.grpc, "readiness_changed", None)
        if changed is not None:
            changed()

    def _abandon(self):
        """Undo a start that failed half-way."""
        self.server.close()
        if self.cert_watcher is not None:
            self.cert_watcher.cancel()
        if self.tracing is not None:
            self.tracing.shutdown(timeout=1.0)

    def request_stop(self):
        self.app.start_draining()
        self._readiness_changed()
        self.stopping.set()

    async def stop(self):
        """Readiness fails at once; after drain_seconds stop accepting, let in-flight
        requests finish, close keep-alive connections, close backend pools."""
        self.app.start_draining()
        if self.watcher is not None:
            self.watcher.cancel()
        if self.reloading is not None and not self.reloading.done():
            await asyncio.wait([self.reloading])
        self._readiness_changed()
        if self.options.drain_seconds > 0:
            log.info("draining", extra={"seconds": self.options.drain_seconds})
            await asyncio.sleep(self.options.drain_seconds)
        self.server.close()
        grpc_stop = None
        if self.grpc is not None:
            # new calls refused now; in-flight ones get GRPC_GRACE_SECONDS
            grpc_stop = asyncio.ensure_future(self.grpc.stop(GRPC_GRACE_SECONDS))
        await self.http.drain(None)
        await self.server.wait_closed()
        if grpc_stop is not None:
            await grpc_stop
        await self.plan.aclose()
        if self.cert_watcher is not None:
            self.cert_watcher.cancel()
        if self.authorizer is not None:
            await self.authorizer.close()
        if self.tracing is not None:
            # the spans of the last requests are exported before the process ends
            await asyncio.get_running_loop().run_in_executor(None, self.tracing.shutdown)


async def serve_in_loop(graph, options: ServeOptions, *, sock=None, ready=None):
    """Serve until SIGTERM/SIGINT (or ``instance.request_stop()``); then drain."""
    loop = asyncio.get_running_loop()
    if sock is None:
        sock = listening_socket(options.host, options.http_port, options.workers > 1)
    instance = RouterInstance(graph, options, sock)
    await instance.start()
    handled = []
    for sig, handler in ((signal.SIGTERM, instance.request_stop), (signal.SIGINT, instance.request_stop),
                         (signal.SIGHUP, instance.request_reload)):
        try:
            loop.add_signal_handler(sig, handler)
            handled.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            # no signal handlers on this loop or thread (an embedding program's own
            # loop, a non-main thread: asyncio raises RuntimeError, uvloop
            # ValueError): the caller stops us with request_stop()
            pass
    host, port = sock.getsockname()[:2]
    scheme = "https" if options.tls is not None else "http"
    log.info("serving", extra={"graph": graph.name or "", "url": f"{scheme}://{host}:{port}",
                               "pid": os.getpid()})
    if instance.grpc is not None:
        log.info("serving gRPC", extra={"port": instance.grpc.port, "pid": os.getpid()})
    if ready is not None:
        ready(instance)
    await instance.stopping.wait()
    log.info("shutdown requested", extra={"pid": os.getpid()})
    try:
        await instance.stop()
    finally:
        # the handlers hold the instance (and its gRPC server): release them with it
        for sig in handled:
            loop.remove_signal_handler(sig)
    log.info("stopped", extra={"pid": os.getpid()})
    return instance


def _run_worker(graph, options: ServeOptions, sock) -> int:
    uvloop.run(serve_in_loop(graph, options, sock=sock))
    return 0


def _worker_main(graph, options: ServeOptions, sock) -> int:
    """A forked worker's whole life: its exit status, never an exception."""
    try:
        return _run_worker(graph, options, sock)
    except ServeError as e:
        log.error("worker cannot serve", extra={"pid": os.getpid(), "error": str(e)})
    except BaseException:
        log.exception("worker failed", extra={"pid": os.getpid()})
    return 1


class _Supervisor:
    """Forked workers sharing the port through SO_REUSEPORT: restarted with
    exponential backoff when they die, stopped together on SIGTERM/SIGINT."""

    def __init__(self, graph, options: ServeOptions):
        self.graph = graph
        self.options = options
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (slot, start time)
        self.pending: list[tuple[float, int]] = []  # (due time, slot) of restarts
        self.quick_crashes = 0
        self.stopping = False
        self.status = 0

    def spawn(self, slot: int) -> None:
        sock = listening_socket(self.options.host, self.options.http_port, True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                # until the worker's loop handles it: a reload sent while it starts
                # must not end it
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                code = _worker_main(self.graph, self.options, sock)
            finally:
                os._exit(code)
        sock.close()
        self.children[pid] = (slot, time.monotonic())

    def forward(self, signum, frame) -> None:
        self.stopping = True
        self.kill_all(signum)

    def kill_all(self, signum) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def on_death(self, pid: int, code: int) -> None:
        slot, started = self.children.pop(pid)
        if self.stopping:
            if code != 0 and self.status == 0:
                self.status = 1
            return
        opts = self.options
        lived = time.monotonic() - started
        self.quick_crashes = self.quick_crashes + 1 if lived < opts.quick_crash_seconds else 1
        if self.quick_crashes >= opts.max_quick_crashes:
            log.error("workers keep dying; stopping", extra={
                "pid": pid, "status": code, "crashes": self.quick_crashes})
            self.stopping = True
            self.status = 3
            self.kill_all(signal.SIGTERM)
            return
        delay = min(opts.max_restart_delay, opts.restart_delay * 2 ** (self.quick_crashes - 1))
        log.error("worker died; restarting", extra={
            "pid": pid, "status": code, "lived_seconds": round(lived, 3),
            "crashes": self.quick_crashes, "restart_in_seconds": delay})
        self.pending.append((time.monotonic() + delay, slot))

    def _reap(self) -> int:
        """Wait for a worker to die, or for the next restart to fall due: the dead
        worker's pid, or 0."""
        if not self.pending or self.stopping:
            pid, status = os.wait()
        else:
            # poll, so that restarts happen on time and SIGTERM cuts a backoff short
            pid, status = os.waitpid(-1, os.WNOHANG) if self.children else (0, 0)
            if pid == 0:
                due = min(d for d, _ in self.pending)
                time.sleep(min(0.05, max(0.0, due - time.monotonic())))
                now = time.monotonic()
                for item in [p for p in self.pending if p[0] <= now]:
                    self.pending.remove(item)
                    self.spawn(item[1])
                return 0
        if pid in self.children:
            self.on_death(pid, os.waitstatus_to_exitcode(status))
        return pid

    def forward_reload(self, signum, frame) -> None:
        """SIGHUP: every worker reloads on its own."""
        self.kill_all(signal.SIGHUP)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.forward)
        signal.signal(signal.SIGINT, self.forward)
        signal.signal(signal.SIGHUP, self.forward_reload)
        try:
            for slot in range(self.options.workers):
                self.spawn(slot)
            while self.children or (self.pending and not self.stopping):
                try:
                    self._reap()
                except ChildProcessError:
                    break
        except BaseException:
            # the parent failed (no port for a new worker): take the workers with it
            self.kill_all(signal.SIGKILL)
            for pid in list(self.children):
                os.waitpid(pid, 0)
            raise
        return self.status


def serve(graph, options: ServeOptions) -> int:
    """Run the router in this process (workers == 1) or in N forked workers that
    share the port through SO_REUSEPORT and are stopped together. Returns the exit
    status: 0 after a clean stop, 3 when workers kept crashing."""
    if options.workers <= 1:
        return _run_worker(graph, options, None)
    return _Supervisor(graph, options).run()
