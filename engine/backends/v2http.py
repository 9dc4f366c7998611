"""HTTP v2 backends: a step URL ending in ``/v2/models/<model>[/versions/<v>]/infer``.

A bytes body goes exactly as to any HTTP model, unchanged and unlooked at, through the
same pooled client, and the answer comes back as bytes with its status: this is what
KServe's router does for the v2 predictor URLs its controller resolves. An
``InferRequest`` / ``InferResponse`` body (which only exists where KServe's router has
no behaviour: the gRPC and binary v2 front ends, gRPC and in-process steps) is sent
with the binary tensor extension (all inputs binary, ``binary_data_output`` asked for),
and the answer parsed into an ``InferResponse`` whose tensors are views of the
received body. With bridging on (``Policy.v2_bridge``, or a request that entered as a
message) a bytes v2 JSON response, a previous step's answer under ``$response``, is
sent that way too, its outputs as the step's inputs; any other bytes still go as
received. The rule and its table of cases: docs/oip.md, "Bridging".
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


class V2Codec:
    """The two conversions of one v2 infer URL, for _core.V2HttpBackend."""

    def __init__(self, url: str, model: str, version: str):
        self.url = url
        self.model = model
        self.version = version

    def encode(self, body, headers: list):
        """(buffers, headers, binary_added) for ``body``; a StepResult (400) for a body
        that is no v2 message; None: send the bytes as they are."""
        if not _core.body_is_oip(body):
            # sent here only with bridging on and top-level "outputs" without
            # "inputs": a v2 JSON response, unless it does not parse
            try:
                resp = InferResponse.from_json(body)
            except BadRequestError:
                resp = None
            if resp is None or not resp.outputs:
                return None
            body = resp
        try:
            req = as_request(body, self.model, self.version)
            added = "binary_data_output" not in req.parameters
            req.parameters = {**req.parameters, "binary_data_output": True}
            buffers, header_length = req.to_http(binary=True)
        except BadRequestError as e:
            return _core.StepResult(400, error_body(f"{self.url}: {e}"))
        out = [h for h in headers if h[0].lower() not in (b"content-type", _HL_LOWER)]
        out.append(_OCTETS)
        out.append((_HL, str(header_length).encode()))
        return buffers, out, added

    def decode(self, status: int, headers: list, body, added: bool):
        """The step's StepResult for the answer (UpstreamError: not a v2 response)."""
        if not 200 <= status <= 299:
            return _core.StepResult(status, body)
        hl = header_value(headers, _HL_LOWER)
        try:
            out = InferResponse.from_http(body, int(hl) if hl is not None else None)
        except (BadRequestError, ValueError) as e:
            raise UpstreamError(f'Post "{self.url}": invalid v2 response: {e}',
                                url=self.url) from None
        if added:
            # transport, asked for by the router: a model echoing it must not leak it
            out.parameters.pop("binary_data_output", None)
        return _core.StepResult(status, out)


def make_v2_backend(url: str, model: str, version: str, client, bridge_bytes: bool = False):
    """The backend of a v2 infer URL; ``bridge_bytes``: Policy.v2_bridge."""
    codec = V2Codec(url, model, version)
    return _core.V2HttpBackend(_core.Endpoint(url), client, codec.encode, codec.decode, bridge_bytes)
