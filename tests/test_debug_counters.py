"""The debug build's leak counters (ext/base/debug.pyx) count what they name: the
loop fixture's leak check (tests/conftest.py) relies on them."""
import asyncio
import gc

import pytest

from engine import _core

pytestmark = pytest.mark.skipif(_core.debug_counters() is None,
                                reason="leak counters exist in debug builds (make test-debug)")


def live():
    gc.collect()
    return _core.debug_counters()


def test_an_unsettled_flow_is_counted_until_it_is_gone():
    loop = asyncio.new_event_loop()
    try:
        before = live()
        waiting = loop.create_future()

        async def request():
            await waiting

        flow = _core.start_flow(request(), loop)
        assert live()["flows"] == before["flows"] + 1
        flow.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        del flow, waiting
        assert live() == before
    finally:
        loop.close()


def test_step_calls_and_client_connections_are_counted():
    loop = asyncio.new_event_loop()
    try:
        before = live()
        client = _core.HttpClient()
        backend = _core.HttpBackend(_core.Endpoint("http://127.0.0.1:9/never"), client)

        async def call():
            pending = backend.invoke(b"{}", _core.RunContext([], 1.0))
            assert live()["step_calls"] == before["step_calls"] + 1
            assert live()["client_connections"] == before["client_connections"] + 1
            with pytest.raises(Exception):
                await pending

        loop.run_until_complete(call())
        loop.run_until_complete(client.close())
        del client, backend
        assert live() == before
    finally:
        loop.close()
