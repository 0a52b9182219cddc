#!/bin/sh
# Runs every benchmark built in $BUILD/bench (make bench calls it), prints
# each one's table, and collects the machine-readable lines ("name value
# unit") into $BUILD/bench-results.txt, after a header describing the
# machine. Benchmarks report their targets; they never fail on a miss. The
# script fails only when a benchmark could not run to its end.
#
#   sh scripts/run-bench.sh [BUILD]        (default: build)
#   BENCH_ARGS_bench_http=1000 sh scripts/run-bench.sh   (per-benchmark args)
#
# The benchmarks: bench_breaker, bench_cache, bench_scale (no network);
# bench_http (blocking calls vs curl_easy_perform, fixture and nginx);
# bench_outage (blocking callers through an outage); bench_async (the async
# engine: 32 calls in flight vs libcurl multi on nginx, memory per call in
# flight, async rejection; args: requests_per_round calls_in_flight);
# bench_async_outage (one event-loop thread through an outage; arg:
# calls_per_sec). The nginx figures need nginx (scripts/deps.sh installs
# nginx-light, with the echo module bench_async's /sleep uses); without it
# they are skipped and this script says so.
BUILD=${1:-${BUILD:-build}}
out="$BUILD/bench-results.txt"

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo 2>/dev/null | head -n 1)
machine="machine: nproc=$(nproc 2>/dev/null || echo '?') cpu=\"${cpu:-unknown}\" kernel=$(uname -sr | tr ' ' '-')"

if [ ! -d "$BUILD/bench" ]; then
    echo "run-bench: no $BUILD/bench directory (make bench builds it)" >&2
    exit 1
fi

nginx_bin=${CBH_NGINX:-/usr/sbin/nginx}
if [ ! -x "$nginx_bin" ] && ! command -v nginx >/dev/null 2>&1; then
    echo "run-bench: nginx not found: the nginx figures of bench_http and bench_async" \
        "are skipped (scripts/deps.sh installs nginx-light)" >&2
fi

tmp=$(mktemp) || exit 1
trap 'rm -f "$tmp"' EXIT INT TERM
{
    echo "# cbhttp benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "# $machine"
} >"$out"
echo "$machine"

status=0
ran=0
# bench_breaker first: the cheapest, and the others build on what it shows.
for b in "$BUILD/bench/bench_breaker" "$BUILD/bench"/*; do
    [ -f "$b" ] && [ -x "$b" ] || continue
    name=$(basename "$b")
    case " $seen " in *" $name "*) continue ;; esac
    seen="$seen $name"
    # Per-benchmark arguments, e.g. BENCH_ARGS_bench_http=1000.
    eval "args=\${BENCH_ARGS_$name:-}"
    echo
    echo "=== $name $args"
    start=$(date +%s)
    # shellcheck disable=SC2086
    if "$b" $args >"$tmp"; then
        rc=0
    else
        rc=$?
    fi
    cat "$tmp"
    echo "($name: $(($(date +%s) - start)) s, exit $rc)"
    ran=$((ran + 1))
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "# $name exited with $rc" >>"$out"
    fi
    # Machine lines: "name value unit", nothing else on the line.
    grep -E '^[a-z][a-z0-9_]* -?[0-9][0-9.eE+-]* [A-Za-z/%]+$' "$tmp" >>"$out"
done

# bench_http again with every thread on one CPU. The fixture server runs a
# thread per connection, and where the scheduler puts each connection's
# server thread (beside its client thread or not) can favour either side
# for a whole run; pinned, both sides get the same conditions. Its machine
# lines are prefixed "pinned_".
if [ -x "$BUILD/bench/bench_http" ] && command -v taskset >/dev/null 2>&1; then
    echo
    echo "=== bench_http pinned to one CPU (taskset -c 0)"
    if taskset -c 0 "$BUILD/bench/bench_http" >"$tmp"; then
        sed -n '/^keep-alive/,/^$/p' "$tmp"
        grep -E '^(http|nginx)_.*_(rps|ratio) ' "$tmp" | sed 's/^/pinned_/' >>"$out"
    else
        status=1
        echo "# pinned bench_http failed" >>"$out"
    fi
fi

if [ "$ran" -eq 0 ]; then
    echo "run-bench: no benchmark binaries in $BUILD/bench" >&2
    exit 1
fi
echo
echo "results: $out ($(grep -vc '^#' "$out") figures)"
exit "$status"
