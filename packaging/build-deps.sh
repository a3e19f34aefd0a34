#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian/Ubuntu packages needed to build and test Beethoven.
# Idempotent: asks dpkg which packages are missing and installs only those.
set -eu

# The last line is for the packaging tests (tests/packaging/): lintian
# checks the .deb, rpm provides rpmbuild for the .rpm, the .deb's postinst
# needs adduser, python3-yaml parses the cloud-init template and groff
# lints the man pages. systemd-analyze (the unit) and cloud-init (its
# schema check) are used when installed; they are not installed for that.
PACKAGES="build-essential cmake pkg-config libuv1-dev libraft-dev libjson-c-dev libssl-dev
libcmocka-dev libcurl4-openssl-dev libmicrohttpd-dev python3 iproute2 nftables procps
lintian rpm adduser python3-yaml groff-base"

missing=""
count=0
for p in $PACKAGES; do
    count=$((count + 1))
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing="$missing $p"
    fi
done
missing=${missing# }

if [ -z "$missing" ]; then
    echo "build-deps: all $count packages already installed"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    as_root=""
elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
else
    echo "build-deps: missing packages: $missing" >&2
    echo "build-deps: not root and sudo is not available; install them as root:" >&2
    echo "  apt-get install $missing" >&2
    exit 1
fi

log=$(mktemp "${TMPDIR:-/tmp}/build-deps.XXXXXX")
trap 'rm -f "$log"' EXIT
# shellcheck disable=SC2086 # word splitting of $missing is intended
if ! { $as_root apt-get update &&
       $as_root env DEBIAN_FRONTEND=noninteractive \
           apt-get install -y --no-install-recommends $missing; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "build-deps: failed to install: $missing" >&2
    exit 1
fi
echo "build-deps: installed $missing"
