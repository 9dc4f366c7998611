# Prometheus recording for the executor: histograms and per-step slots made at compile
# time, so that a request only adds to C counters (docs/metrics.md). Text is made on
# scrape only.
from libc.stdlib cimport calloc, free
from cpython.exc cimport PyErr_NoMemory

# inference latencies: from a local model's sub-millisecond answer to a long generation
DEFAULT_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# the `code` label of a step that got no HTTP answer, and the `kind` of its error
STEP_ERROR_KINDS = ("status", "timeout", "transport", "circuit_open", "overloaded")


def metrics_buckets(value):
    """Histogram bucket bounds from ``value`` (None: the defaults; a sequence of
    numbers, or their comma separated text): a tuple of increasing positive floats.
    Raises ValueError otherwise."""
    if value is None:
        return DEFAULT_BUCKETS
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    else:
        parts = list(value)
    try:
        bounds = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise ValueError(f"metrics buckets must be numbers: {value!r}") from None
    if not bounds:
        raise ValueError("metrics buckets: give at least one bound")
    prev = 0.0
    for b in bounds:
        if not (b > prev) or b == float("inf"):
            raise ValueError(f"metrics buckets must be increasing positive finite numbers: {value!r}")
        prev = b
    return bounds


cpdef str label_value(str value):
    """A Prometheus label value: backslash, quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@cython.final
cdef class Histogram:
    """Counts per bucket, sum and count of observed seconds; allocated once."""

    def __cinit__(self, tuple bounds):
        cdef Py_ssize_t i
        self.n = len(bounds)
        self.bounds = <double*>calloc(self.n if self.n else 1, sizeof(double))
        self.counts = <long long*>calloc(self.n + 1, sizeof(long long))
        if self.bounds == NULL or self.counts == NULL:
            PyErr_NoMemory()
        for i in range(self.n):
            self.bounds[i] = bounds[i]

    def __dealloc__(self):
        free(self.bounds)
        free(self.counts)

    cdef void observe(self, double seconds) noexcept:
        cdef Py_ssize_t i = 0
        while i < self.n and seconds > self.bounds[i]:
            i += 1
        self.counts[i] += 1
        self.sum += seconds
        self.count += 1

    def cumulative(self):
        """[(upper bound, cumulative count)], the last bound +Inf."""
        cdef Py_ssize_t i
        cdef long long total = 0
        out = []
        for i in range(self.n + 1):
            total += self.counts[i]
            out.append((self.bounds[i] if i < self.n else float("inf"), total))
        return out


cdef str _bound_text(double b):
    return "+Inf" if b == float("inf") else repr(b)


cdef void render_histogram(list out, str metric, str labels, Histogram h):
    """``metric``'s _bucket, _sum and _count lines for ``h``; ``labels`` escaped, no braces."""
    for bound, total in h.cumulative():
        out.append(f'{metric}_bucket{{{labels},le="{_bound_text(bound)}"}} {total}\n')
    out.append(f"{metric}_sum{{{labels}}} {repr(h.sum)}\n")
    out.append(f"{metric}_count{{{labels}}} {h.count}\n")


@cython.final
cdef class StepStats:
    """One step's slots: its duration histogram for code 200, others made on their
    first use, and its error counts per kind."""

    def __cinit__(self, tuple bounds):
        self.bounds = bounds
        self.ok = Histogram(bounds)
        self.other = {}

    cdef void observe(self, int status, double seconds):
        """A step answered ``status`` after ``seconds``."""
        cdef Histogram h
        if status == 200:
            self.ok.observe(seconds)
            return
        key = str(status)
        h = self.other.get(key)
        if h is None:
            h = self.other[key] = Histogram(self.bounds)
        h.observe(seconds)
        if not (200 <= status <= 299):
            self.errors[<int>ERR_STATUS] += 1

    cdef void fail(self, int kind, double seconds):
        """A step got no answer (a StepErrorKind other than ERR_STATUS)."""
        cdef Histogram h
        key = STEP_ERROR_KINDS[kind]
        h = self.other.get(key)
        if h is None:
            h = self.other[key] = Histogram(self.bounds)
        h.observe(seconds)
        self.errors[kind] += 1

    def by_code(self):
        """[(code label, Histogram)], 200 first, then the others by label."""
        out = [("200", self.ok)] if self.ok.count else []
        return out + sorted(self.other.items())

    def error_counts(self):
        """{kind: count} for every kind."""
        return {STEP_ERROR_KINDS[k]: self.errors[k] for k in range(<int>ERR_KINDS)}


