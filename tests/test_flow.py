"""engine._core.Flow: the Task-less coroutine driver of the request path."""
from __future__ import annotations

import asyncio

import pytest

from engine import _core


def drive(loop, coro):
    """Start a flow in the running loop and wait for it like a Future."""
    async def main():
        flow = _core.start_flow(coro, asyncio.get_running_loop())
        done = asyncio.get_running_loop().create_future()
        flow.add_done_callback(lambda f: done.set_result(f))
        await done
        return flow
    return loop.run(main())


def test_returns_the_coroutine_result(loop):
    async def work():
        fut = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, fut.set_result, 21)
        return 2 * await fut
    flow = drive(loop, work())
    assert flow.done() and not flow.cancelled()
    assert flow.result() == 42 and flow.exception() is None


def test_bare_yield_resumes(loop):
    async def work():
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return "ok"
    assert drive(loop, work()).result() == "ok"


def test_exception_is_kept(loop):
    async def work():
        await asyncio.sleep(0)
        raise KeyError("x")
    flow = drive(loop, work())
    assert isinstance(flow.exception(), KeyError)
    with pytest.raises(KeyError):
        flow.result()


def test_cancel_cancels_the_awaited_future(loop):
    async def main():
        lp = asyncio.get_running_loop()
        never = lp.create_future()

        async def work():
            await never
        flow = _core.start_flow(work(), lp)
        done = lp.create_future()
        flow.add_done_callback(done.set_result)
        assert flow.cancel()
        await done
        return flow, never
    flow, never = loop.run(main())
    assert never.cancelled() and flow.cancelled()
    with pytest.raises(asyncio.CancelledError):
        flow.result()


def test_awaiting_something_that_is_not_a_future_fails(loop):
    class Odd:
        def __await__(self):
            yield "not a future"

    async def work():
        await Odd()
    flow = drive(loop, work())
    assert isinstance(flow.exception(), RuntimeError)


def test_flow_is_awaitable(loop):
    async def inner():
        await asyncio.sleep(0)
        return 5

    async def main():
        return await _core.start_flow(inner(), asyncio.get_running_loop())
    assert loop.run(main()) == 5


def test_futures_pass_through(loop):
    async def main():
        fut = asyncio.get_running_loop().create_future()
        return _core.start_flow(fut, asyncio.get_running_loop()) is fut
    assert loop.run(main())


def test_non_awaitable_is_a_type_error(loop):
    async def main():
        _core.start_flow(42, asyncio.get_running_loop())
    with pytest.raises(TypeError):
        loop.run(main())


def test_cancel_after_the_awaited_future_finished_still_cancels(loop):
    # the future is done but the flow has not resumed yet: the coroutine must see
    # CancelledError instead of going on to its next step (its next backend call)
    async def main():
        lp = asyncio.get_running_loop()
        fut = lp.create_future()
        went_on = []

        async def work():
            await fut
            went_on.append(True)
            await lp.create_future()
        flow = _core.start_flow(work(), lp)
        done = lp.create_future()
        flow.add_done_callback(done.set_result)
        fut.set_result(1)
        assert flow.cancel()
        await done
        return flow, went_on
    flow, went_on = loop.run(main())
    assert flow.cancelled() and went_on == []


def test_cancel_during_a_bare_yield(loop):
    async def main():
        lp = asyncio.get_running_loop()
        went_on = []

        async def work():
            await asyncio.sleep(0)
            went_on.append(True)
        flow = _core.start_flow(work(), lp)
        done = lp.create_future()
        flow.add_done_callback(done.set_result)
        assert flow.cancel()
        await done
        return flow, went_on
    flow, went_on = loop.run(main())
    assert flow.cancelled() and went_on == []


def test_a_coroutine_may_catch_the_cancellation(loop):
    async def main():
        lp = asyncio.get_running_loop()
        fut = lp.create_future()

        async def work():
            try:
                await fut
            except asyncio.CancelledError:
                return "cleaned up"
        flow = _core.start_flow(work(), lp)
        fut.set_result(1)
        flow.cancel()
        return await flow
    assert loop.run(main()) == "cleaned up"
