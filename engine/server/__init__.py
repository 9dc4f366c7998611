"""The standalone router: `ige serve`. HTTP front end on uvloop, N worker
processes sharing the port with SO_REUSEPORT, readiness and graceful drain."""
from .runner import ServeOptions, serve, serve_in_loop

__all__ = ["ServeOptions", "serve", "serve_in_loop"]
