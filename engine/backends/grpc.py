"""gRPC backends: ``grpc://host:port/<model>`` steps call
``inference.GRPCInferenceService/ModelInfer`` with the engine's own codec.

Messages travel as raw bytes (identity serializers): the request is encoded by
``engine._core`` straight from the step body's tensors, the response parsed into an
``InferResponse`` whose tensors are views of the received bytes. One grpc.aio channel
per target, shared by every step that names it and created in the running loop on
first use. gRPC statuses become HTTP-like statuses (so Soft/Hard dependencies work as
for HTTP models) with a JSON error body; a target that cannot be reached at all is a
transport failure (``UpstreamError``), as a refused HTTP connection is. Propagated
headers become metadata by gRPC's rules (``engine._core.grpc_metadata``): what gRPC
would refuse is dropped and counted, never a failed call.
"""
from __future__ import annotations

import grpc
import grpc.aio

from .. import _core
from ..bridge import as_request, error_body
from ..errors import BadRequestError, UpstreamError
from ..oip import InferResponse, join
# the URL grammar is the spec's (validation checks it); both names stay importable here
from ..spec.urls import grpc_url_problem, parse_grpc_url  # noqa: F401

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"

STATUS_OF_CODE = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# Message sizes: no limit either way. Answers are as large as the graph's own models
# make them, and HTTP models' answers are read whole too (as KServe's router reads
# them); a request was bounded by the front end or is a model's answer.
#
# Reconnection: calls are fail-fast (grpc's default, no wait_for_ready): on a
# channel in TRANSIENT_FAILURE they fail at once, as a refused HTTP connection does,
# until the next connection attempt succeeds. grpc's default backoff (1 s, x1.6 per
# failed attempt up to 120 s, 20% jitter) would leave a restarted model unused for
# seconds after it is back. Here attempts start 100 ms apart and grow to 800 ms
# (960 ms with jitter); "min reconnect backoff" is grpc's connect timeout, so an
# attempt to a host that does not answer is given up after 1 s, and attempts stay
# under a second apart either way.
CHANNEL_OPTIONS = [("grpc.max_send_message_length", -1),
                   ("grpc.max_receive_message_length", -1),
                   ("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 800),
                   ("grpc.min_reconnect_backoff_ms", 1000)]


class ChannelPool:
    """One grpc.aio channel per target, opened on first use in the running loop."""

    def __init__(self):
        self.channels: dict[str, grpc.aio.Channel] = {}
        self.calls: dict[str, object] = {}

    def model_infer(self, target: str):
        call = self.calls.get(target)
        if call is None:
            channel = grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
            self.channels[target] = channel
            # None serializers: bytes in, bytes out
            call = channel.unary_unary(MODEL_INFER)
            self.calls[target] = call
        return call

    async def aclose(self):
        channels, self.channels, self.calls = self.channels, {}, {}
        for channel in channels.values():
            await channel.close()


class GrpcBackend:
    """ModelInfer on one target and model; the step body is converted with
    ``engine.bridge.as_request`` (a v1 JSON body that is not a v2 request: 400)."""

    def __init__(self, url: str, pool: ChannelPool):
        self.url = url
        self.target, self.model = parse_grpc_url(url)
        self.pool = pool

    def __call__(self, body, ctx):
        try:
            req = as_request(body, self.model)
            payload = join(req.to_grpc())
        except BadRequestError as e:
            return _core.StepResult(400, error_body(f"{self.url}: {e}"))
        return self._call(payload, ctx)

    async def _call(self, payload: bytes, ctx):
        call = self.pool.model_infer(self.target)
        timeout = ctx.timeout if ctx.timeout > 0 else None
        try:
            answer = await call(payload, timeout=timeout, metadata=_core.grpc_metadata(ctx.headers))
        except grpc.aio.AioRpcError as e:
            code = e.code()
            details = e.details() or code.name
            if code == grpc.StatusCode.UNAVAILABLE and _unreachable(e):
                raise UpstreamError(f'ModelInfer "{self.url}": {details}', url=self.url) from None
            return _core.StepResult(STATUS_OF_CODE.get(code, 500),
                                    error_body(f"{code.name}: {details}"))
        try:
            return _core.StepResult(200, InferResponse.from_grpc(answer))
        except BadRequestError as e:
            raise UpstreamError(f'ModelInfer "{self.url}": invalid response: {e}',
                                url=self.url) from None


def _unreachable(e) -> bool:
    # grpc reports a refused or failed connection as UNAVAILABLE from the client
    # itself; a server's own UNAVAILABLE answer has no such debug text
    text = f"{e.details()} {e.debug_error_string()}".lower()
    return ("failed to connect" in text or "connection refused" in text
            or "connect failed" in text or "dns resolution failed" in text)


def make_grpc_backend(url: str, registry):
    """A DelegateBackend for a grpc:// step URL, sharing ``registry``'s channels."""
    pool = getattr(registry, "grpc", None)
    if pool is None:
        pool = registry.grpc = ChannelPool()
    return _core.DelegateBackend(GrpcBackend(url, pool), url)
