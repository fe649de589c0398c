#!/bin/sh
# test.sh - install what is missing, build with warnings as errors, and run
# the whole test suite three ways:
#
#   1. ./build: the normal build; unit tests, integration tests against
#      Azurite and the MongoDB-wire fake, valgrind memcheck of one backup,
#      and the fuzz targets' regression inputs;
#   2. ./build-asan: the same suite with every program (the daemon and the
#      helpers the integration tests start from there) built with
#      AddressSanitizer, LeakSanitizer and UBSan; any report fails the test;
#   3. ./build-fuzz: each libFuzzer target for FUZZ_SECONDS (default 10)
#      (tests/fuzz/run.sh; needs clang).
#
# Each step runs only when the one before it passed.  The last line is one
# tally over all of them: "N passed, N failed, N skipped", after a line for
# every skip (a test program, a single test case, LeakSanitizer, the
# fuzzers) with its reason.
# Environment: FUZZ_SECONDS (0: no fuzzing), MAB_TEST_USERS_ASAN (users in
# the big backup test of the sanitizer run; default 50000).
set -eu
cd "$(dirname "$0")/.."
sh tools/deps.sh
# A checkout updated since its last autoreconf (configure.ac newer than
# configure) gets a fresh one: a stale configure may name moved sources.
if [ ! -x configure ] || [ -n "$(find configure.ac -newer configure)" ]; then autoreconf -fi; fi
jobs=$(nproc 2>/dev/null || echo 2)
passed=0 failed=0 skipped=0
skip_reasons=""

# Records one skip and why; finish prints them all under the tally, so no
# skip goes unseen in a green run.
note_skip() {
	skipped=$(( skipped + 1 ))
	skip_reasons="$skip_reasons
  skipped: $1"
}

# Adds automake's summary in $1/test-suite.log to the tally; prints the
# log when the run failed ($2 = make check's status).
tally() {
	log="$1/test-suite.log"
	[ -f "$log" ] || return 0
	pass=$(sed -n 's/^# PASS: *//p' "$log" | head -1)
	fail=$(sed -n 's/^# FAIL: *//p' "$log" | head -1)
	error=$(sed -n 's/^# ERROR: *//p' "$log" | head -1)
	skip=$(sed -n 's/^# SKIP: *//p' "$log" | head -1)
	[ "$2" = 0 ] || cat "$log"
	echo "test.sh: $1: ${pass:-0} passed, $(( ${fail:-0} + ${error:-0} )) failed, ${skip:-0} skipped"
	passed=$(( passed + ${pass:-0} ))
	failed=$(( failed + ${fail:-0} + ${error:-0} ))
	# Whole test programs that skipped (exit 77), with the reason each
	# printed, and single test cases skipped inside programs that passed.
	skipped_logs=""
	for t in $(sed -n 's/^SKIP: //p' "$log"); do
		why=$(grep -m1 -i 'skip' "$1/${t%.py}.log" 2>/dev/null | cut -c1-200)
		note_skip "$1: $t: ${why:-no reason given}"
		skipped_logs="$skipped_logs $1/${t%.py}.log"
	done
	for f in $(find "$1/tests" -name '*.log' ! -name test-suite.log 2>/dev/null | sort); do
		# A program skipped whole is listed once, above, not per case.
		case " $skipped_logs " in *" $f "*) continue ;; esac
		grep -h "\.\.\. skipped" "$f" 2>/dev/null | cut -c1-240 |
			sed "s|^|$1: ${f#"$1"/}: |" > "$1/.skips" || true
		while IFS= read -r line; do
			note_skip "$line"
		done < "$1/.skips"
	done
	rm -f "$1/.skips"
}

finish() {
	[ -z "$skip_reasons" ] || printf '%s\n' "$skip_reasons" | sed '/^$/d'
	echo "$passed passed, $failed failed, $skipped skipped"
	exit "$1"
}

