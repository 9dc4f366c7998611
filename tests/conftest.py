"""Shared fixtures.

``loop`` runs an async test body on both asyncio's default loop and uvloop; any
exception that reaches the loop's exception handler (a callback error, a task
exception never retrieved) fails the test. In a debug build (ENGINE_DEBUG=1) it
also checks the engine's leak counters: the flows, step calls and client
connections a test created must all be gone once its loop is closed and collected.
"""
from __future__ import annotations

import asyncio
import gc

import pytest
import uvloop

from engine import _core

LOOP_KINDS = ["asyncio", "uvloop"]


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


class LoopRunner:
    """Runs coroutines on a private loop and records unhandled loop errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self.loop = _new_loop(kind)
        self.errors: list[dict] = []
        self.loop.set_exception_handler(lambda loop, ctx: self.errors.append(ctx))

    def run(self, coro, timeout: float = 30.0):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    def close(self):
        loop = self.loop
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
        gc.collect()


def live_objects() -> dict[str, int] | None:
    """The engine's leak counters after a collection (None in a release build)."""
    if _core.debug_counters() is None:
        return None
    gc.collect()
    return _core.debug_counters()


@pytest.fixture(params=LOOP_KINDS)
def loop(request):
    before = live_objects()
    runner = LoopRunner(request.param)
    yield runner
    runner.close()
    after = live_objects()
    if after != before:
        pytest.fail(f"the test left engine objects alive on the {runner.kind} loop: "
                    f"{before} before, {after} after")
    if runner.errors:
        msgs = "; ".join(str(e.get("message")) + " " + repr(e.get("exception")) for e in runner.errors)
        pytest.fail(f"unhandled error reached the {runner.kind} loop: {msgs}")
