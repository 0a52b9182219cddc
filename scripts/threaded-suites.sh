#!/bin/sh
# The suites that run threads against shared objects: the ones worth
# running under ThreadSanitizer. A suite opts in with a line
# "/* cbhttp: threaded */" in its source.
grep -l 'cbhttp: threaded' tests/check_*.c 2>/dev/null | sed 's,tests/,,; s,\.c$,,' | tr '\n' ' '
