"""--enable-auth: TokenReview then SubjectAccessReview against a fake Kubernetes API
server, refusals as Open Data Hub's router answers them, and what ige does better:
groups passed, decisions cached under a hash, one review per token at a time, a
bounded answer when the API server fails (docs/security.md)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time

import orjson
import pytest

from engine import _core
from engine.errors import GraphSpecError
from engine.server.auth import AuthConfig, KubeAuthorizer

from kubekit import FakeKubeApi
from routerkit import (ModelServer, closed_port, free_port, raw_exchange, running_router,
                       split_response, static)
from tlskit import TestCA

ALICE = {"username": "alice", "uid": "u-1", "groups": ["system:authenticated"]}
BOB = {"username": "bob", "uid": "u-2", "groups": ["ml-team", "system:authenticated"],
       "extra": {"scopes": ["a"]}}
MALLORY = {"username": "mallory", "groups": ["system:authenticated"]}
USERS = {"alice-token": ALICE, "bob-token": BOB, "mallory-token": MALLORY,
         "old-token": "token has expired"}
GRAPH = {"nodes": {"root": {"routerType": "Sequence", "steps": []}}}


def bearer(token):
    return [(b"Authorization", b"Bearer " + token.encode())]


def reasons(r):
    return [v for k, v in r.headers if k.lower() == b"x-forbidden-reason"]


class Setup:
    """A model, the fake API server and a router with auth on, in the test's loop."""

    def __init__(self, tmp_path, reserved_paths="engine", **auth):
        self.tmp_path = tmp_path
        self.reserved_paths = reserved_paths
        self.auth = auth
        self.kube = FakeKubeApi(tmp_path, users=USERS, allowed_users={"alice"},
                                allowed_groups={"ml-team"})

    async def __aenter__(self):
        self.model = await ModelServer(static({"predictions": [1]})).start()
        await self.kube.start()
        doc = {"nodes": {"root": {"routerType": "Sequence", "steps": [{"serviceUrl": self.model.url}]}}}
        self.cm = running_router(doc, reserved_paths=self.reserved_paths,
                                 options={"auth": self.kube.auth_config(**self.auth)})
        self.router = await self.cm.__aenter__()
        self.authorizer = self.router.instance.authorizer
        return self

    async def __aexit__(self, *exc):
        try:
            await self.cm.__aexit__(*exc)
        finally:
            await self.kube.close()
            await self.model.close()

    async def get(self, path, headers=None):
        ep = _core.Endpoint(self.router.url(path))
        # HttpClient posts; the probes answer any method
        return await self.router.client.request(ep, b"{}", headers or [])


def test_allowed_denied_group_granted_and_expired_tokens(loop, tmp_path):
    async def go():
        async with Setup(tmp_path) as s:
            ok = await s.router.post({}, headers=bearer("alice-token"))
            assert (ok.status, orjson.loads(ok.body), reasons(ok)) == (200, {"predictions": [1]}, [])
            # allowed only through the group, which the fork does not pass
            bob = await s.router.post({}, headers=bearer("bob-token"))
            assert bob.status == 200
            spec = s.kube.access_reviews[-1]
            assert (spec["user"], spec["groups"], spec["uid"], spec["extra"]) == (
                "bob", ["ml-team", "system:authenticated"], "u-2", {"scopes": ["a"]})
            denied = await s.router.post({}, headers=bearer("mallory-token"))
            assert (denied.status, bytes(denied.body)) == (401, b"")
            assert reasons(denied) == [b"Access to the InferenceGraph is not allowed",
                                       b'no RBAC policy matched for "mallory"']
            expired = await s.router.post({}, headers=bearer("old-token"))
            assert (expired.status, reasons(expired)) == (401, [b"token has expired"])
            unknown = await s.router.post({}, headers=bearer("who-token"))
            assert (unknown.status, reasons(unknown)) == (401, [b"The provided token is unauthenticated"])
            assert s.kube.bad_callers == 0
            assert len(s.model.requests) == 2
    loop.run(go())


def test_missing_and_ill_formed_authorization_headers(loop, tmp_path):
    async def go():
        async with Setup(tmp_path) as s:
            none = await s.router.post({})
            assert (none.status, reasons(none)) == (401, [b"No credentials were provided"])
            basic = await s.router.post({}, headers=[(b"Authorization", b"Basic YTpi")])
            assert (basic.status, reasons(basic)) == (401, [b"Only Bearer tokens are supported"])
            lower = await s.router.post({}, headers=[(b"authorization", b"bearer alice-token")])
            assert (lower.status, reasons(lower)) == (401, [b"Only Bearer tokens are supported"])
            assert s.kube.total_calls == 0 and not s.model.requests
    loop.run(go())


def test_probes_and_metrics_need_no_token_but_the_graph_page_does(loop, tmp_path):
    async def go():
        async with Setup(tmp_path) as s:
            for path in ("/readyz", "/healthz", "/v2/health/live", "/v2/health/ready"):
                r = await s.get(path)
                assert r.status == 200, path
            raw = await raw_exchange(s.router.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                                    b"Connection: close\r\n\r\n")
            assert split_response(raw)[0] == 200 and b"ige_requests_total" in raw
            assert (await s.get("/graph")).status == 401
            assert (await s.get("/v2/models/graph/infer")).status == 401
            assert s.kube.total_calls == 0
    loop.run(go())


