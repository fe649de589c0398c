#!/bin/sh
# test.sh - install what is missing, build with warnings as errors, and run
# the whole test suite (unit tests, integration tests against Azurite and
# the MongoDB-wire fake).  Build output goes to ./build.
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
[ -x configure ] || autoreconf -fi
mkdir -p build
cd build
[ -f Makefile ] || ../configure --enable-werror
jobs=$(nproc 2>/dev/null || echo 2)
make -j"$jobs"
status=0
make -j"$jobs" check || status=$?
# A one-line tally that any CI can read, from automake's own summary.
if [ -f test-suite.log ]; then
	pass=$(sed -n 's/^# PASS: *//p' test-suite.log | head -1)
	fail=$(sed -n 's/^# FAIL: *//p' test-suite.log | head -1)
	error=$(sed -n 's/^# ERROR: *//p' test-suite.log | head -1)
	skip=$(sed -n 's/^# SKIP: *//p' test-suite.log | head -1)
	[ "$status" = 0 ] || cat test-suite.log
	echo "${pass:-0} passed, $(( ${fail:-0} + ${error:-0} )) failed, ${skip:-0} skipped"
fi
exit $status
