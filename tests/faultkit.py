"""Misbehaving model servers on loopback, for the resilience tests: each answers by a
script (a function of the call's number), records its calls, and can answer slowly,
reset the connection, or not listen at all."""
from __future__ import annotations

import asyncio
import socket

from routerkit import ModelServer


class FaultyModel(ModelServer):
    """``script(n)`` for the n-th call (from 0) gives ``(status, body)`` or ``("slow",
    seconds, status, body)``. Resets: ResettingServer; refused: refused_url()."""

    def __init__(self, script, name: str = "m"):
        super().__init__(self._answer)
        self.script = script
        self.name = name
        self.calls = 0
        self.in_flight = 0
        self.max_in_flight = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/models/{self.name}:predict"

    def _answer(self, request):
        action = self.script(self.calls)
        self.calls += 1
        if action[0] == "slow":
            return self._slow(*action[1:])
        return action

    async def _slow(self, seconds, status, body):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(seconds)
        finally:
            self.in_flight -= 1
        return status, body


class ResettingServer:
    """Accepts connections and aborts them at once: every call fails with a reset."""

    def __init__(self):
        self.calls = 0
        self.server = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/models/m:predict"

    def _accepted(self, reader, writer):
        self.calls += 1
        writer.transport.abort()

    async def start(self):
        self.server = await asyncio.start_server(self._accepted, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self):
        self.server.close()
        await self.server.wait_closed()


def refused_url() -> str:
    """A loopback URL nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1/models/gone:predict"
