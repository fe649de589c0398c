#!/bin/sh
# run.sh - build the libFuzzer targets and run each one for a while.
#
#   sh tests/fuzz/run.sh [NAME...]        (default: every src/*/fuzz_NAME.c)
#
# Builds in ./build-fuzz (CC=clang ../configure --enable-fuzzers), then runs
# tests/fuzz/fuzz-NAME for FUZZ_SECONDS (default 20) each, FUZZ_JOBS
# (default: the number of CPUs) at a time, starting from the seed corpus
# tests/fuzz/corpus/NAME and the regression inputs tests/fuzz/regressions/NAME.
# What a fuzzer learns stays in build-fuzz/fuzz-out/NAME/corpus for the next
# run; a crash, leak or timeout lands in build-fuzz/fuzz-out/NAME/ and fails
# the run.  Extra libFuzzer options: FUZZ_ARGS.
#
# Writes build-fuzz/fuzz-results.txt ("PASS NAME", "FAIL NAME", "SKIP why")
# for tools/test.sh's tally.  Exit: 0 all clean, 1 a fuzzer failed, 77 no
# clang (nothing run).
set -eu
cd "$(dirname "$0")/../.."
top=$PWD
self="$top/tests/fuzz/run.sh"
seconds=${FUZZ_SECONDS:-20}
builddir=${FUZZ_BUILDDIR:-build-fuzz}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

# Internal: run.sh --one NAME runs one built fuzzer (from xargs below).
if [ "${1:-}" = --one ]; then
	t=$2
	cd "$builddir"
	out="fuzz-out/$t"
	mkdir -p "$out/corpus"
	rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* "$out"/slow-unit-*
	# The corpus it grows first; the checked-in inputs after it (read only).
	set -- "$out/corpus" "$top/tests/fuzz/corpus/$t"
	[ -d "$top/tests/fuzz/regressions/$t" ] && set -- "$@" "$top/tests/fuzz/regressions/$t"
	# shellcheck disable=SC2086
	if "./tests/fuzz/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
		-artifact_prefix="$out/" -print_final_stats=1 ${FUZZ_ARGS:-} "$@" \
		>"$out/log" 2>&1; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log")
		echo "run.sh: fuzz-$t: clean, ${execs:-?} inputs in ${seconds}s" >&2
		echo "PASS $t"
		exit 0
	fi
	{
		echo "run.sh: fuzz-$t FAILED; the end of $builddir/$out/log:"
		tail -n 60 "$out/log"
		for a in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*; do
			[ -f "$a" ] || continue
			echo "run.sh: input: $builddir/$a"
			echo "run.sh: reproduce: $builddir/tests/fuzz/fuzz-$t $builddir/$a"
			echo "run.sh: once fixed, keep it: cp $builddir/$a tests/fuzz/regressions/$t/"
		done
	} >&2
	echo "FAIL $t"
	exit 0
fi

mkdir -p "$builddir"
results="$top/$builddir/fuzz-results.txt"
: > "$results"

if ! command -v clang >/dev/null 2>&1; then
	echo "run.sh: clang is not installed (apt-get install clang libclang-rt-14-dev); no fuzzing" >&2
	echo "SKIP no clang" > "$results"
	exit 77
fi

if [ $# -gt 0 ]; then
	targets="$*"
else
	targets=$(ls src/*/fuzz_*.c | sed 's|^.*/fuzz_||; s/\.c$//')
fi

[ -x configure ] || autoreconf -fi
(
	cd "$builddir"
	if [ ! -f Makefile ]; then
		echo "run.sh: configuring $builddir (CC=clang --enable-fuzzers)"
		CC=clang ../configure --enable-fuzzers >configure.out 2>&1 || {
			tail -n 30 configure.out >&2
			exit 1
		}
	fi
	progs=""
	for t in $targets; do
		progs="$progs tests/fuzz/fuzz-$t"
	done
	echo "run.sh: building$progs"
	# shellcheck disable=SC2086
	make -j"$jobs" $progs >make.out 2>&1 || {
		tail -n 50 make.out >&2
		exit 1
	}
)

echo "run.sh: fuzzing" $targets "for ${seconds}s each, $jobs at a time"
export FUZZ_SECONDS="$seconds" FUZZ_BUILDDIR="$builddir"
for t in $targets; do echo "$t"; done | xargs -P "$jobs" -n 1 sh "$self" --one >>"$results"

pass=$(grep -c '^PASS' "$results" || true)
fail=$(grep -c '^FAIL' "$results" || true)
echo "run.sh: fuzzers: $pass clean, $fail failed"
[ "$fail" = 0 ]
