"""What both gRPC front ends share (engine/server/grpc_front.py on grpc.aio, and the
native one, ext/front/grpc.pyx): the small messages written by hand, so that no
generated protobuf module is registered in the router's process, and the mapping of
a graph's answer to a gRPC status. Imports no grpc module.
"""
from __future__ import annotations

import binascii

import orjson

from ..errors import BadRequestError

__all__ = ["BadRequestError", "grpc_status_for", "parse_name_version", "wire_value"]

# gRPC status codes (grpc.StatusCode's numbers)
OK, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 3, 4, 5
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 8, 9, 12, 13, 14

CODE_OF_STATUS = {
    400: INVALID_ARGUMENT,
    404: NOT_FOUND,
    408: DEADLINE_EXCEEDED,
    429: RESOURCE_EXHAUSTED,
    501: UNIMPLEMENTED,
    503: UNAVAILABLE,
    504: DEADLINE_EXCEEDED,
}


# ---- protobuf wire helpers for the small messages ------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _str_field(num: int, value: str) -> bytes:
    data = value.encode()
    return _varint(num << 3 | 2) + _varint(len(data)) + data if data else b""


def _bool_field(num: int, value: bool) -> bytes:
    return _varint(num << 3) + b"\x01" if value else b""


def _read_varint(buf, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise BadRequestError("truncated varint")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def parse_name_version(buf: bytes) -> tuple[str, str]:
    """Fields 1 (name) and 2 (version) of ModelReadyRequest / ModelMetadataRequest."""
    name = version = ""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n, pos = _read_varint(buf, pos)
            if pos + n > len(buf):
                raise BadRequestError("truncated field")
            if num in (1, 2):
                try:
                    text = bytes(buf[pos:pos + n]).decode()
                except UnicodeDecodeError:
                    raise BadRequestError("name is not UTF-8") from None
                if num == 1:
                    name = text
                else:
                    version = text
            pos += n
        else:
            raise BadRequestError(f"unsupported wire type {wire}")
    if pos != len(buf):
        raise BadRequestError("truncated message")
    return name, version


def grpc_status_for(status: int, cause: str) -> int:
    """The gRPC status code (a number) for a graph answer with HTTP-like ``status``."""
    code = CODE_OF_STATUS.get(status)
    if code is not None:
        return code
    if 400 <= status < 500:
        return FAILED_PRECONDITION
    text = cause.lower()
    if "deadline exceeded" in text or "timeout" in text:
        return DEADLINE_EXCEEDED
    if "connect" in text or "unavailable" in text or ": eof" in text:
        return UNAVAILABLE
    return INTERNAL


def error_text(body) -> str:
    """The reason in a graph's error body (KServe's ``cause`` or a model's ``error``),
    for a gRPC status message."""
    raw = bytes(body)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", "replace")
    if isinstance(doc, dict):
        for key in ("cause", "error", "detail", "message"):
            if isinstance(doc.get(key), str):
                return doc[key]
    return raw.decode("utf-8", "replace")


def wire_value(value) -> bytes:
    """A metadata value as an HTTP header carries it. grpc hands ``-bin`` values as
    the raw bytes; on HTTP/2 they travel base64-encoded, unpadded as gRPC writes them,
    and so they are propagated: the bytes (CR, LF, anything) never reach an HTTP
    backend's head, and a gRPC backend gets them decoded again. Other values are str,
    which grpc decoded as UTF-8 (or Latin-1 when that failed); UTF-8 gives back what
    a client sending non-ASCII text sent. HeaderPropagation.select checks the result."""
    if isinstance(value, bytes):
        return binascii.b2a_base64(value, newline=False).rstrip(b"=")
    return value.encode("utf-8", "surrogatepass")
