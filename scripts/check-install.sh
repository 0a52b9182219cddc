#!/bin/sh
# Builds and runs a program against an installed cbhttp the two ways outside
# programs do: with `pkg-config --cflags --libs cbhttp` and with CMake's
# find_package(cbhttp) (targets cbhttp::cbhttp and cbhttp::cbhttp_static),
# each shared and static. What the contract promises outside programs.
#
#   scripts/check-install.sh           make install into a temporary prefix,
#                                      then move the tree (the CMake files
#                                      must follow it) and make uninstall
#   scripts/check-install.sh --system  the cbhttp already installed in the
#                                      system's own paths (the Debian
#                                      packages, .ci/run)
#
# Each program checks that the version in the headers, the one the library
# reports at run time (cbhttp_version()) and the one pkg-config or CMake
# found are the same: the Makefile reads it from include/cbhttp/common.h.
set -eu
BUILD=${BUILD:-build}
mode=${1:-prefix}
sh scripts/deps.sh cmake
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat > "$tmp/prog.c" <<'PROG'
#include <cbhttp.h>
#include <stdio.h>
#include <string.h>
#define STR_(x) #x
#define STR(x) STR_(x)
static cb_err ok(void *ctx) { (void)ctx; return CB_OK; }
int main(void)
{
    const char *header = STR(CBHTTP_VERSION_MAJOR) "." STR(CBHTTP_VERSION_MINOR) "." STR(
        CBHTTP_VERSION_PATCH);
    cb_breaker *b = cb_breaker_new(&(cb_config){ .failure_threshold = 3 });
    api_client *c = api_client_new(&(api_client_config){ .base_url = "http://127.0.0.1:1" });
    api_response r;
    int rc = 1;
    if (b && c && cb_breaker_execute(b, ok, NULL) == CB_OK &&
        api_get(c, "//evil", NULL, &r) == CB_ERR_INVALID &&
        strcmp(cb_state_name(cb_breaker_state(b)), "CLOSED") == 0)
        rc = 0;
    api_response_free(&r);
    api_client_free(c);
    cb_breaker_free(b);
    if (strcmp(cbhttp_version(), header) != 0 || strcmp(header, EXPECT_VERSION) != 0) {
        printf("version mismatch: headers %s, library %s, found as %s\n", header,
               cbhttp_version(), EXPECT_VERSION);
        rc = 1;
    }
    printf("installed cbhttp %s: %s\n", cbhttp_version(), rc ? "FAILED" : "works");
    return rc;
}
PROG

mkdir "$tmp/cmake"
cat > "$tmp/cmake/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.13)
project(cbhttp_consumer C)
# Compatibility is SameMajorVersion: the next major must not be accepted.
find_package(cbhttp ${OTHER_MAJOR} QUIET)
if(cbhttp_FOUND)
    message(FATAL_ERROR "find_package(cbhttp ${OTHER_MAJOR}) accepted ${cbhttp_VERSION}")
endif()
find_package(cbhttp ${WANT} REQUIRED)
message(STATUS "cbhttp ${cbhttp_VERSION} from ${cbhttp_DIR}")
foreach(kind shared static)
    add_executable(prog-${kind} ../prog.c)
    set_target_properties(prog-${kind} PROPERTIES C_STANDARD 11 C_STANDARD_REQUIRED ON)
    target_compile_options(prog-${kind} PRIVATE -Wall -Werror)
    target_compile_definitions(prog-${kind} PRIVATE EXPECT_VERSION="${cbhttp_VERSION}")
endforeach()
target_link_libraries(prog-shared PRIVATE cbhttp::cbhttp)
target_link_libraries(prog-static PRIVATE cbhttp::cbhttp_static)
CMAKE

needs_shared() { # prog: linked against libcbhttp.so.MAJOR
    readelf -d "$1" | grep -q 'NEEDED.*\[libcbhttp\.so\.[0-9]*\]' ||
        { echo "$1 does not load libcbhttp.so" >&2; exit 1; }
}
needs_no_shared() { # prog: libcbhttp.a linked in
    if readelf -d "$1" | grep -q 'NEEDED.*libcbhttp'; then
        echo "$1 loads libcbhttp.so, it was to link libcbhttp.a" >&2; exit 1
    fi
}

case "$mode" in
prefix)
    # PREFIX, not DESTDIR: cbhttp.pc names its prefix absolutely, as
    # pkg-config files do. DESTDIR staging is what the Debian build uses.
    prefix="$tmp/prefix"
    make --no-print-directory BUILD="$BUILD" install PREFIX="$prefix" >/dev/null
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    libdir="$prefix/lib"
    ;;
--system)
    libdir=$(pkg-config --variable=libdir cbhttp)
    ;;
*)
    echo "usage: $0 [--system]" >&2; exit 2
    ;;
esac

version=$(pkg-config --modversion cbhttp)
[ -f "$libdir/libcbhttp.so.$version" ] ||
    { echo "no $libdir/libcbhttp.so.$version for cbhttp.pc's version $version" >&2; exit 1; }
[ "$(readelf -d "$libdir/libcbhttp.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" = \
  "libcbhttp.so.${version%%.*}" ]

# pkg-config: shared, then static (libcbhttp.a and the private dependencies).
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -DEXPECT_VERSION="\"$version\"" "$tmp/prog.c" -o "$tmp/prog" \
    $(pkg-config --cflags --libs cbhttp)
needs_shared "$tmp/prog"
LD_LIBRARY_PATH="$libdir" "$tmp/prog"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror -DEXPECT_VERSION="\"$version\"" "$tmp/prog.c" -o "$tmp/prog-static" \
    $(pkg-config --cflags cbhttp) "$libdir/libcbhttp.a" $(pkg-config --libs libcurl libcjson) -lpthread
needs_no_shared "$tmp/prog-static"
"$tmp/prog-static"
echo "pkg-config: cbhttp $version works, shared and static"

# CMake. In prefix mode the installed tree is moved first: the CMake files
# must find everything from where they are, not from where make put them.
major=${version%%.*}
rest=${version#*.}
if [ "$mode" = prefix ]; then
    mv "$prefix" "$tmp/moved"
    prefix="$tmp/moved"
    set -- -DCMAKE_PREFIX_PATH="$prefix"
else
    set --
fi
cmake -S "$tmp/cmake" -B "$tmp/cmake/build" "$@" -DWANT="$major.${rest%%.*}" \
    -DOTHER_MAJOR=$((major + 1)) >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log"; exit 1; }
grep 'cbhttp .* from' "$tmp/cmake.log"
cmake --build "$tmp/cmake/build" >"$tmp/cmake-build.log" 2>&1 ||
    { cat "$tmp/cmake-build.log"; exit 1; }
needs_shared "$tmp/cmake/build/prog-shared"
needs_no_shared "$tmp/cmake/build/prog-static"
"$tmp/cmake/build/prog-shared"
"$tmp/cmake/build/prog-static"
echo "cmake: find_package(cbhttp $major.${rest%%.*}) works, cbhttp::cbhttp and cbhttp::cbhttp_static"

if [ "$mode" = prefix ]; then
    make --no-print-directory BUILD="$BUILD" uninstall PREFIX="$prefix" >/dev/null
    left=$(find "$prefix" ! -type d)
    [ -z "$left" ] || { echo "make uninstall left: $left" >&2; exit 1; }
    echo "install: headers, libraries, cbhttp.pc and the CMake files work; uninstall removes them"
fi
