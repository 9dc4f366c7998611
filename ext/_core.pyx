# cython: language_level=3
"""engine._core: the compiled per-request path.

One extension, built from focused include files, so that the executor, the codecs
and the HTTP protocol call each other as C functions.
"""
include "rng.pyx"
include "oip.pyx"
