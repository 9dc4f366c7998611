# A minimal coroutine driver for the per-request path.
#
# asyncio.Task costs several microseconds a request on CPython 3.11: ensure_future,
# isfuture and the all_tasks WeakSet are Python code, and every step copies a
# contextvars context. A request's coroutine only ever awaits Futures (client calls,
# Ensemble joins), so a Flow drives it directly with PyIter_Send and the awaited
# future's done-callback. Anything that needs a real Task (user code in async local
# backends, which may use asyncio.timeout or TaskGroup) is wrapped in one there.
from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF
import asyncio as _asyncio

from engine.errors import InternalEngineError as _InternalEngineError

cdef extern from "Python.h":
    int PyIter_Send(object iter, object arg, PyObject** presult) except -1

cdef object _AsyncioFuture = _asyncio.Future
cdef object _CancelledErrorType = _asyncio.CancelledError
cdef object _iscoroutine_fn = _asyncio.iscoroutine
# asyncio.iscoroutine is Python code; remember the coroutine types already seen
cdef set _COROUTINE_TYPES = set()


@cython.freelist(32)
@cython.final
cdef class Flow:
    """Runs one coroutine to completion; Future-like to its consumer (done, result,
    exception, cancel, add_done_callback)."""

    def __cinit__(self, object coro, object loop):
        if ENGINE_DEBUG:
            debug_live[DEBUG_FLOWS] += 1
        self.coro = coro
        self.loop = loop
        self.state = FLOW_RUNNING
        self.callbacks = None

    def __dealloc__(self):
        if ENGINE_DEBUG:
            debug_live[DEBUG_FLOWS] -= 1

    cdef void step(self):
        cdef PyObject* out = NULL
        cdef int status
        cdef object yielded
        if ENGINE_DEBUG and self.state != FLOW_RUNNING:
            raise _InternalEngineError(f"a settled flow (state {self.state}) was stepped")
        try:
            if self.must_cancel:
                # a cancel found nothing left to cancel (what the coroutine awaited
                # had just finished): it sees CancelledError where it waits, as under
                # a Task, instead of going on to its next backend call
                self.must_cancel = False
                status = _throw_cancel(self.coro, &out)
            else:
                status = PyIter_Send(self.coro, None, &out)
        except BaseException as e:
            if isinstance(e, _CancelledErrorType):
                self.settle(FLOW_CANCELLED, None, e)
            else:
                self.settle(FLOW_FAILED, None, e)
            return
        yielded = <object>out
        Py_DECREF(yielded)   # drop the reference PyIter_Send gave us; `yielded` keeps one
        if status == 0:      # PYGEN_RETURN
            self.settle(FLOW_DONE, yielded, None)
            return
        if isinstance(yielded, StepCall):
            # resumed straight from the call's settle (for HTTP, the pool's delivery)
            (<StepCall>yielded).waiter = self
            self.awaiting = yielded
            if self.must_cancel:
                self.cancel_awaited()
            return
        if yielded is None:  # a bare yield (asyncio.sleep(0)): run again on the next tick
            self.loop.call_soon(self.wake_bare)
            return
        try:
            yielded._asyncio_future_blocking = False
        except AttributeError:
            self.coro.close()
            self.settle(FLOW_FAILED, None, RuntimeError(f"a request flow awaited {yielded!r}, not a Future"))
            return
        self.awaiting = yielded
        yielded.add_done_callback(self.wake)
        if self.must_cancel:
            self.cancel_awaited()

    cdef void cancel_awaited(self):
        # cancelled while the coroutine was running (it cancelled its own request):
        # cancel what it waits on now, as a Task does with _must_cancel
        self.must_cancel = False
        if not self.awaiting.cancel():
            self.must_cancel = True

    def wake(self, fut):
        self.awaiting = None
        self.step()

    def wake_bare(self):
        self.step()

    cdef void settle(self, int state, object value, object exc):
        self.state = state
        self.value = value
        self.exc = exc
        self.coro = None
        if self.direct is not None:
            # an engine-internal consumer (the HTTP server) that is safe to call from
            # here: no loop hop between the last step and the answer's write
            self.direct(self)
        cbs = self.callbacks
        self.callbacks = None
        if cbs is not None:
            for cb in cbs:
                self.loop.call_soon(cb, self)

    def set_direct_callback(self, cb):
        """Call ``cb(flow)`` synchronously when the flow settles (engine use only).
        False, and no call, when it has settled already."""
        if self.state != FLOW_RUNNING:
            return False
        self.direct = cb
        return True

    # ---- the Future protocol its consumers use ----

    def done(self):
        return self.state != FLOW_RUNNING

    def cancelled(self):
        return self.state == FLOW_CANCELLED

    def result(self):
        if self.state == FLOW_DONE:
            return self.value
        if self.state == FLOW_RUNNING:
            raise _asyncio.InvalidStateError("the flow is still running")
        raise self.exc

    def exception(self):
        if self.state == FLOW_RUNNING:
            raise _asyncio.InvalidStateError("the flow is still running")
        if self.state == FLOW_CANCELLED:
            raise self.exc
        return self.exc

    def add_done_callback(self, cb, *, context=None):
        if self.state != FLOW_RUNNING:
            self.loop.call_soon(cb, self)
        elif self.callbacks is None:
            self.callbacks = [cb]
        else:
            self.callbacks.append(cb)

    def remove_done_callback(self, cb):
        if self.direct is not None and self.direct == cb:
            self.direct = None
            return 1
        if self.callbacks is None:
            return 0
        before = len(self.callbacks)
        self.callbacks = [c for c in self.callbacks if c != cb]
        return before - len(self.callbacks)

    def cancel(self, msg=None):
        """Cancel what the coroutine awaits (an HTTP step call closes its backend
        connection or leaves the pool's queue); the coroutine sees CancelledError
        there, or at its next step when the awaited thing had already finished."""
        if self.state != FLOW_RUNNING:
            return False
        if self.awaiting is not None and self.awaiting.cancel():
            return True
        self.must_cancel = True
        return True

    def __await__(self):
        if self.state == FLOW_RUNNING:
            fut = self.loop.create_future()
            self.add_done_callback(lambda f: _chain(f, fut))
            return fut.__await__()
        return _finished(self).__await__()


