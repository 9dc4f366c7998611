"""HTTPS on the router's HTTP port (``--enable-tls``), as Open Data Hub's router serves
it, with the certificate reloaded when its files change (docs/security.md)."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import ssl

from ..errors import ServeError

log = logging.getLogger("engine.server")

# Where Open Data Hub's controller mounts the service's serving-cert secret, and where
# its router reads it (ListenAndServeTLS)
DEFAULT_CERT = "/etc/tls/private/tls.crt"
DEFAULT_KEY = "/etc/tls/private/tls.key"
# How long a closing connection waits for the client's close_notify before it is cut.
# asyncio's default (30 s) keeps every connection whose client does not answer one
# (many just close their socket) open that long, and holds a stop for as long; Go's
# server sends its close_notify and closes at once.
SHUTDOWN_SECONDS = 1.0


@dataclasses.dataclass
class TlsConfig:
    """The certificate chain and key files; ``reload_interval`` seconds between polls
    of them (0: never reloaded)."""
    cert_file: str = DEFAULT_CERT
    key_file: str = DEFAULT_KEY
    reload_interval: float = 5.0


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """The HTTP port's context: TLS 1.2 at least (KServe's router since PR #5790),
    ALPN http/1.1 (the port speaks HTTP/1.1 only; a client offering just h2 gets no
    ALPN answer and may fall back), the configured certificate loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(config.cert_file, config.key_file)
    except (OSError, ssl.SSLError) as e:
        raise ServeError(f"--enable-tls: cannot load the certificate {config.cert_file} "
                         f"and key {config.key_file}: {e}") from None
    return ctx


def _stamp(paths) -> list:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append(None)
    return out


class CertReloader:
    """Loads the certificate again into the serving context when its files change.

    The same SSLContext gets the new chain: handshakes from then on present it, and
    connections already established keep the one they began with, so that a rotation
    (OpenShift's service CA renews the secret, the kubelet swaps the mounted files)
    drops nothing. A pair that does not load (a key that does not match its
    certificate, caught between two file updates) is retried at the next poll, and the
    old certificate serves meanwhile."""

    def __init__(self, ctx: ssl.SSLContext, config: TlsConfig):
        self.ctx = ctx
        self.config = config
        self.reloads = 0
        self.errors = 0
        self.last = _stamp((config.cert_file, config.key_file))

    def check(self) -> bool:
        """Reload if the files changed since the last load; True when it did."""
        now = _stamp((self.config.cert_file, self.config.key_file))
        if now == self.last:
            return False
        try:
            self.ctx.load_cert_chain(self.config.cert_file, self.config.key_file)
        except (OSError, ssl.SSLError) as e:
            self.errors += 1
            log.warning("certificate reload failed: the old certificate serves on",
                        extra={"cert": self.config.cert_file, "error": str(e)})
            return False
        self.last = now
        self.reloads += 1
        log.info("certificate reloaded", extra={"cert": self.config.cert_file})
        return True

    async def run(self):
        """Poll until cancelled."""
        while True:
            await asyncio.sleep(self.config.reload_interval)
            self.check()
