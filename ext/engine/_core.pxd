# Declarations of engine._core (ext/_core.pyx and the files it includes), one .pxd
# beside each file, included in the order ext/_core.pyx includes the files.
# Cython finds this file by the module's dotted name (include_path=["ext"]).

include "base/hex.pxd"
include "base/buffer.pxd"
include "base/flow.pxd"
include "json/go_json.pxd"
include "http/common.pxd"
include "http/server.pxd"
include "http/client.pxd"
include "oip/codec.pxd"
include "core/headers.pxd"
include "core/metrics.pxd"
include "core/plan.pxd"
include "core/trace.pxd"
include "core/bridge.pxd"
include "core/execute.pxd"
include "backends/local.pxd"
include "backends/http.pxd"
include "backends/v2http.pxd"
include "backends/delegate.pxd"
include "backends/policy.pxd"
include "front/app.pxd"
