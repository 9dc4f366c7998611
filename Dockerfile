# The router image for KServe's InferenceGraph controller (see docs/kubernetes.md).
#
#   docker build -t ige-router .
#   docker run --rm -p 8080:8080 ige-router --graph-json '{"nodes": {...}}'
#
# The build stage compiles the Cython extensions and builds a wheel for the engine and
# one for every runtime dependency; the image is a slim Python with no compiler holding
# one virtualenv with those wheels installed, and nothing else.  BUILD_IMAGE and
# RUNTIME_IMAGE must have the same Python minor version (the engine's wheel is built
# for it).
ARG BUILD_IMAGE=python:3.12-bookworm
ARG RUNTIME_IMAGE=python:3.12-slim-bookworm

FROM ${BUILD_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
# engine._core links libnghttp2 (the native gRPC front end's HTTP/2)
COPY scripts/system-deps.sh scripts/
RUN sh scripts/system-deps.sh
COPY protos/ protos/
COPY ext/ ext/
COPY engine/ engine/
# The build requirements (setuptools, Cython, grpcio-tools) come in pip's isolated
# build environment, so they never reach the runtime stage.  `pip wheel .` also writes
# a wheel for each runtime dependency: the [project] dependencies and the tracing
# extra (the OpenTelemetry SDK and OTLP exporters); the test and bench extras are not
# installed.
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip wheel --wheel-dir /wheels '.[tracing]' \
 && ls /wheels

# The virtualenv is made on the runtime base itself (its python3 is the one the venv
# links to), then copied alone into a clean stage: neither the wheels nor pip end up
# in the image.  Bytecode is compiled here as unchecked hashes, so it stays valid
# whatever the copy does to file times and Python never wants to rewrite it.
FROM ${RUNTIME_IMAGE} AS install
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/ige \
 && /opt/ige/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        'inference-graph-engine[tracing]' \
 && /opt/ige/bin/pip uninstall -y -q setuptools pip \
 && /opt/ige/bin/python -m compileall -q -f --invalidation-mode unchecked-hash /opt/ige/lib

FROM ${RUNTIME_IMAGE}
# the one shared library engine._core links beyond Python's
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libnghttp2-14 \
 && rm -rf /var/lib/apt/lists/*
# Nothing may be written at run time (the controller sets readOnlyRootFilesystem):
# Python must not try to write bytecode, and HOME points at a directory that does not
# exist rather than at /root.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/nonexistent \
    PATH=/opt/ige/bin:$PATH
COPY --from=install /opt/ige /opt/ige
RUN ige --version \
 && python -c "import engine._core, engine._gjson, engine.protos.grpc_predict_v2_pb2_grpc, grpc, uvloop, numpy, opentelemetry.sdk.trace"
# KServe's controller sets runAsNonRoot: the kubelet can only verify a numeric user.
USER 65532:65532
WORKDIR /
# 8080: HTTP (KServe's router port, readiness probe GET /readyz); 8081: gRPC OIP v2
EXPOSE 8080 8081
# The controller passes only arguments (`--graph-json <spec>`), which mean `ige serve`.
ENTRYPOINT ["/opt/ige/bin/ige"]
