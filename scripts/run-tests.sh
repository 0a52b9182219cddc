#!/bin/sh
# Runs the named Check suites from $BUILD/tests, each wrapped in $RUNNER,
# and ends with one "N passed, N failed" line over the suites.
BUILD=${BUILD:-build}
passed=0
failed=0
failed_names=""
for t in "$@"; do
    echo "== $t"
    # shellcheck disable=SC2086
    if $RUNNER "$BUILD/tests/$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_names="$failed_names $t"
    fi
done
[ -n "$failed_names" ] && echo "failed suites:$failed_names"
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
