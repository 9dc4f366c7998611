"""A gRPC model that goes away and comes back on the same port is used again within a
bound: the backend channels reconnect at most about a second apart."""
from __future__ import annotations

import asyncio
import time

import numpy as np

from engine.oip import InferRequest, from_numpy
from oipkit import GrpcModel, numpy_model
from routerkit import running_router

# Reconnect attempts the router must make while the model is away. grpc's default
# backoff (1 s, x1.6 per attempt) needs over 15 s for this many; the engine's
# channels, about 4 s.
ATTEMPTS = 7
# The longest gap allowed between two attempts: the engine's backoff is at most
# 960 ms, plus scheduling slack on a loaded machine.
MAX_GAP = 1.5
# From the model's return to the router's first answer through it.
RECOVERY = 2.5


class AttemptCounter:
    """A listener on the model's port that takes each connection and closes it at
    once: every reconnect attempt of a channel shows up as one accepted connection."""

    def __init__(self):
        self.times: list[float] = []
        self.seen = asyncio.Event()
        self.server = None

    def _accept(self, reader, writer):
        self.times.append(time.monotonic())
        self.seen.set()
        writer.close()

    async def start(self, port: int):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", port,
                                                 reuse_address=True)
        return self

    async def close(self):
        self.server.close()
        await self.server.wait_closed()


def test_backend_restart_on_the_same_port_is_used_again_within_a_bound(loop):
    req = InferRequest("graph", [from_numpy("x", np.arange(4, dtype=np.float32))])
    body = req.to_json()

    async def go():
        model = await GrpcModel(numpy_model(lambda x: x)).start()
        port = model.port
        graph = {"nodes": {"root": {"routerType": "Sequence",
                                    "steps": [{"serviceUrl": model.url()}]}}}
        counter = back = None
        try:
            async with running_router(graph) as router:
                first = await router.post(body)
                await model.close()
                counter = await AttemptCounter().start(port)
                outage = []
                # requests keep coming while the model is away; each fails at once
                deadline = time.monotonic() + 20.0
                while len(counter.times) < ATTEMPTS and time.monotonic() < deadline:
                    outage.append((await router.post(body)).status)
                    counter.seen.clear()
                    try:
                        await asyncio.wait_for(counter.seen.wait(), 0.2)
                    except asyncio.TimeoutError:
                        pass
                attempts = list(counter.times)
                await counter.close()
                counter = None
                back = await GrpcModel(numpy_model(lambda x: x)).start(port)
                returned = time.monotonic()
                statuses = []
                while time.monotonic() - returned < 10.0:
                    r = await router.post(body)
                    statuses.append(r.status)
                    if r.status == 200:
                        break
                    await asyncio.sleep(0.05)   # pacing the polls, not synchronisation
                recovered = time.monotonic() - returned
        finally:
            if counter is not None:
                await counter.close()
            if back is not None:
                await back.close()
        return first.status, outage, attempts, statuses, recovered

    first, outage, attempts, statuses, recovered = loop.run(go(), timeout=60)
    assert first == 200
    assert outage and all(s == 500 for s in outage), outage
    assert len(attempts) >= ATTEMPTS, f"{len(attempts)} reconnect attempts: {attempts}"
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert max(gaps) < MAX_GAP, gaps
    assert statuses[-1] == 200, statuses
    assert recovered < RECOVERY, (recovered, statuses)