def test_with_kserve_paths_only_readyz_is_open(loop, tmp_path):
    async def go():
        async with Setup(tmp_path, reserved_paths="kserve") as s:
            assert (await s.get("/readyz")).status == 200
            assert (await s.get("/healthz")).status == 401
            assert (await s.get("/healthz", bearer("alice-token"))).status == 200
    loop.run(go())


def test_one_token_under_load_makes_one_review_and_the_cache_holds_no_token(loop, tmp_path):
    async def go():
        async with Setup(tmp_path) as s:
            first = await asyncio.gather(*[s.router.post({}, headers=bearer("alice-token"))
                                           for _ in range(40)])
            assert {r.status for r in first} == {200}
            # concurrent requests shared one review: a TokenReview and a SubjectAccessReview
            assert s.kube.calls == {"tokenreviews": 1, "subjectaccessreviews": 1}
            misses = s.authorizer.misses
            for _ in range(40):
                assert (await s.router.post({}, headers=bearer("alice-token"))).status == 200
            # answered from the cache: no API call, no wait
            assert s.kube.total_calls == 2 and s.authorizer.misses == misses
            denied = await asyncio.gather(*[s.router.post({}, headers=bearer("mallory-token"))
                                            for _ in range(20)])
            assert {r.status for r in denied} == {401}
            assert s.kube.total_calls == 4
            keys = list(s.authorizer.cache)
            assert keys == [hashlib.sha256(b"Bearer alice-token").digest(),
                            hashlib.sha256(b"Bearer mallory-token").digest()]
            assert not any(b"token" in k for k in keys)
    loop.run(go())


def test_a_zero_ttl_reviews_every_request(loop, tmp_path):
    async def go():
        async with Setup(tmp_path, allow_ttl=0.0) as s:
            for _ in range(3):
                assert (await s.router.post({}, headers=bearer("alice-token"))).status == 200
            assert s.kube.total_calls == 6 and not s.authorizer.cache
    loop.run(go())


def test_the_cache_is_bounded(loop, tmp_path):
    async def go():
        async with Setup(tmp_path, cache_size=2) as s:
            for token in ("alice-token", "bob-token", "mallory-token"):
                await s.router.post({}, headers=bearer(token))
            assert list(s.authorizer.cache) == [hashlib.sha256(b"Bearer bob-token").digest(),
                                                hashlib.sha256(b"Bearer mallory-token").digest()]
    loop.run(go())


def test_an_api_server_that_is_down_answers_503_at_once(loop, tmp_path):
    async def go():
        async with Setup(tmp_path) as s:
            s.authorizer.token_reviews = _core.Endpoint(
                f"https://127.0.0.1:{closed_port()}/apis/authentication.k8s.io/v1/tokenreviews")
            r = await s.router.post({}, headers=bearer("alice-token"))
            assert (r.status, bytes(r.body)) == (503, b"")
            # not cached: the next request asks again
            assert not s.authorizer.cache
    loop.run(go())


def test_a_slow_api_server_answers_503_within_the_bound_and_stalls_nobody(loop, tmp_path):
    async def go():
        async with Setup(tmp_path, timeout=30.0) as s:
            assert (await s.router.post({}, headers=bearer("alice-token"))).status == 200
            s.kube.hold = asyncio.get_running_loop().create_future()
            slow = asyncio.ensure_future(s.router.post({}, headers=bearer("bob-token")))
            for _ in range(100):
                if s.authorizer.reviews:
                    break
                await asyncio.sleep(0.01)
            # while bob's review hangs, alice's cached token is served
            for _ in range(5):
                assert (await s.router.post({}, headers=bearer("alice-token"))).status == 200
                assert s.authorizer.reviews and not slow.done()
            s.kube.hold.set_result(None)
            assert (await asyncio.wait_for(slow, 5)).status == 200
            # an API server that does not answer within the bound: 503, not cached
            s.authorizer.config.timeout = 0.2
            s.kube.hold = asyncio.get_running_loop().create_future()
            r = await asyncio.wait_for(s.router.post({}, headers=bearer("mallory-token")), 5)
            assert (r.status, bytes(r.body)) == (503, b"")
            assert hashlib.sha256(b"Bearer mallory-token").digest() not in s.authorizer.cache
            s.kube.hold.set_result(None)
    loop.run(go())


def test_a_client_that_hangs_up_does_not_cancel_the_shared_review(loop, tmp_path):
    async def go():
        async with Setup(tmp_path) as s:
            s.kube.hold = asyncio.get_running_loop().create_future()
            first = s.authorizer(b"Bearer alice-token")
            second = s.authorizer(b"Bearer alice-token")
            first.cancel()
            s.kube.hold.set_result(None)
            assert await asyncio.wait_for(second, 5) is None
            assert s.kube.calls["tokenreviews"] == 1
    loop.run(go())


