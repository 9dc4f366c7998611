"""HTTP v2 backends: a step URL ending in ``/v2/models/<model>[/versions/<v>]/infer``.

A bytes body holding a v2 JSON request goes exactly as to any HTTP model, through the
same pooled client, and the answer stays bytes: a pure-JSON graph is untouched. An
``InferRequest`` / ``InferResponse`` body, or a v2 JSON response (a previous step's
answer under ``$response``, whose outputs become inputs), is sent with the binary
tensor extension (all inputs binary, ``binary_data_output`` asked for), and the answer
parsed into an ``InferResponse`` whose tensors are views of the received body.
"""
from __future__ import annotations

import re

from .. import _core
from ..bridge import as_request, error_body, header_value
from ..errors import BadRequestError, UpstreamError
from ..oip import HEADER_LENGTH, InferResponse

V2_INFER_PATH = re.compile(r"/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
_HL = HEADER_LENGTH.encode()
_HL_LOWER = HEADER_LENGTH.lower().encode()
_OCTETS = (b"Content-Type", b"application/octet-stream")


def v2_model_of(path: str):
    """(model, version) when ``path`` is a v2 infer path, else None."""
    m = V2_INFER_PATH.search(path)
    return (m.group(1), m.group(2) or "") if m else None


class V2HttpBackend:
    """One v2 infer URL, for what the plain HttpBackend does not take (see module doc)."""

    def __init__(self, url: str, model: str, version: str, client, endpoint):
        self.url = url
        self.model = model
        self.version = version
        self.client = client
        self.endpoint = endpoint

    def __call__(self, body, ctx):
        try:
            req = as_request(body, self.model, self.version)
            added = "binary_data_output" not in req.parameters
            req.parameters = {**req.parameters, "binary_data_output": True}
            buffers, header_length = req.to_http(binary=True)
        except BadRequestError as e:
            return _core.StepResult(400, error_body(f"{self.url}: {e}"))
        headers = [h for h in ctx.headers if h[0].lower() not in (b"content-type", _HL_LOWER)]
        headers.append(_OCTETS)
        headers.append((_HL, str(header_length).encode()))
        # the client writes the header and the tensors' own buffers (writelines): no join
        pending = self.client.request(self.endpoint, buffers, headers,
                                      ctx.timeout if ctx.timeout > 0 else None)
        return self._answer(pending, added)

    async def _answer(self, pending, added: bool):
        resp = await pending
        if not 200 <= resp.status <= 299:
            return _core.StepResult(resp.status, resp.body)
        hl = header_value(resp.headers, _HL_LOWER)
        try:
            out = InferResponse.from_http(resp.body, int(hl) if hl is not None else None)
        except (BadRequestError, ValueError) as e:
            raise UpstreamError(f'Post "{self.url}": invalid v2 response: {e}',
                                url=self.url) from None
        if added:
            # transport, asked for by the router: a model echoing it must not leak it
            out.parameters.pop("binary_data_output", None)
        return _core.StepResult(resp.status, out)


def make_v2_backend(url: str, model: str, version: str, client):
    endpoint = _core.Endpoint(url)
    plain = _core.HttpBackend(endpoint, client)
    return _core.DelegateBackend(V2HttpBackend(url, model, version, client, endpoint), url, plain)
