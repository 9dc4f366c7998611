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
