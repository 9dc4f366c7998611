"""Process and loop orchestration for the router."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import socket
import sys

import uvloop

from .. import _core
from .. import bridge as _bridge  # noqa: F401  binds the v2 HTTP endpoints and bridging
from ..compiler import Policy

log = logging.getLogger("engine.server")

# KServe's router sleeps this long after SIGTERM (readiness failing) before it stops
# accepting connections, so that load balancers take the pod out first.
KSERVE_DRAIN_SECONDS = 30.0
# In-flight gRPC calls get this long after the listener closes before they are cancelled
GRPC_GRACE_SECONDS = 30.0


@dataclasses.dataclass
class ServeOptions:
    host: str = "0.0.0.0"
    http_port: int = 8080
    # gRPC front end (inference.GRPCInferenceService): None disables it, 0 picks a free
    # port (tests); `ige serve --grpc-port` defaults to 8081 and maps 0 to None
    grpc_port: int | None = None
    workers: int = 1
    drain_seconds: float = KSERVE_DRAIN_SECONDS
    max_body_size: int = 64 * 1024 * 1024
    max_header_size: int = 64 * 1024
    max_headers: int = 100
    access_log: bool = False
    policy: Policy = dataclasses.field(default_factory=Policy)


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


class RouterInstance:
    """One worker: plan, app and HTTP server in the running loop."""

    def __init__(self, graph, options: ServeOptions, sock: socket.socket):
        self.graph = graph
        self.options = options
        self.sock = sock
        self.plan = graph.compile(policy=options.policy)
        self.app = _core.GraphApp(self.plan.compiled, self.plan.propagation)
        if options.access_log:
            self.app.enable_access_log(logging.getLogger("engine.access"))
        if logging.getLogger("engine.steps").isEnabledFor(logging.DEBUG):
            _core.set_step_tracing(logging.getLogger("engine.steps"))
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
        self.stopping = asyncio.Event()

    async def start(self):
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self.http.protocol_factory, sock=self.sock)
        if self.options.grpc_port is not None:
            from .grpc_front import GrpcFrontEnd
            self.grpc = GrpcFrontEnd(self.app, self.options.host, self.options.grpc_port)
            try:
                await self.grpc.start()
            except BaseException:
                self.server.close()
                raise
        for w in self.plan.warnings:
            log.warning(w)

    def request_stop(self):
        self.app.start_draining()
        self.stopping.set()

    async def stop(self):
        """Readiness fails at once; after drain_seconds stop accepting, let in-flight
        requests finish, close keep-alive connections, close backend pools."""
        self.app.start_draining()
        if self.options.drain_seconds > 0:
            log.info("draining", extra={"seconds": self.options.drain_seconds})
            await asyncio.sleep(self.options.drain_seconds)
        self.server.close()
        grpc_stop = None
        if self.grpc is not None:
            # new calls refused now; in-flight ones get the HTTP drain's time
            grpc_stop = asyncio.ensure_future(self.grpc.stop(GRPC_GRACE_SECONDS))
        await self.http.drain(None)
        await self.server.wait_closed()
        if grpc_stop is not None:
            await grpc_stop
        await self.plan.aclose()


async def serve_in_loop(graph, options: ServeOptions, *, sock=None, ready=None):
    """Serve until SIGTERM/SIGINT (or ``instance.request_stop()``); then drain."""
    loop = asyncio.get_running_loop()
    if sock is None:
        sock = listening_socket(options.host, options.http_port, options.workers > 1)
    instance = RouterInstance(graph, options, sock)
    await instance.start()
    handled = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, instance.request_stop)
            handled.append(sig)
        except (NotImplementedError, RuntimeError):
            # no signal handlers on this loop or thread (an embedding program's own
            # loop, a non-main thread): the caller stops us with request_stop()
            pass
    host, port = sock.getsockname()[:2]
    log.info("serving", extra={"graph": graph.name or "", "url": f"http://{host}:{port}",
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


def serve(graph, options: ServeOptions) -> int:
    """Run the router in this process (workers == 1) or in N forked workers that
    share the port through SO_REUSEPORT and are stopped together."""
    if options.workers <= 1:
        return _run_worker(graph, options, None)
    children: dict[int, int] = {}

    def spawn(slot: int):
        sock = listening_socket(options.host, options.http_port, True)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _run_worker(graph, options, sock)
            finally:
                os._exit(code)
        sock.close()
        children[pid] = slot

    for slot in range(options.workers):
        spawn(slot)
    stopping = False

    def forward(signum, frame):
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        slot = children.pop(pid, None)
        if slot is None:
            continue
        if not stopping and code != 0:
            log.error("worker died; restarting", extra={"pid": pid, "status": code})
            spawn(slot)
        elif code != 0:
            status = 1
    return status
