#!/bin/sh
# Prints the suites declared in tests/threaded.list (the ones CI runs under
# ThreadSanitizer), space-separated. Fails, saying why on stderr, when a
# listed suite has no tests/<name>.c, or when the list and the
# "/* cbhttp: threaded */" markers in the sources disagree.
cd "$(dirname "$0")/.." || exit 1
list=tests/threaded.list
if [ ! -f "$list" ]; then
    echo "threaded-suites: $list is missing" >&2
    exit 1
fi
names=$(sed 's/#.*//' "$list" | tr -s ' \t' '\n\n' | grep -v '^$')
status=0
for name in $names; do
    if [ ! -f "tests/$name.c" ]; then
        echo "threaded-suites: $list names $name, but tests/$name.c does not exist" >&2
        status=1
    elif ! grep -q 'cbhttp: threaded' "tests/$name.c"; then
        echo "threaded-suites: tests/$name.c is listed in $list but lacks /* cbhttp: threaded */" >&2
        status=1
    fi
done
for file in $(grep -l 'cbhttp: threaded' tests/check_*.c 2>/dev/null); do
    name=${file#tests/}
    name=${name%.c}
    if ! printf '%s\n' $names | grep -qx "$name"; then
        echo "threaded-suites: $file says /* cbhttp: threaded */ but is not in $list" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] || exit 1
if [ -z "$names" ]; then
    echo "threaded-suites: $list lists no suite" >&2
    exit 1
fi
echo $names