cdef void _chain(Flow flow, object fut):
    if fut.done():
        return
    if flow.state == FLOW_DONE:
        fut.set_result(flow.value)
    elif flow.state == FLOW_CANCELLED:
        fut.cancel()
    else:
        fut.set_exception(flow.exc)


cdef int _throw_cancel(object coro, PyObject** presult) except -1:
    """PyIter_Send's contract for coro.throw(CancelledError()): 1 and the yielded
    value, or 0 and the returned value (a new reference in *presult either way)."""
    cdef object value
    try:
        value = coro.throw(_CancelledErrorType())
    except StopIteration as e:
        value = e.value
        Py_INCREF(value)
        presult[0] = <PyObject*>value
        return 0
    Py_INCREF(value)
    presult[0] = <PyObject*>value
    return 1


async def _finished(Flow flow):
    return flow.result()


cdef class StepCall:
    """A backend call in flight. It settles once, with an outcome (the executor wants
    a StepResult) or an exception; a Flow that awaits it resumes from the settle
    itself. It also speaks the Future protocol, so an asyncio Task can await it too.
    A transport subclasses it and overrides ``abort`` to stop its own work when the
    call is cancelled."""

    def __cinit__(self):
        if ENGINE_DEBUG:
            debug_live[DEBUG_STEP_CALLS] += 1

    def __dealloc__(self):
        if ENGINE_DEBUG:
            debug_live[DEBUG_STEP_CALLS] -= 1

    cdef void settle(self, object outcome, bint failed):
        cdef Flow waiter
        if self.finished:
            return
        if ENGINE_DEBUG and self.waiter is not None and self.callbacks is not None:
            raise _InternalEngineError("a step call awaited by a flow and by callbacks at once")
        self.finished = True
        self.failed = failed
        self.outcome = outcome
        if self.waiter is not None:
            waiter = self.waiter
            self.waiter = None
            waiter.awaiting = None
            waiter.step()
        if self.callbacks is not None:
            for cb, context in self.callbacks:
                self.loop.call_soon(cb, self, context=context)
            self.callbacks = None

    cdef void abort(self):
        """Stop the transport's work for a cancelled call (nothing by default)."""
        pass

    # ---- awaiting: `await call` yields it until the outcome is in ----

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        if not self.finished:
            self._asyncio_future_blocking = True
            return self
        if self.failed:
            raise self.outcome
        raise StopIteration(self.outcome)

    # ---- the Future protocol an asyncio Task uses ----

    def get_loop(self):
        return self.loop

    def done(self):
        return self.finished

    def cancelled(self):
        return self.finished and self.failed and isinstance(self.outcome, _CancelledErrorType)

    def result(self):
        if not self.finished:
            raise _asyncio.InvalidStateError("the step is still running")
        if self.failed:
            raise self.outcome
        return self.outcome

    def exception(self):
        if not self.finished:
            raise _asyncio.InvalidStateError("the step is still running")
        if self.failed and isinstance(self.outcome, _CancelledErrorType):
            raise self.outcome
        return self.outcome if self.failed else None

    def add_done_callback(self, cb, *, context=None):
        if self.finished:
            self.loop.call_soon(cb, self, context=context)
        elif self.callbacks is None:
            self.callbacks = [(cb, context)]
        else:
            self.callbacks.append((cb, context))

    def remove_done_callback(self, cb):
        if not self.callbacks:
            return 0
        before = len(self.callbacks)
        self.callbacks = [(c, x) for c, x in self.callbacks if c != cb]
        return before - len(self.callbacks)

    def cancel(self, msg=None):
        """Stop waiting: the awaiting code sees CancelledError at once, and the
        transport stops its work (``abort``)."""
        if self.finished:
            return False
        self.abort()
        self.settle(_CancelledErrorType() if msg is None else _CancelledErrorType(msg), True)
        return True


cpdef object start_flow(object awaitable, object loop):
    """A Future-like for a handler's awaitable: futures as they are, coroutines
    driven by a Flow (started at once, as a Task's first step would be soon)."""
    cdef Flow flow
    # known coroutine types first: hasattr() on a coroutine raises and catches an
    # AttributeError, which costs more than the rest of this function
    if type(awaitable) not in _COROUTINE_TYPES:
        if isinstance(awaitable, _AsyncioFuture) or hasattr(awaitable, "add_done_callback"):
            return awaitable
        if not _iscoroutine_fn(awaitable):
            raise TypeError(f"{type(awaitable).__name__} is not awaitable")
        _COROUTINE_TYPES.add(type(awaitable))
    flow = Flow(awaitable, loop)
    flow.step()
    return flow
