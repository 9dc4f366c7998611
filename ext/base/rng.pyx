# Splitter routing needs a fast uniform pick in [0, 100), not a cryptographic one:
# KServe draws point = rand.Int(100) and takes the first step with point < running sum.
from libc.stdint cimport uint64_t
from libc.time cimport time as c_time
from cpython.pystate cimport PyThreadState_Get

cdef uint64_t _rng_state = <uint64_t>c_time(NULL) ^ <uint64_t><size_t>PyThreadState_Get()


cdef inline uint64_t rng_next() noexcept nogil:
    """splitmix64: one multiply-xorshift round per draw, full 2**64 period."""
    global _rng_state
    _rng_state += 0x9E3779B97F4A7C15ULL
    cdef uint64_t z = _rng_state
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef inline int rng_below(int bound) noexcept nogil:
    """Uniform integer in [0, bound) by Lemire's multiply-shift (bias < 2**-57 here)."""
    return <int>(((rng_next() >> 32) * <uint64_t>bound) >> 32)


def seed_router_rng(unsigned long long seed):
    """Reseed the Splitter RNG (tests and reproducible benchmarks)."""
    global _rng_state
    _rng_state = seed


def router_rng_below(int bound):
    """Draw one integer in [0, bound) from the Splitter RNG."""
    if bound <= 0:
        raise ValueError("bound must be positive")
    return rng_below(bound)
