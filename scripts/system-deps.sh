#!/bin/sh
# Installs the system libraries the build links, from Debian packages, when they are
# missing: libnghttp2-dev (HTTP/2 for engine._core's gRPC front end, ext/h2/) and
# pkg-config, which setup.py asks for its flags. Idempotent: with everything present
# it changes nothing and touches no network; as a non-root user it uses sudo.
set -eu

missing=""
pkg_config_ok=1
command -v pkg-config >/dev/null 2>&1 || { missing="$missing pkg-config"; pkg_config_ok=0; }
if [ "$pkg_config_ok" -eq 1 ] && pkg-config --exists libnghttp2 2>/dev/null; then
    :
elif [ ! -f /usr/include/nghttp2/nghttp2.h ]; then
    missing="$missing libnghttp2-dev"
fi

if [ -z "$missing" ]; then
    echo "scripts/system-deps.sh: libnghttp2-dev is installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "scripts/system-deps.sh: missing$missing; install them with your system's package manager" >&2
    exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
echo "scripts/system-deps.sh: installing$missing"
$sudo apt-get update
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends $missing
