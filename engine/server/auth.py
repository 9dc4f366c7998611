"""Kubernetes token auth for graph requests (``--enable-auth``), as Open Data Hub's
router does it: a TokenReview of the request's bearer token, then a
SubjectAccessReview of ``get`` on the InferenceGraph for the reviewed user.

Where it does better than that router (docs/security.md): the user's groups, uid and
extra go into the SubjectAccessReview (access granted through a group works);
decisions are cached for a few seconds under a SHA-256 of the token, never the token;
one keep-alive client serves every review; concurrent requests with the same token
share one review; a slow or failing API server answers 503 within ``timeout``.

The authorizer plugs into GraphApp (``app.authorizer``): called with the request's
Authorization header value (bytes, or None), it returns None (allowed) or a refusal
``(status, headers, body)`` at once when the decision is known, else an awaitable of
one of them.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import logging
import os
import ssl
import time

import orjson

from .. import _core
from ..errors import GraphSpecError, UpstreamError

log = logging.getLogger("engine.auth")

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
REASON = b"X-Forbidden-Reason"
_BEARER = b"Bearer "

# The refusals and their reasons, word for word Open Data Hub's router's
NO_CREDENTIALS = (401, [(REASON, b"No credentials were provided")], b"")
NOT_BEARER = (401, [(REASON, b"Only Bearer tokens are supported")], b"")
UNAUTHENTICATED = b"The provided token is unauthenticated"
NOT_ALLOWED = b"Access to the InferenceGraph is not allowed"
# The API server failed or did not answer in time: the decision is unknown, and a
# client should retry (the fork answers 500)
UNAVAILABLE = (503, [], b"")


@dataclasses.dataclass
class AuthConfig:
    """Where the API server is and what the reviews ask. The in-cluster defaults
    (KUBERNETES_SERVICE_HOST/PORT, the service account's files) can be pointed
    elsewhere by env: IGE_KUBE_API (a base URL), IGE_KUBE_TOKEN_FILE,
    IGE_KUBE_CA_FILE, IGE_KUBE_NAMESPACE_FILE."""
    graph_name: str
    api_url: str = ""
    token_file: str = SERVICE_ACCOUNT_DIR + "/token"
    ca_file: str = SERVICE_ACCOUNT_DIR + "/ca.crt"
    namespace_file: str = SERVICE_ACCOUNT_DIR + "/namespace"
    allow_ttl: float = 10.0     # seconds an allowed token stays allowed
    deny_ttl: float = 5.0       # seconds a refused token stays refused
    cache_size: int = 10000     # tokens remembered; the least recently used go first
    timeout: float = 5.0        # bound on both reviews of a token together

    @classmethod
    def from_env(cls, graph_name: str, env=None, **fields) -> "AuthConfig":
        """The in-cluster configuration, with the IGE_KUBE_* overrides of ``env``."""
        env = os.environ if env is None else env
        api = env.get("IGE_KUBE_API", "")
        if not api:
            host = env.get("KUBERNETES_SERVICE_HOST", "")
            port = env.get("KUBERNETES_SERVICE_PORT", "443")
            if not host:
                raise GraphSpecError("--enable-auth: no Kubernetes API server: "
                                     "KUBERNETES_SERVICE_HOST is not set (nor IGE_KUBE_API)")
            api = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
        return cls(graph_name=graph_name, api_url=api.rstrip("/"),
                   token_file=env.get("IGE_KUBE_TOKEN_FILE", SERVICE_ACCOUNT_DIR + "/token"),
                   ca_file=env.get("IGE_KUBE_CA_FILE", SERVICE_ACCOUNT_DIR + "/ca.crt"),
                   namespace_file=env.get("IGE_KUBE_NAMESPACE_FILE", SERVICE_ACCOUNT_DIR + "/namespace"),
                   **fields)


def _read(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise GraphSpecError(f"--enable-auth: cannot read the {what} {path}: "
                             f"{e.strerror or e}") from None


class KubeAuthorizer:
    """GraphApp's authorizer for one InferenceGraph (the module docstring says how)."""

    def __init__(self, config: AuthConfig):
        if not config.graph_name:
            raise GraphSpecError("--enable-auth needs --inferencegraph-name: the "
                                 "InferenceGraph whose 'get' permission is checked")
        self.config = config
        # the pod's namespace does not change: read once, at start (the fork reads
        # the file on every request)
        self.namespace = _read(config.namespace_file, "namespace file")
        _read(config.token_file, "service account token")
        try:
            ctx = ssl.create_default_context(cafile=config.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise GraphSpecError(f"--enable-auth: cannot load the API server's CA "
                                 f"{config.ca_file}: {e}") from None
        self.client = _core.HttpClient(max_connections_per_host=16, ssl_context=ctx)
        base = config.api_url
        self.token_reviews = _core.Endpoint(base + "/apis/authentication.k8s.io/v1/tokenreviews")
        self.access_reviews = _core.Endpoint(base + "/apis/authorization.k8s.io/v1/subjectaccessreviews")
        # SHA-256 of "Bearer <token>" -> (expiry on the monotonic clock, None or a refusal)
        self.cache: collections.OrderedDict[bytes, tuple] = collections.OrderedDict()
        # the same key -> the review in flight for it
        self.reviews: dict[bytes, asyncio.Task] = {}
        self.api_calls = 0
        self.misses = 0             # checks that waited for a review (shared or not)
        self.check = self._checker()

    def __call__(self, authorization):
        """``check(authorization)``: GraphApp calls ``check`` itself."""
        return self.check(authorization)

    def _checker(self):
        """The per-request check: the cache's and the clock's methods bound once, as
        the cached path is one hash and one lookup."""
        cache_get, to_end, now = self.cache.get, self.cache.move_to_end, time.monotonic
        sha256, bearer, slow = hashlib.sha256, _BEARER, self._slow

        def check(authorization):
            if not authorization:
                return NO_CREDENTIALS
            if not authorization.startswith(bearer):
                return NOT_BEARER
            # the whole header value is hashed: no copy of the token to slice out first
            key = sha256(authorization).digest()
            entry = cache_get(key)
            if entry is not None and entry[0] > now():
                to_end(key)
                return entry[1]
            return slow(key, authorization)
        return check

    def _slow(self, key: bytes, authorization: bytes):
        """An awaitable of the decision: the review in flight for this token, else a new one."""
        self.cache.pop(key, None)
        self.misses += 1
        review = self.reviews.get(key)
        if review is None:
            review = asyncio.get_running_loop().create_task(self.review(key, authorization[7:]))
            self.reviews[key] = review
        # each waiter has its own future: a client that hangs up cancels its wait, not
        # the review the others share
        return asyncio.shield(review)

    async def review(self, key: bytes, token: bytes):
        """The decision for ``token``, cached under ``key`` unless the API server failed."""
        try:
            try:
                async with asyncio.timeout(self.config.timeout):
                    decision, ttl = await self.decide(token)
            except Exception as e:  # unreachable, timed out, an answer not a review's
                log.warning("Kubernetes API server review failed: request refused with 503",
                            extra={"error": str(e) or type(e).__name__, "api": self.config.api_url})
                return UNAVAILABLE
            if decision is not None:
                # once per review, not per request: a refused token is seen in the log
                # at most once per deny TTL
                log.info("request refused", extra={
                    "status": decision[0], "reasons": [v.decode("utf-8", "replace") for _, v in decision[1]]})
            if ttl > 0:
                self.cache[key] = (time.monotonic() + ttl, decision)
                while len(self.cache) > self.config.cache_size:
                    self.cache.popitem(last=False)
            return decision
        finally:
            del self.reviews[key]

    async def decide(self, token: bytes):
        """(None or a refusal, seconds to keep it); raises when the API server fails."""
        review = await self.post(self.token_reviews, {
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": {"token": token.decode("latin-1")}})
        status = review.get("status") or {}
        if status.get("error"):
            return (401, [(REASON, _header_text(status["error"]))], b""), self.config.deny_ttl
        if not status.get("authenticated"):
            return (401, [(REASON, UNAUTHENTICATED)], b""), self.config.deny_ttl
        user = status.get("user") or {}
        spec = {
            "resourceAttributes": {
                "namespace": self.namespace, "verb": "get", "group": "serving.kserve.io",
                "resource": "inferencegraphs", "name": self.config.graph_name},
            "user": user.get("username", ""),
        }
        # what the fork leaves out: without them, access granted to a group the user
        # is in is refused
        for field in ("groups", "uid", "extra"):
            if user.get(field):
                spec[field] = user[field]
        access = await self.post(self.access_reviews, {
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec})
        status = access.get("status") or {}
        if status.get("allowed") is True:
            return None, self.config.allow_ttl
        headers = [(REASON, NOT_ALLOWED)]
        for field in ("reason", "evaluationError"):
            if status.get(field):
                headers.append((REASON, _header_text(status[field])))
        return (401, headers, b""), self.config.deny_ttl

    async def post(self, ep, doc) -> dict:
        """POST ``doc`` to the API server as the router's service account."""
        # re-read each time: the kubelet rotates a projected token in place
        sa_token = _read(self.config.token_file, "service account token").strip()
        self.api_calls += 1
        resp = await self.client.request(ep, orjson.dumps(doc), [
            (b"Authorization", b"Bearer " + sa_token.encode("latin-1")),
            (b"Content-Type", b"application/json"), (b"Accept", b"application/json")],
            self.config.timeout)
        if not 200 <= resp.status <= 299:
            raise UpstreamError(f"{ep.url}: HTTP {resp.status}: {bytes(resp.body)[:200]!r}")
        out = orjson.loads(resp.body)
        if not isinstance(out, dict):
            raise ValueError(f"{ep.url}: not a JSON object")
        return out

    async def close(self):
        """Stop the reviews in flight and close the client."""
        for task in list(self.reviews.values()):
            task.cancel()
        await self.client.close()


def _header_text(text) -> bytes:
    """A reason from the API server as one header value (no line breaks)."""
    return " ".join(str(text).split()).encode("utf-8", "replace")