# configure_in DIR ARGS...: configures DIR unless it already is, with these
# arguments and with the libraries installed now.  A build left by
# tools/demo.sh (no -Werror, and no check library, so no unit tests) is
# configured again rather than reused.
configure_in() {
	dir=$1
	shift
	want="$*|check=$(pkg-config --exists check && echo yes || echo no)"
	if [ -f "$dir/Makefile" ] && [ "$(cat "$dir/.test-configured" 2>/dev/null)" = "$want" ]; then
		return 0
	fi
	(cd "$dir" && ../configure "$@") || return 1
	printf '%s\n' "$want" > "$dir/.test-configured"
}

# ---- 1. the normal build ----------------------------------------------------
mkdir -p build
configure_in build --enable-werror
(cd build && make -j"$jobs")
status=0
(cd build && make -j"$jobs" check) || status=$?
tally build "$status"
[ "$status" = 0 ] || finish "$status"

# ---- 2. the sanitizer build -------------------------------------------------
san="-fsanitize=address,undefined"
asan_cflags="-O1 -g $san -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
mkdir -p build-asan
configure_in build-asan --enable-werror CFLAGS="$asan_cflags" LDFLAGS="$san"
(cd build-asan && make -j"$jobs")

# LeakSanitizer stops the process's threads with ptrace; where ptrace is
# forbidden (some containers, or when run under a debugger) it cannot work
# and would fail every program at exit.  Try it on a known leak first.
leaks=1
cat > build-asan/lsan-probe.c <<'PROBE'
#include <stdlib.h>
#include <string.h>
static void *volatile kept;
__attribute__((noinline)) static void leak(void) { kept = malloc(33); kept = NULL; }
__attribute__((noinline)) static void scrub(void) { volatile char b[4096]; memset((char *)b, 0, sizeof(b)); }
int main(void) { for (int i = 0; i < 8; i++) leak(); scrub(); return 0; }
PROBE
cc=$(sed -n 's/^CC = //p' build-asan/Makefile)
if ${cc:-cc} $san -g build-asan/lsan-probe.c -o build-asan/lsan-probe; then
	probe=$(ASAN_OPTIONS=detect_leaks=1 build-asan/lsan-probe 2>&1 || true)
	case $probe in
	*"LeakSanitizer: detected memory leaks"*)
		echo "test.sh: LeakSanitizer works here" ;;
	*"LeakSanitizer has encountered a fatal error"*|*"does not work under ptrace"*)
		leaks=0
		echo "test.sh: LeakSanitizer cannot run here (ptrace is restricted):" >&2
		printf '%s\n' "$probe" | head -n 5 >&2
		echo "test.sh: the sanitizer run goes on with detect_leaks=0 (ASan and UBSan only)" >&2
		note_skip "build-asan: LeakSanitizer (ptrace is restricted here): leaks unchecked"
		;;
	*)
		echo "test.sh: warning: LeakSanitizer missed the probe's leak; leak checks stay on" >&2 ;;
	esac
fi
ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# The big backup test checks the same code with fewer documents.
MAB_TEST_USERS=${MAB_TEST_USERS_ASAN:-50000}
export ASAN_OPTIONS UBSAN_OPTIONS MAB_TEST_USERS
status=0
(cd build-asan && make -j"$jobs" check) || status=$?
unset ASAN_OPTIONS UBSAN_OPTIONS MAB_TEST_USERS
tally build-asan "$status"
[ "$status" = 0 ] || finish "$status"

# ---- 3. the fuzzers ---------------------------------------------------------
status=0
if [ "${FUZZ_SECONDS:-10}" != 0 ]; then
	FUZZ_SECONDS=${FUZZ_SECONDS:-10} sh tests/fuzz/run.sh || status=$?
	if [ "$status" = 77 ]; then
		status=0
		note_skip "build-fuzz: the fuzz targets (no clang)"
	else
		p=$(grep -c '^PASS' build-fuzz/fuzz-results.txt 2>/dev/null || true)
		f=$(grep -c '^FAIL' build-fuzz/fuzz-results.txt 2>/dev/null || true)
		[ "$status" = 0 ] || [ "${f:-0}" != 0 ] || f=1	# the build failed
		echo "test.sh: build-fuzz: ${p:-0} passed, ${f:-0} failed, 0 skipped"
		passed=$(( passed + ${p:-0} ))
		failed=$(( failed + ${f:-0} ))
	fi
fi
finish "$status"
