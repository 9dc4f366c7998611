"""A tiny raw HTTP/1.1 client for the bench tests: send bytes, parse answers with httptools."""
from __future__ import annotations

import asyncio
import dataclasses

import httptools


@dataclasses.dataclass
class Answer:
    status: int
    headers: dict  # lower-case name -> value (str)
    body: bytes
    keep_alive: bool


class _Collector:
    def __init__(self):
        self.answers: list[Answer] = []
        self._headers: dict = {}
        self._body: list = []
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self):
        self._headers, self._body = {}, []

    def on_header(self, name: bytes, value: bytes):
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes):
        self._body.append(body)

    def on_message_complete(self):
        self.answers.append(Answer(self.parser.get_status_code(), self._headers, b"".join(self._body),
                                   self.parser.should_keep_alive()))


def request(body: bytes = b"", *, method: str = "POST", path: str = "/v1/models/m:predict",
            headers: dict | None = None, chunked: bool = False, chunk: int = 3) -> bytes:
    """The raw bytes of one request; `chunked` sends the body in `chunk`-byte pieces."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked:
        lines.append("Transfer-Encoding: chunked")
        pieces = [body[i:i + chunk] for i in range(0, len(body), chunk)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
    else:
        if method == "POST" or body:
            lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


async def exchange(port: int, data: bytes, count: int, *, expect_close: bool = False) -> tuple[list[Answer], bool]:
    """Send `data` on a fresh connection, read `count` answers; returns (answers, closed by peer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    collector = _Collector()
    closed = False
    try:
        writer.write(data)
        while len(collector.answers) < count or expect_close:
            chunk = await reader.read(1 << 20)
            if not chunk:
                closed = True
                break
            collector.parser.feed_data(chunk)
    finally:
        writer.close()
        await writer.wait_closed()
    return collector.answers, closed