def test_auth_needs_a_graph_name_and_readable_files(tmp_path):
    kube = FakeKubeApi(tmp_path)
    config = kube.auth_config()
    config.graph_name = ""
    with pytest.raises(GraphSpecError, match="--inferencegraph-name"):
        KubeAuthorizer(config)
    config.graph_name = "g"
    config.namespace_file = str(tmp_path / "missing")
    with pytest.raises(GraphSpecError, match="namespace file"):
        KubeAuthorizer(config)
    with pytest.raises(GraphSpecError, match="KUBERNETES_SERVICE_HOST"):
        AuthConfig.from_env("g", env={})
    assert AuthConfig.from_env("g", env={"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                                         "KUBERNETES_SERVICE_PORT": "443"}).api_url == "https://10.0.0.1:443"
    assert AuthConfig.from_env("g", env={"KUBERNETES_SERVICE_HOST": "fd00::1",
                                         "KUBERNETES_SERVICE_PORT": "443"}).api_url == "https://[fd00::1]:443"


class InThread:
    """A server with async start() and close() on its own loop in a thread, for a
    router subprocess to call."""

    def __init__(self, server):
        import threading
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        return self.server

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class TlsModel(ModelServer):
    """A model served over HTTPS with ``ca``'s certificate."""

    def __init__(self, answer, ca, directory):
        super().__init__(answer)
        self.ca, self.directory = ca, directory

    async def start(self):
        self.http = _core.HttpServer(self._handle)
        self.server = await asyncio.get_running_loop().create_server(
            self.http.protocol_factory, "127.0.0.1", 0, ssl=self.ca.server_context(self.directory))
        self.port = self.server.sockets[0].getsockname()[1]
        return self


def test_the_odh_controller_pod_args_work_unchanged(tmp_path):
    """`ige --enable-tls --graph-json SPEC --enable-auth --inferencegraph-name NAME`
    as Open Data Hub's controller starts its router: HTTPS with the serving cert, an
    https:// model trusted through SSL_CERT_FILE, tokens reviewed by the API server."""
    serving_ca, model_ca = TestCA("serving CA"), TestCA("service CA")
    cert_dir, model_dir = tmp_path / "serving", tmp_path / "model"
    cert_dir.mkdir()
    model_dir.mkdir()
    cert, key = serving_ca.write_pair(cert_dir)
    bundle = model_ca.write(tmp_path / "service-ca.crt")
    kube = FakeKubeApi(tmp_path, users=USERS, allowed_users={"alice"}, graph="my-graph")
    port = free_port()
    with InThread(kube), InThread(TlsModel(static({"predictions": [5]}), model_ca, str(model_dir))) as model:
        spec = {"nodes": {"root": {"routerType": "Sequence", "steps": [
            {"serviceUrl": f"https://127.0.0.1:{model.port}/v1/models/m:predict"}]}}}
        env = dict(os.environ, SSL_CERT_FILE=bundle, **kube.env())
        # the controller's args, then what a test needs to run outside a pod
        args = [sys.executable, "-m", "engine", "--enable-tls", "--graph-json", json.dumps(spec),
                "--enable-auth", "--inferencegraph-name", "my-graph",
                "--http-port", str(port), "--host", "127.0.0.1", "--drain-seconds", "0",
                "--tls-cert", cert, "--tls-key", key]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            answers = asyncio.run(_odh_requests(port, serving_ca, proc))
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=20)
    assert answers["readyz"] == 200, out.decode()
    assert answers["none"] == (401, [b"No credentials were provided"])
    assert answers["alice"] == (200, {"predictions": [5]}), out.decode()
    assert answers["mallory"][0] == 401
    assert kube.calls == {"tokenreviews": 2, "subjectaccessreviews": 2}
    assert proc.returncode == 0, out.decode()


async def _odh_requests(port, ca, proc):
    client = _core.HttpClient(ssl_context=ca.client_context())
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                ready = await client.request(_core.Endpoint(url + "/readyz"), b"")
                break
            except Exception:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                await asyncio.sleep(0.05)
        ep = _core.Endpoint(url + "/v1/models/my-graph:predict")
        none = await client.request(ep, b"{}")
        alice = await client.request(ep, b"{}", bearer("alice-token"))
        mallory = await client.request(ep, b"{}", bearer("mallory-token"))
        return {"readyz": ready.status, "none": (none.status, reasons(none)),
                "alice": (alice.status, orjson.loads(alice.body) if alice.status == 200 else bytes(alice.body)),
                "mallory": (mallory.status, reasons(mallory))}
    finally:
        await client.close()


def test_the_cli_needs_a_graph_name_with_auth(tmp_path, monkeypatch):
    import io
    from engine.cli import main
    kube = FakeKubeApi(tmp_path)
    for name, value in kube.env().items():
        monkeypatch.setenv(name, value)
    err = io.StringIO()
    code = main(["--enable-auth", "--graph-json", '{"nodes":{"root":{"routerType":"Sequence","steps":[]}}}'],
                stdout=io.StringIO(), stderr=err)
    assert code != 0 and "--inferencegraph-name" in err.getvalue()
