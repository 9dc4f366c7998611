"""KServe's Istio rule for https steps (cmd/router/main.go, isInIstioMesh; #4031).

When an https step is first called, KServe's router asks ``GET http://localhost:15000``
(Envoy's admin port, 3 s timeout) whether an Istio sidecar runs beside it. A 200 means
it does, and from then on every https step URL is called over plain HTTP (same host,
port and path) so that the sidecar applies the mesh's TLS instead of the router. A
refused connection means no sidecar. Any other failure fails that one call with the
probe's error; the answer "no sidecar" is kept all the same. The probe runs once per
process, and only once a step needs it: the sidecar may not be ready when the
router starts.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import socket
from urllib.parse import urlsplit

from ..errors import UpstreamError

DEFAULT_PROBE_URL = "http://localhost:15000"
PROBE_TIMEOUT = 3.0

log = logging.getLogger("engine.backends.mesh")


class MeshProbe:
    """Whether an Istio sidecar answers 200 at ``url``, asked once.

    ``in_mesh`` is None until the probe has answered, then True or False."""

    def __init__(self, url: str, timeout: float = PROBE_TIMEOUT):
        self.url = url
        self.timeout = timeout
        self.in_mesh: bool | None = None
        self._running: asyncio.Future | None = None

    async def check(self) -> bool:
        """The probe's answer; raises UpstreamError (once) when it failed other than by
        a refused connection."""
        if self.in_mesh is not None:
            return self.in_mesh
        loop = asyncio.get_running_loop()
        if self._running is None or self._running.get_loop() is not loop:
            self._running = loop.create_task(self._probe())
        # shielded: a cancelled caller must not cancel the probe the others wait for
        return await asyncio.shield(self._running)

    async def _probe(self) -> bool:
        try:
            status = await asyncio.wait_for(_get_status(self.url), self.timeout)
        except ConnectionRefusedError:
            status = 0
        except asyncio.CancelledError:
            self._running = None
            raise
        except Exception as e:
            self.in_mesh = False
            self._running = None
            cause = _go_error_text(e, urlsplit(self.url).hostname or "")
            log.warning("Istio sidecar probe failed: https steps use TLS",
                        extra={"probe": self.url, "error": cause})
            raise UpstreamError(f'Get "{self.url}": {cause}', url=self.url) from e
        self.in_mesh = status == 200
        self._running = None
        if self.in_mesh:
            log.info("Istio sidecar found: https steps are called over plain HTTP", extra={"probe": self.url})
        else:
            log.info("no Istio sidecar: https steps use TLS", extra={"probe": self.url, "status": status or None})
        return self.in_mesh


_probes: dict[str, MeshProbe] = {}


def probe_for(url: str) -> MeshProbe:
    """The process's probe of ``url`` (KServe keeps one answer per process)."""
    probe = _probes.get(url)
    if probe is None:
        probe = _probes[url] = MeshProbe(url)
    return probe


def forget_probes() -> None:
    """Drop every probe's answer (tests)."""
    _probes.clear()


def https_plain_twin(url: str) -> str | None:
    """``url`` with its scheme made http when it is https (Go lowercases the scheme),
    else None."""
    scheme = url.partition(":")[0]
    if scheme.lower() != "https":
        return None
    return "http" + url[len(scheme):]


async def _get_status(url: str) -> int:
    """The status of ``GET url`` with Go's client headers; ConnectionRefusedError when
    the host's first address refuses (Go reports the first address's error)."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 80
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    addresses = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    first_error: OSError | None = None
    for family, _, _, _, address in addresses:
        try:
            ip, ip_port = str(address[0]), int(address[1])
            reader, writer = await asyncio.open_connection(ip, ip_port, family=family)
            break
        except OSError as e:
            first_error = first_error or e
    else:
        if isinstance(first_error, ConnectionRefusedError):
            raise first_error
        raise _Dial(first_error or OSError(errno.EHOSTUNREACH, "no address"))
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     "User-Agent: Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n".encode("latin-1"))
        line = await reader.readline()
        if not line:
            raise EOFError
        fields = line.split()
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/") or not fields[1].isdigit():
            raise _Malformed(line.rstrip(b"\r\n").decode("latin-1"))
        return int(fields[1])
    finally:
        writer.close()


class _Dial(Exception):
    """No address of the probe's host took the connection."""

    def __init__(self, cause: OSError):
        super().__init__(cause)
        self.cause = cause


class _Malformed(Exception):
    """The probe's answer is no HTTP response."""


def _go_error_text(e: BaseException, host: str) -> str:
    """The tail of Go's url.Error text for a failed probe."""
    if isinstance(e, asyncio.TimeoutError):
        return "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
    if isinstance(e, EOFError):
        return "EOF"
    if isinstance(e, _Malformed):
        return f'net/http: HTTP/1.x transport connection broken: malformed HTTP response "{e.args[0]}"'
    if isinstance(e, socket.gaierror):
        return f"dial tcp: lookup {host}: no such host"
    if isinstance(e, _Dial):
        return f"dial tcp: connect: {(e.cause.strerror or str(e.cause)).lower()}"
    if isinstance(e, OSError):
        return f"read: {(e.strerror or str(e)).lower()}"
    return str(e) or type(e).__name__
