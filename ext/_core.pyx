# cython: language_level=3
"""engine._core: the compiled per-request path.

One extension, built from the files below, so that the executor, the codecs and the
HTTP protocol call each other as C functions. The files are included layer by layer,
lowest first: a file uses only what it or an earlier file defines. Declarations are
in the .pxd beside each file, gathered by ext/engine/_core.pxd in the same order.
docs/architecture.md draws the layers and walks one request through them.
"""
cimport cython

# base: the loop-level primitives every layer uses
include "base/debug.pyx"
include "base/clock.pyx"
include "base/rng.pyx"
include "base/buffer.pyx"
include "base/flow.pyx"

# json: Go's encoding/json rules, where KServe's router re-encodes a body
include "json/go_float.pyx"
include "json/go_json.pyx"

# http: HTTP/1.1 server and pooled client, knowing nothing of graphs
include "http/common.pyx"
include "http/server.pyx"
include "http/client.pyx"

# h2: HTTP/2 connections on libnghttp2 and gRPC message framing
include "h2/server.pyx"

# oip: the Open Inference Protocol v2 wire codec
include "oip/codec.pyx"

# core: the compiled plan, the Backend seam, header propagation and the executor
include "core/headers.pyx"
include "core/metrics.pyx"
include "core/plan.pyx"
include "core/trace.pyx"
include "core/bridge.pyx"
include "core/execute.pyx"

# backends: step targets behind the Backend seam
include "backends/local.pyx"
include "backends/http.pyx"
include "backends/v2http.pyx"
include "backends/delegate.pyx"
include "backends/policy.pyx"

# front: what a front end hands the executor and how it answers
include "front/app.pyx"
include "front/grpc.pyx"
