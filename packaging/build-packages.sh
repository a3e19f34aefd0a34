#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the beethoven and beethoven-dev packages: .deb when dpkg-shlibdeps
# is installed, .rpm when rpmbuild is (on Debian: the rpm package). Usage:
#
#   packaging/build-packages.sh [BUILD_DIR]     (default: build-pkg)
#
# BUILD_DIR is configured for the prefix /usr with Debian's hardening flags
# (dpkg-buildflags, hardening=+all), built, and packed with cpack; the
# packages land in BUILD_DIR/packages/. `make package` runs this script.
set -eu

src=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-build-pkg}
jobs=${JOBS:-2}

# Each format the machine has the tools for.
generators=""
if command -v dpkg-shlibdeps >/dev/null 2>&1; then
    generators="DEB"
else
    echo "build-packages: dpkg-shlibdeps not found (dpkg-dev): no .deb" >&2
fi
if command -v rpmbuild >/dev/null 2>&1; then
    generators="${generators:+$generators;}RPM"
else
    echo "build-packages: rpmbuild not found (Debian: apt-get install rpm): no .rpm" >&2
fi
if [ -z "$generators" ]; then
    echo "build-packages: neither dpkg-shlibdeps nor rpmbuild: nothing to build" >&2
    exit 1
fi

cflags="-O2 -g"
ldflags=""
if command -v dpkg-buildflags >/dev/null 2>&1; then
    # Run from the source tree: -ffile-prefix-map maps it to "."
    cflags=$(cd "$src" && DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CFLAGS)
    cflags="$cflags $(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get CPPFLAGS)"
    ldflags=$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get LDFLAGS)
fi

cmake -S "$src" -B "$out" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBT_BUILD_TESTS=OFF -DBT_SANITIZE=OFF -DBT_WERROR=OFF \
    -DCMAKE_C_FLAGS="$cflags" -DCMAKE_EXE_LINKER_FLAGS="$ldflags" \
    -DCMAKE_SHARED_LINKER_FLAGS="$ldflags"
cmake --build "$out" -j"$jobs"
rm -rf "$out/packages"
(cd "$out" && cpack -G "$generators")
ls -1 "$out"/packages/*.deb "$out"/packages/*.rpm 2>/dev/null || true
