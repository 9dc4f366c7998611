# In-process models: a graph can run embedded with Python callables as its services.
import inspect as _inspect

cdef object _iscoroutine = _inspect.iscoroutine
cdef int _DUMP_OPTIONS = _orjson.OPT_SERIALIZE_NUMPY | _orjson.OPT_NON_STR_KEYS


cdef StepResult as_step_result(object value):
    """A callable's return value -> StepResult.

    StepResult / Response: as is; bytes-like: a 200 body sent as is; (status, body):
    that status; anything else: 200 with the value encoded as JSON."""
    cdef object status = 200
    if type(value) is StepResult:
        return <StepResult>value
    if type(value) is Response:
        return StepResult((<Response>value).status, (<Response>value).body)
    if type(value) is tuple and len(<tuple>value) == 2 and type((<tuple>value)[0]) is int:
        status, value = value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return StepResult(status, value)
    return StepResult(status, _json_dumps(value, option=_DUMP_OPTIONS))


def local_failure_result(BaseException e):
    """What a step answers when an in-process model raises ``e`` (failure_result)."""
    return failure_result(e)


def local_step_result(value):
    """What a step answers for an in-process model's return ``value`` (as_step_result):
    for the converters in engine/bridge.py, which take the same values."""
    return as_step_result(value)


cdef StepResult failure_result(BaseException e):
    # what a model server answers when its predict raises: 500 with the reason
    return StepResult(500, _json_dumps({"error": _bound_message(f"{type(e).__name__}: {e}")}))


@cython.final
cdef class LocalBackend(Backend):
    """Calls ``fn(payload)`` or ``fn(payload, headers)`` in the event loop's thread.

    ``payload`` is the step's request decoded as JSON (the raw bytes when it is not
    JSON); ``headers`` the propagated headers as a dict of str. ``fn`` may be async."""

    def __init__(self, fn, str name=None, MessageBridge bridge=None):
        self.bridge = bridge
        if not callable(fn):
            raise TypeError(f"service {name!r}: {fn!r} is not callable")
        self.fn = fn
        self.description = f"local:{name or getattr(fn, '__name__', repr(fn))}"
        try:
            params = _inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        self.wants_headers = "headers" in params

    cdef object call(self, object body, RunContext ctx):
        if type(body) is not bytes and is_oip(body):
            return need_bridge(self.bridge, body).local_call(self.fn, self.wants_headers, body, ctx)
        try:
            payload = _json_loads(body)
        except Exception:
            payload = bytes(body)
        try:
            if self.wants_headers:
                out = self.fn(payload, headers={k.decode("latin-1"): v.decode("latin-1") for k, v in ctx.headers})
            else:
                out = self.fn(payload)
        except Exception as e:
            return failure_result(e)
        if _iscoroutine(out):
            # user code gets a real Task: it may use asyncio.timeout, TaskGroup, ...
            return _await_local(_asyncio.ensure_future(out))
        return as_step_result(out)


async def _await_local(object task):
    try:
        out = await task
    except Exception as e:
        return failure_result(e)
    return as_step_result(out)
