#!/bin/sh
# Installs cbhttp into a temporary prefix and builds a program against it
# with nothing but `pkg-config --cflags --libs cbhttp`, once shared and once
# static, then runs both: what the contract promises outside programs.
set -eu
BUILD=${BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make --no-print-directory BUILD="$BUILD" install PREFIX="$tmp/prefix" >/dev/null
cat > "$tmp/prog.c" <<'PROG'
#include <cbhttp.h>
#include <stdio.h>
#include <string.h>
static cb_err ok(void *ctx) { (void)ctx; return CB_OK; }
int main(void)
{
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
    printf("installed cbhttp %s: %s\n", cbhttp_version(), rc ? "FAILED" : "works");
    return rc;
}
PROG
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$tmp/prog.c" -o "$tmp/prog" $(pkg-config --cflags --libs cbhttp)
LD_LIBRARY_PATH="$tmp/prefix/lib" "$tmp/prog"
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror "$tmp/prog.c" -o "$tmp/prog-static" \
    $(pkg-config --cflags cbhttp) "$tmp/prefix/lib/libcbhttp.a" \
    $(pkg-config --libs libcurl libcjson) -lpthread
"$tmp/prog-static"
[ "$(readelf -d "$tmp/prefix/lib/libcbhttp.so" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" = libcbhttp.so.0 ]
echo "install: headers, libraries and cbhttp.pc work from $tmp/prefix"
