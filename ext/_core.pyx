# cython: language_level=3
"""engine._core: the compiled per-request path.

One extension, built from focused include files, so that the executor, the codecs
and the HTTP protocol call each other as C functions.
"""
cimport cython

include "rng.pyx"
include "headers.pyx"
include "flow.pyx"
include "http_common.pyx"
include "http_server.pyx"
include "http_client.pyx"
include "bridge.pyx"
include "go_json.pyx"
include "go_float.pyx"
include "plan.pyx"
include "local_backend.pyx"
include "http_backend.pyx"
include "app.pyx"
include "oip.pyx"
