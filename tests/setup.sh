#!/bin/sh
# Installs what the test suite needs beyond the Python packages, from Debian packages,
# when it is missing: chromium, in which tests/test_graph_page.py renders the router's
# /graph page headless, and h2load (nghttp2-client), with which tests/test_bench_grpc.py
# runs small gRPC load rows. Idempotent: with both present it changes nothing and
# touches no network.
set -eu

missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v h2load >/dev/null 2>&1 || missing="$missing nghttp2-client"

if [ -z "$missing" ]; then
    echo "tests/setup.sh: chromium and h2load are installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "tests/setup.sh: installing$missing"
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
