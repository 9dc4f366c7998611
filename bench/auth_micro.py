"""Micro-benchmark: the cached --enable-auth check per request (the authorizer call
GraphApp makes before a graph request), against a fake API server on loopback.

    PYTHONPATH=. python -m bench.auth_micro
"""
import asyncio, os, sys, time
from engine.server.auth import KubeAuthorizer
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from kubekit import FakeKubeApi
import tempfile
tok = b"Bearer " + b"e" * 900   # a service account JWT is about 900 bytes
async def main():
    """Three runs of 200000 cached checks of one token."""
    d = tempfile.mkdtemp()
    kube = FakeKubeApi(d, users={tok[7:].decode(): {"username": "a"}}, allowed_users={"a"})
    await kube.start()
    a = KubeAuthorizer(kube.auth_config())
    assert await a(tok) is None
    assert a(tok) is None
    n = 200000
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            a(tok)
        print(f"cached check, {len(tok)}-byte header: {(time.perf_counter()-t)/n*1e6:.3f} us")
    await a.close(); await kube.close()
asyncio.run(main())
