# Resilience per step (docs/policy.md): retries, a timeout per attempt, circuit
# breakers, several endpoints behind a load balancer, a concurrency bound that sheds
# load, hedged calls. A step that has none of these keeps its plain backend, so it
# pays nothing; a step that has some gets a PolicyBackend around the backends of its
# endpoints, behind the same Backend seam (the executor does not know it is there).
#
# What counts as a failed call (retried, and counted by a breaker): a 5xx answer or
# a transport failure (refused, reset, timed out: UpstreamError). A 4xx answer is the
# model's answer to a bad request: never retried, and a success for the breaker.

cdef void _wake(object fut):
    if not fut.done():
        fut.set_result(None)


def _wake_cb(fut):
    _wake(fut)


cdef object _wake_on(object gate):
    """A done callback that wakes ``gate``."""
    def done(f):
        _wake(gate)
    return done


cdef inline bint _is_failure(object outcome):
    if type(outcome) is StepResult:
        return (<StepResult>outcome).status >= 500
    return True


@cython.final
cdef class EndpointState:
    """One endpoint of a service: its backend, the calls outstanding on it, and its
    circuit breaker (``consecutive_failures`` 0: none). Shared by every step that
    reaches the endpoint through the same service."""

    def __init__(self, Backend backend, str url, int consecutive_failures=0, double open_for=0.0):
        self.backend = backend
        self.url = url
        self.threshold = consecutive_failures
        self.open_for = open_for
        self.state = BREAKER_CLOSED

    cdef bint available(self, double now):
        """Whether a call may go to this endpoint now. An open breaker whose time is
        up lets exactly one call through (half-open): the probe."""
        if self.state == BREAKER_CLOSED:
            return True
        if self.state == BREAKER_OPEN and now >= self.open_until:
            return True
        return False

    cdef void started(self, double now):
        self.outstanding += 1
        if self.state == BREAKER_OPEN:
            # the open time is up: this call is the probe; others wait for its outcome
            self.state = BREAKER_HALF_OPEN

    cdef void abandoned(self):
        """A call that ended without an outcome (cancelled): it says nothing of the
        endpoint's health. An abandoned probe lets the next call probe instead."""
        self.outstanding -= 1
        if self.state == BREAKER_HALF_OPEN:
            self.state = BREAKER_OPEN

    cdef void finished(self, bint failed, double now):
        self.outstanding -= 1
        if self.threshold <= 0:
            return
        if not failed:
            self.failures = 0
            self.state = BREAKER_CLOSED
            return
        self.failures += 1
        if self.state == BREAKER_HALF_OPEN or self.failures >= self.threshold:
            if self.state != BREAKER_OPEN:
                self.opened_total += 1
            self.state = BREAKER_OPEN
            self.open_until = now + self.open_for

    @property
    def breaker_state(self):
        """"closed", "open" or "half-open"."""
        return ("closed", "open", "half-open")[self.state]


@cython.final
cdef class ServiceLimiter:
    """At most ``max_in_flight`` calls to a service at once and ``max_queued`` waiting
    for a slot; a call beyond both fails at once (shed), so that an overload costs
    no memory."""

    def __init__(self, str name, int max_in_flight, int max_queued):
        self.name = name
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.waiters = _deque()

    cdef object acquire(self):
        """None: a slot is taken; a future: wait for it (a slot is taken when it is
        done); raises RouteFailure(503, overloaded) when the queue is full too."""
        if self.in_flight < self.max_in_flight:
            self.in_flight += 1
            return None
        if len(self.waiters) >= self.max_queued:
            self.shed_total += 1
            raise RouteFailure("overloaded", 503)
        fut = _running_loop().create_future()
        self.waiters.append(fut)
        return fut

    cdef void release(self):
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():          # not cancelled while it waited
                fut.set_result(None)    # the slot passes to it
                return
        self.in_flight -= 1

    cdef void abandon(self, object fut):
        """A waiter was cancelled: it leaves the queue (which stays bounded however
        many give up), or passes on the slot it had just been handed."""
        if fut.done() and not fut.cancelled():
            self.release()
        elif fut in self.waiters:       # release() may have dropped it already
            self.waiters.remove(fut)

    @property
    def queued(self):
        return len(self.waiters)


