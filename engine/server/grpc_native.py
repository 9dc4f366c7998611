"""The router's native gRPC front end: ``inference.GRPCInferenceService`` and
``grpc.health.v1.Health`` served by engine._core (HTTP/2 on libnghttp2, ext/h2/;
the services, ext/front/grpc.pyx) on the router's uvloop, with the same answers as
the grpc.aio front end (engine/server/grpc_front.py, ``--grpc-impl grpcio``).
docs/grpc.md describes it.
"""
from __future__ import annotations

import asyncio
import ssl

from .. import __version__, _core
from ..bridge import as_response
from ..oip import InferRequest
from . import grpc_wire


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    """A server TLS context offering only h2 by ALPN, as gRPC requires."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


class NativeGrpcFrontEnd:
    """The gRPC services of one GraphApp; ``start()`` binds, ``stop(grace)`` drains
    (GOAWAY, in-flight calls finish within ``grace`` seconds)."""

    def __init__(self, app, host: str, port: int, max_message_size: int = 64 * 1024 * 1024,
                 tls: ssl.SSLContext | None = None):
        self.app = app
        self.host = host
        self.requested_port = port
        self.tls = tls
        self.handler = _core.GrpcHandler(app, max_message_size, grpc_wire, InferRequest,
                                         as_response, __version__)
        self.h2 = _core.H2Server(self.handler)
        self.server = None
        self.port = 0

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        # SO_REUSEPORT as grpc binds: the workers of `--workers N` share the port
        self.server = await loop.create_server(self.h2.protocol_factory, self.host, self.requested_port,
                                               reuse_address=True, reuse_port=True, backlog=4096,
                                               ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def readiness_changed(self):
        """The app's readiness changed (draining): Health.Watch calls are told."""
        self.handler.readiness_changed()

    async def stop(self, grace: float | None):
        """Refuse new calls and let those in flight finish (at most ``grace`` s)."""
        if self.server is None:
            return
        self.server.close()
        await self.h2.drain(grace)
        await self.server.wait_closed()
