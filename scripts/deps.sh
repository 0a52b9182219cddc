#!/bin/sh
# Installs the Debian packages cbhttp needs to build, test and run its demo,
# when any is missing. Uses apt-get (through sudo when not root); when that
# is impossible, stops with the exact command to run.
#   scripts/deps.sh [--packaging] [--coverage] [extra-package ...]
# nginx-light: the private nginx (with its echo module) that tests/check_h2.c
# and the benches start on loopback: HTTPS with HTTP/2, a keep-alive peer.
# openssl: the command the TLS tests run to make their CA and certificates
# (tests/helpers/tlsgen.c).
# libuv1-dev, libevent-dev: the event loops that the header-only adapters
# (include/cbhttp/adapters/) are tested and shown with (tests/check_async_loops.c,
# examples/async_libuv.c); libcbhttp itself links neither.
# --packaging adds what installing and packaging cbhttp is checked with, in
# CI (.ci/run) and by hand, and make test does not need: cmake (the CMake
# consumer that scripts/check-install.sh builds with find_package(cbhttp);
# that script asks for cmake alone), debhelper and dpkg-dev
# (dpkg-buildpackage of debian/, which is Rules-Requires-Root: no, so no
# fakeroot).
# --coverage adds gcovr, which make coverage (and so CI) reads the gcov
# data of the instrumented build with: Debian's package made for the job,
# one command for the per-file table of lines and branches, the totals and
# the HTML report, with no lcov/genhtml pipeline to keep in step.
set -e

extra=""
while :; do
    case "${1:-}" in
        --packaging) extra="$extra cmake debhelper dpkg-dev"; shift ;;
        --coverage) extra="$extra gcovr"; shift ;;
        *) break ;;
    esac
done
# shellcheck disable=SC2086
set -- $extra "$@"

pkgs="build-essential pkg-config libcurl4-openssl-dev libcjson-dev check libmicrohttpd-dev libuv1-dev libevent-dev nginx-light openssl $*"
missing=""
for p in $pkgs; do
    # dpkg-query prints "install ok installed" only for packages really there.
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$status" in
        *"ok installed"*) ;;
        *) missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "cbhttp: installing missing packages:$missing" >&2
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
else
    echo "cbhttp: cannot install as $(id -un) without a password. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
# shellcheck disable=SC2086
if ! $sudo apt-get install -y -qq --no-install-recommends $missing >&2; then
    echo "cbhttp: apt-get failed. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