@cython.final
cdef class PolicyBackend(Backend):
    """A step under a policy: ``endpoints`` (EndpointState) picked round-robin or by
    least outstanding calls (two random choices), ``timeout`` seconds per attempt
    (0: none beyond the step's own), up to ``max_retries`` retries with full-jitter
    backoff (KServe PR #5386), ``limiter`` (ServiceLimiter or None), ``hedge_after``
    seconds before a second attempt (0: no hedging). ``site``: (node, step) for
    records and metrics."""

    def __init__(self, tuple endpoints, *, bint least_outstanding=False, double timeout=0.0,
                 int max_retries=0, double initial_delay=0.1, double max_delay=300.0,
                 ServiceLimiter limiter=None, double hedge_after=0.0, tuple site=("", "")):
        if not endpoints:
            raise _InternalEngineError("a policy backend needs an endpoint")
        self.endpoints = endpoints
        self.least_outstanding = least_outstanding
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.limiter = limiter
        self.hedge_after = hedge_after
        self.site = site
        self.description = (<EndpointState>endpoints[0]).backend.description if len(endpoints) == 1 \
            else f"{(<EndpointState>endpoints[0]).backend.description} (+{len(endpoints) - 1} endpoints)"

    cdef object call(self, object body, RunContext ctx):
        return self.run(body, ctx)

    # ---- choosing an endpoint -----------------------------------------------------

    cdef EndpointState pick(self, EndpointState avoid, double now):
        """An available endpoint, preferring one other than ``avoid`` (a retry or a
        hedge goes elsewhere when it can); None when every breaker is open."""
        cdef Py_ssize_t n = len(self.endpoints), i, k
        cdef EndpointState ep, other
        cdef EndpointState fallback = None
        if n == 1:
            ep = <EndpointState>self.endpoints[0]
            return ep if ep.available(now) else None
        if self.least_outstanding:
            # power of two choices among the available endpoints other than avoid
            i = rng_below(<int>n)
            k = rng_below(<int>n - 1)
            if k >= i:
                k += 1
            ep = <EndpointState>self.endpoints[i]
            other = <EndpointState>self.endpoints[k]
            if ep is avoid or not ep.available(now):
                ep = other if other is not avoid and other.available(now) else None
            elif other is not avoid and other.available(now) and other.outstanding < ep.outstanding:
                ep = other
            if ep is not None:
                return ep
            # both draws unusable: the first available, in order
            for i in range(n):
                ep = <EndpointState>self.endpoints[i]
                if ep.available(now):
                    if ep is not avoid:
                        return ep
                    fallback = ep
            return fallback
        # round-robin: a request's first attempt moves the cursor on; a retry or a
        # hedge looks from it without moving it, so requests keep alternating
        cdef Py_ssize_t start = self.cursor
        for k in range(n):
            i = (start + k) % n
            if avoid is None:
                self.cursor = (i + 1) % n
            ep = <EndpointState>self.endpoints[i]
            if ep.available(now):
                if ep is not avoid:
                    return ep
                if fallback is None:
                    fallback = ep
        return fallback

    cdef object circuit_open(self):
        cdef EndpointState ep = <EndpointState>self.endpoints[0]
        for e in self.endpoints:
            (<EndpointState>e).rejected_total += 1
        return RouteFailure(f"circuit open: {ep.url}", 503)

    # ---- one attempt ----------------------------------------------------------------

    cdef RunContext attempt_context(self, RunContext ctx):
        """``ctx`` with the attempt's timeout: the policy's when it is shorter than the
        step's own (serviceClient, a gRPC deadline)."""
        cdef RunContext actx
        if self.timeout <= 0 or (0 < ctx.timeout <= self.timeout):
            return ctx
        actx = branch_context(ctx)
        actx.timeout = self.timeout
        return actx

    async def attempt(self, EndpointState ep, object body, RunContext ctx):
        """One call on ``ep``: its StepResult, or the UpstreamError it failed with
        (returned, not raised); counted on the endpoint's breaker."""
        cdef object waiting = None
        cdef bint failed = True
        if self.limiter is not None:
            waiting = self.limiter.acquire()
            if waiting is not None:
                try:
                    await waiting
                except BaseException:
                    self.limiter.abandon(waiting)
                    raise
        ep.started(mono_now())
        try:
            r = ep.backend.call(body, ctx)
            if type(r) is not StepResult:
                r = await r
        except _UpstreamError as e:
            r = e
        except BaseException:
            # cancelled (the client hung up, a hedge lost): no verdict on the endpoint
            ep.abandoned()
            raise
        else:
            failed = _is_failure(r)
        finally:
            if self.limiter is not None:
                self.limiter.release()
        ep.finished(failed, mono_now())
        return r

    async def run(self, object body, RunContext ctx):
        cdef RunContext actx = self.attempt_context(ctx)
        cdef EndpointState ep = self.pick(None, mono_now())
        cdef EndpointState nxt
        cdef int retries = 0
        cdef double cap
        if ep is None:
            raise self.circuit_open()
        outcome = await self.hedged(ep, body, actx) if self.hedge_after > 0 else \
            await self.attempt(ep, body, actx)
        while _is_failure(outcome) and retries < self.max_retries:
            if self.pick(ep, mono_now()) is None:
                break           # every breaker is open now: the last failure stands
            retries += 1
            # full jitter: a uniform delay in [0, min(maxDelay, initialDelay * 2^(n-1)))
            cap = self.initial_delay * (2.0 ** (retries - 1))
            if cap > self.max_delay:
                cap = self.max_delay
            delay = cap * ((rng_next() >> 11) * (1.0 / 9007199254740992.0))
            if _log_failures:
                self.log_retry(ep, outcome, retries, delay)
            if delay > 0:
                await self.sleep(delay)
            nxt = self.pick(ep, mono_now())
            if nxt is None:
                break
            ep = nxt
            self.retries_total += 1
            outcome = await self.hedged(ep, body, actx) if self.hedge_after > 0 else \
                await self.attempt(ep, body, actx)
        if type(outcome) is StepResult:
            return outcome
        raise outcome

    cdef void log_retry(self, EndpointState ep, object outcome, int retry, double delay):
        fields = {"node": self.site[0], "step": self.site[1], "target": ep.url,
                  "retry": retry, "delay_ms": round(delay * 1000.0, 3)}
        if type(outcome) is StepResult:
            fields["status"] = (<StepResult>outcome).status
        else:
            fields["error"] = str(outcome)
        _failure_log.log(_INFO, "step retried", extra=fields)

    async def sleep(self, double delay):
        loop = _running_loop()
        fut = loop.create_future()
        handle = loop.call_later(delay, _wake_cb, fut)
        try:
            await fut
        finally:
            handle.cancel()

    async def hedged(self, EndpointState first, object body, RunContext ctx):
        """The first attempt on ``first``; if it has not answered after hedge_after, a
        second on another endpoint (the same one when it is the only one available).
        The first success wins and the other attempt is cancelled; when both fail,
        the later failure is the outcome."""
        loop = _running_loop()
        a = start_flow(self.attempt(first, body, ctx), loop)
        if a.done():
            return a.result()
        gate = loop.create_future()
        handle = loop.call_later(self.hedge_after, _wake_cb, gate)
        a.add_done_callback(_wake_on(gate))
        try:
            await gate
        except BaseException:
            a.cancel()
            raise
        finally:
            handle.cancel()
        if a.done():
            return a.result()
        second = self.pick(first, mono_now())
        if second is None:
            return await a
        self.hedges_total += 1
        pending = [a, start_flow(self.attempt(second, body, ctx), loop)]
        last = None
        try:
            while pending:
                gate = loop.create_future()
                for f in pending:
                    f.add_done_callback(_wake_on(gate))
                await gate
                for f in [f for f in pending if f.done()]:
                    pending.remove(f)
                    r = f.result()
                    if not _is_failure(r):
                        return r
                    last = r
            return last
        finally:
            for f in pending:
                f.cancel()