# ---- OpenMetrics 1.0, for a scrape that asks for it ---------------------------------
# The families are rendered once, as Prometheus text (app.pyx, policy.pyx, headers.pyx);
# a scrape whose Accept lists OpenMetrics gets that text converted, so the two
# expositions cannot drift apart. Runs on scrape only.

cdef list OPENMETRICS_HEADERS = [
    (b"Content-Type", b"application/openmetrics-text; version=1.0.0; charset=utf-8")]
# the versions whose text is what openmetrics_text makes (0.0.1 is 1.0.0's draft)
cdef tuple _OPENMETRICS_VERSIONS = (None, b"1.0.0", b"0.0.1")


cdef double _qvalue(bytes text):
    """RFC 9110's qvalue: "0" or "1", then optionally "." and up to three digits
    ("0.5", "1.000"); -1 for anything else."""
    cdef Py_ssize_t n = len(text)
    if n == 0 or n > 5 or text[:1] not in (b"0", b"1"):
        return -1.0
    if n > 1 and (text[1:2] != b"." or (n > 2 and not text[2:].isdigit())):
        return -1.0
    cdef double q = float(text)
    return q if q <= 1.0 else -1.0


cpdef bint accepts_openmetrics(bytes accept):
    """Whether an Accept header value lists ``application/openmetrics-text`` (version
    1.0.0, 0.0.1 or none given) with q > 0. Media types and parameter names are
    case-insensitive; a range with an unreadable q is not counted; ``*/*`` does not
    ask for OpenMetrics (Prometheus' text stays the default)."""
    cdef double q
    for media_range in accept.split(b","):
        params = media_range.split(b";")
        if params[0].strip().lower() != b"application/openmetrics-text":
            continue
        q = 1.0
        version = None
        for param in params[1:]:
            name, _, value = param.partition(b"=")
            name = name.strip().lower()
            value = value.strip()
            if name == b"q":
                q = _qvalue(value)
            elif name == b"version":
                version = value.strip(b'"')
        if q > 0 and version in _OPENMETRICS_VERSIONS:
            return True
    return False


cpdef bint wants_openmetrics(list headers):
    """Whether a request's (name, value) header pairs ask for OpenMetrics: any Accept
    header (a repeated header is one comma-joined list) that accepts_openmetrics."""
    for name, value in headers:
        if len(<bytes>name) == 6 and (<bytes>name).lower() == b"accept" and accepts_openmetrics(value):
            return True
    return False


cpdef bytes openmetrics_text(bytes text):
    """OpenMetrics 1.0 text for Prometheus text (format 0.0.4) as the router renders it:
    a counter family is named without its ``_total`` suffix in ``# HELP`` and ``# TYPE``
    while its samples keep it; a counter named without ``_total`` and an ``untyped``
    family become ``unknown`` (OpenMetrics has no name for them); blank lines and other
    comments, which OpenMetrics forbids, are left out; ``# EOF`` ends it. Label and
    HELP escaping are the same in both formats, so sample lines pass unchanged."""
    lines = text.decode("utf-8").split("\n")
    counters = set()
    for line in lines:
        if line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) == 4 and parts[3].strip() == "counter":
                counters.add(parts[2])
    out = []
    for line in lines:
        if not line:
            continue
        if line[0] != "#":
            out.append(line)
            continue
        parts = line.split(" ", 3)
        if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE"):
            continue
        if len(parts) == 3:
            if parts[1] == "TYPE":
                continue
            parts.append("")            # a HELP without text
        name = parts[2]
        if name in counters:
            if name.endswith("_total"):
                name = name[:-6]
            elif parts[1] == "TYPE":
                parts[3] = "unknown"
        if parts[1] == "TYPE" and parts[3].strip() == "untyped":
            parts[3] = "unknown"
        out.append(f"# {parts[1]} {name} {parts[3]}")
    out.append("# EOF\n")
    return "\n".join(out).encode("utf-8")
