#!/bin/sh
# Installs the load tools of bench/ from Debian packages when they are missing:
# wrk and h2load (nghttp2-client), the load generators; nginx-light, the C reference
# (HTTP and grpc_pass); Go and Debian's grpc-go source, from which bench/grpc_load.py
# builds the Go gRPC forwarder offline. Idempotent: with all present it changes
# nothing and touches no network.
set -eu

missing=""
command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$missing nginx-light"
command -v taskset >/dev/null 2>&1 || missing="$missing util-linux"
command -v h2load >/dev/null 2>&1 || missing="$missing nghttp2-client"
command -v go >/dev/null 2>&1 || missing="$missing golang-go"
[ -d /usr/share/gocode/src/google.golang.org/grpc ] || missing="$missing golang-google-grpc-dev"

if [ -z "$missing" ]; then
    echo "bench/setup.sh: wrk, h2load, nginx, taskset, go and grpc-go are installed"
    exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "bench/setup.sh: installing$missing"
# The bench runs its own nginx: keep the package from starting a system one on
# port 80 (which fails the install in containers where 80 is taken).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod +x "$policy"
    trap '$sudo rm -f "$policy"' EXIT
fi
$sudo apt-get update
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