def policy_metrics(CompiledPlan plan):
    """Prometheus text for the policies of ``plan``'s steps: retries and hedges per
    step, in flight, queued and shed per service, breaker state, openings and
    rejections per endpoint. Empty when no step has a policy."""
    cdef PlanStep step
    cdef PolicyBackend pb
    cdef EndpointState ep
    cdef ServiceLimiter lim
    name = label_value(plan.name or "graph")
    steps, endpoints, limiters = [], {}, {}
    for node in plan.nodes:
        for s in (<PlanNode>node).steps:
            step = <PlanStep>s
            if type(step.backend) is not PolicyBackend:
                continue
            pb = <PolicyBackend>step.backend
            steps.append(pb)
            for e in pb.endpoints:
                endpoints[id(e)] = e
            if pb.limiter is not None:
                limiters[id(pb.limiter)] = pb.limiter
    if not steps:
        return ""
    out = []

    def family(metric, kind, text, items, label, value):
        out.append(f"# HELP {metric} {text}\n# TYPE {metric} {kind}\n")
        for item in items:
            out.append(f'{metric}{{graph="{name}",{label(item)}}} {value(item)}\n')

    def step_label(PolicyBackend pb):
        return f'node="{label_value(pb.site[0])}",step="{label_value(pb.site[1])}"'

    def service_label(ServiceLimiter lim):
        return f'service="{label_value(lim.name)}"'

    def endpoint_label(EndpointState ep):
        return f'endpoint="{label_value(ep.url)}"'

    family("ige_step_retries_total", "counter",
           "Step calls retried after a 5xx answer or a transport failure.",
           steps, step_label, lambda pb: pb.retries_total)
    family("ige_step_hedges_total", "counter", "Hedged second attempts started.",
           steps, step_label, lambda pb: pb.hedges_total)
    lims = list(limiters.values())
    if lims:
        family("ige_service_in_flight", "gauge",
               "Calls in flight to a service under a concurrency bound.",
               lims, service_label, lambda lim: lim.in_flight)
        family("ige_service_queued", "gauge",
               "Calls waiting for a slot of a service's concurrency bound.",
               lims, service_label, lambda lim: lim.queued)
        family("ige_service_shed_total", "counter",
               "Calls refused at once (503, overloaded): the service's slots and queue were full.",
               lims, service_label, lambda lim: lim.shed_total)
    eps = list(endpoints.values())
    family("ige_endpoint_outstanding", "gauge", "Calls in flight to an endpoint.",
           eps, endpoint_label, lambda ep: ep.outstanding)
    breakers = [e for e in eps if (<EndpointState>e).threshold > 0]
    if breakers:
        family("ige_endpoint_circuit_state", "gauge",
               "An endpoint's circuit breaker: 0 closed, 1 open, 2 half-open.",
               breakers, endpoint_label, lambda ep: ep.state)
        family("ige_endpoint_circuit_opened_total", "counter",
               "Times an endpoint's circuit breaker opened.",
               breakers, endpoint_label, lambda ep: ep.opened_total)
        family("ige_endpoint_circuit_rejected_total", "counter",
               "Calls failed at once (503) because every endpoint's breaker was open.",
               breakers, endpoint_label, lambda ep: ep.rejected_total)
    return "".join(out)

