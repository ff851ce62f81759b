#!/bin/sh
# Runs every suite (cmocka unit tests, then bats integration tests), each
# speaking TAP, and closes with one line: "N passed, N failed, N skipped".
# A suite that dies without reporting counts as one failure.
BUILD=${BUILD:-build/rel}
BINDIR=${BINDIR:-bin}
ONLY=${ONLY:-all}
# Sanitizer runs: fail on any report; ignore libgit2's known PCRE2 leak.
LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# libgit2 and libssh2 have no frame pointers: the slow unwinder lets a
# suppression see the libgit2 frame a leak of theirs comes from.
ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS UBSAN_OPTIONS ASAN_OPTIONS BINDIR
pass=0 fail=0 skip=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# cmocka (1.1.5) reports skip() as "not ok N # SKIP name", bats as
# "ok N name # skip": both are skips, not failures.
tally() { # $1: suite name; TAP on $log; $2: exit status
	p=$(grep -Eic '^ok ' "$log" | tr -d ' ')
	s=$(grep -Eic '^ok .*# skip' "$log" | tr -d ' ')
	ns=$(grep -Eic '^not ok .*# skip' "$log" | tr -d ' ')
	f=$(grep -Eic '^not ok ' "$log" | tr -d ' ')
	f=$((f - ns))
	if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $1 exited with status $2 without reporting a failure"
		f=1
	fi
	pass=$((pass + p - s)) skip=$((skip + s + ns)) fail=$((fail + f))
}

if [ "$ONLY" != integration ]; then
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		echo "# unit: ${t##*/}"
		CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$log" 2>&1
		st=$?
		cat "$log"
		tally "${t##*/}" "$st"
	done
fi
if [ "$ONLY" != unit ]; then
	for t in tests/integration/*.bats; do
		[ -f "$t" ] || continue
		echo "# integration: ${t##*/}"
		BUILD=$BUILD BINDIR=$BINDIR bats --tap "$t" >"$log" 2>&1
		st=$?
		cat "$log"
		tally "${t##*/}" "$st"
	done
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
