"""Micro-benchmark: the cached --enable-auth check per request (the authorizer call
GraphApp makes before a graph request), against a fake API server on loopback.

    PYTHONPATH=. python -m bench.auth_micro
"""
import asyncio, os, sys, time
from engine.server.auth import KubeAuthorizer
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from kubekit import FakeKubeApi
import tempfile
TOKENS = {"service account JWT": b"Bearer " + b"e" * 900,
          "OpenShift OAuth token": b"Bearer sha256~" + b"e" * 43}
async def main():
    """Three runs of 200000 cached checks of each token."""
    d = tempfile.mkdtemp()
    kube = FakeKubeApi(d, users={t[7:].decode(): {"username": "a"} for t in TOKENS.values()},
                       allowed_users={"a"})
    await kube.start()
    a = KubeAuthorizer(kube.auth_config())
    check = a.check     # what GraphApp calls
    n = 200000
    try:
        for name, tok in TOKENS.items():
            assert await check(tok) is None and check(tok) is None
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(n):
                    check(tok)
                print(f"cached check, {name} ({len(tok)}-byte header): "
                      f"{(time.perf_counter() - t) / n * 1e6:.3f} us")
    finally:
        await a.close()
        await kube.close()


asyncio.run(main())
