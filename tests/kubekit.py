"""Test helper: a fake Kubernetes API server (HTTPS with a test CA) that answers
TokenReview and SubjectAccessReview as the real one does (authentication.k8s.io/v1,
authorization.k8s.io/v1) and counts the calls."""
from __future__ import annotations

import asyncio
import os

import orjson

from engine import _core

from tlskit import TestCA

SA_TOKEN = "router-service-account-token"
JSON = [(b"Content-Type", b"application/json")]


class FakeKubeApi:
    """``users``: token -> TokenReview user ({"username", "groups", "uid", "extra"}),
    or a str: the review's status.error (an expired token). Tokens not in it are not
    authenticated. ``allowed_users``/``allowed_groups``: who may get the graph
    ``graph`` in ``namespace``. ``hold``: an unresolved future the reviews wait on (a
    slow API server), None: answered at once. Every review is recorded."""

    def __init__(self, directory, *, users=None, allowed_users=(), allowed_groups=(),
                 graph="my-graph", namespace="team-a"):
        self.directory = os.path.join(str(directory), "kube")
        os.makedirs(self.directory, exist_ok=True)
        self.ca = TestCA("fake kube CA")
        self.users = dict(users or {})
        self.allowed_users = set(allowed_users)
        self.allowed_groups = set(allowed_groups)
        self.graph = graph
        self.namespace = namespace
        self.hold = None
        self.calls = {"tokenreviews": 0, "subjectaccessreviews": 0}
        self.access_reviews: list[dict] = []
        self.bad_callers = 0
        self.server = self.http = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def files(self) -> dict:
        """The service account's files: token, ca.crt and namespace, as paths."""
        paths = {}
        for name, data in (("token", SA_TOKEN + "\n"), ("ca.crt", self.ca.pem.decode()),
                           ("namespace", self.namespace)):
            path = os.path.join(self.directory, "sa-" + name)
            with open(path, "w") as f:
                f.write(data)
            paths[name] = path
        return paths

    def env(self) -> dict:
        """The IGE_KUBE_* env that points a router here."""
        f = self.files()
        return {"IGE_KUBE_API": self.url, "IGE_KUBE_TOKEN_FILE": f["token"],
                "IGE_KUBE_CA_FILE": f["ca.crt"], "IGE_KUBE_NAMESPACE_FILE": f["namespace"]}

    def auth_config(self, graph=None, **fields):
        from engine.server.auth import AuthConfig
        f = self.files()
        return AuthConfig(graph_name=graph or self.graph, api_url=self.url, token_file=f["token"],
                          ca_file=f["ca.crt"], namespace_file=f["namespace"], **fields)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def handle(self, request):
        kind = request.path.rsplit(b"/", 1)[-1].decode()
        if request.method != b"POST" or kind not in self.calls:
            return _core.HttpResponse(404, b'{"kind":"Status","code":404}', list(JSON))
        self.calls[kind] += 1
        if (b"authorization", b"Bearer " + SA_TOKEN.encode()) not in \
                [(k.lower(), v) for k, v in request.headers]:
            self.bad_callers += 1
            return _core.HttpResponse(401, b'{"kind":"Status","code":401}', list(JSON))
        doc = orjson.loads(request.body)
        answer = self.token_review(doc) if kind == "tokenreviews" else self.access_review(doc)
        if self.hold is not None:
            return self._later(answer)
        return _core.HttpResponse(201, orjson.dumps(answer), list(JSON))

    async def _later(self, answer):
        await self.hold
        return _core.HttpResponse(201, orjson.dumps(answer), list(JSON))

    def token_review(self, doc):
        assert doc["kind"] == "TokenReview" and doc["apiVersion"] == "authentication.k8s.io/v1"
        user = self.users.get(doc["spec"]["token"])
        status = {"authenticated": False, "user": {}}
        if isinstance(user, str):
            status["error"] = user
        elif user is not None:
            status = {"authenticated": True, "user": user, "audiences": ["https://kubernetes.default.svc"]}
        return {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None}, "spec": doc["spec"], "status": status}

    def access_review(self, doc):
        assert doc["kind"] == "SubjectAccessReview" and doc["apiVersion"] == "authorization.k8s.io/v1"
        spec = doc["spec"]
        self.access_reviews.append(spec)
        ra = spec["resourceAttributes"]
        right_object = (ra == {"namespace": self.namespace, "verb": "get", "group": "serving.kserve.io",
                               "resource": "inferencegraphs", "name": self.graph})
        allowed = right_object and (spec.get("user") in self.allowed_users or
                                    bool(self.allowed_groups & set(spec.get("groups") or ())))
        status = {"allowed": allowed}
        if not allowed:
            status["reason"] = f'no RBAC policy matched for "{spec.get("user")}"'
        return {"kind": "SubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": None}, "spec": spec, "status": status}

    async def start(self):
        ctx = self.ca.server_context(self.directory)
        self.http = _core.HttpServer(self.handle)
        self.server = await asyncio.get_running_loop().create_server(
            self.http.protocol_factory, "127.0.0.1", self.port, ssl=ctx)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        if self.hold is not None and not self.hold.done():
            self.hold.cancel()
        self.server.close()
        await self.http.drain(1.0)
        await self.server.wait_closed()
