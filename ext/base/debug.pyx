# Debug builds: setup.py defines ENGINE_DEBUG=1 (ENGINE_DEBUG=1 make install).
# Invariant checks and leak counters are compiled in only then; in release builds
# the constant is 0 and the compiler drops them.
cdef extern from *:
    """
    #ifndef ENGINE_DEBUG
    #define ENGINE_DEBUG 0
    #endif
    """
    const bint ENGINE_DEBUG


# Leak counters (uvloop's habit): live objects of the kinds a request creates, counted
# in debug builds only. The test suite's loop fixture checks that each is back where
# it was once a test's loop is closed and collected.
cdef enum:
    DEBUG_FLOWS = 0
    DEBUG_STEP_CALLS = 1
    DEBUG_CLIENT_CONNECTIONS = 2
    DEBUG_COUNTERS = 3

cdef long long debug_live[3]
debug_live[0] = debug_live[1] = debug_live[2] = 0


def debug_counters():
    """Live request-path objects ({"flows", "step_calls", "client_connections"}) in a
    debug build (ENGINE_DEBUG=1); None in a release build, which does not count."""
    if not ENGINE_DEBUG:
        return None
    return {"flows": debug_live[DEBUG_FLOWS], "step_calls": debug_live[DEBUG_STEP_CALLS],
            "client_connections": debug_live[DEBUG_CLIENT_CONNECTIONS]}
