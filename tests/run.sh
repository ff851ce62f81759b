#!/bin/bash
# Runs every suite (cmocka unit tests and bats integration tests), each
# speaking TAP, and closes with one line: "N passed, N failed, N skipped".
# A suite that dies without reporting counts as one failure.
#
# Suites run concurrently, JOBS at a time (default: three per CPU: most of
# them wait on processes, sockets and boots, not on the CPU). Each suite's
# TAP is kept in a file of its own and printed whole, under its "# unit:" or
# "# integration:" line, when it ends, then counted (bats lines end with
# each test's time: "in N ms"). The slowest suites of
# the last run start first (their times are kept in $BUILD/tests/.times),
# so the run is not left waiting on one long suite started last. Suites
# must not share names, ports or files for this: see the top of
# tests/integration/helpers.bash.
#
#   ONLY=unit|integration|all   which suites (default all)
#   JOBS=N                      how many at once (JOBS=1: one after another)
#   SUITES="agent summon ..."   only these integration suites (file names
#                               without .bats)
# Debian's tools first (ci/install-deps.sh), not a shim of the person
# running the tests: pyenv's python3 shim costs seconds a call under load.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
BUILD=${BUILD:-build/rel}
BINDIR=${BINDIR:-bin}
ONLY=${ONLY:-all}
ncpu=$(nproc 2>/dev/null || echo 2)
JOBS=${JOBS:-$((ncpu * 3))}
# Sanitizer runs: fail on any report; ignore libgit2's known PCRE2 leak.
LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# libgit2 and libssh2 have no frame pointers: the slow unwinder lets a
# suppression see the libgit2 frame a leak of theirs comes from.
ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export LSAN_OPTIONS UBSAN_OPTIONS ASAN_OPTIONS BINDIR BUILD
pass=0 fail=0 skip=0
out=$(mktemp -d)
times=$BUILD/tests/.times
# A run stopped half way (^C) takes its suites with it.
trap 'jobs -p | xargs -r kill 2>/dev/null; rm -rf "$out"' EXIT
trap 'exit 130' INT TERM

# cmocka (1.1.5) reports skip() as "not ok N # SKIP name", bats as
# "ok N name # skip": both are skips, not failures.
tally() { # $1: suite name; $2: its TAP; $3: exit status
	local p s ns f
	p=$(grep -Eic '^ok ' "$2")
	s=$(grep -Eic '^ok .*# skip' "$2")
	ns=$(grep -Eic '^not ok .*# skip' "$2")
	f=$(grep -Eic '^not ok ' "$2")
	f=$((f - ns))
	if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "not ok - $1 exited with status $3 without reporting a failure"
		f=1
	fi
	pass=$((pass + p - s)) skip=$((skip + s + ns)) fail=$((fail + f))
}

# The suites, "KIND NAME PATH" a line, slowest of the last run first (a
# suite never timed counts as slow: it may be).
list() {
	local t
	if [ "$ONLY" != integration ]; then
		for t in "$BUILD"/tests/test_*; do
			[ -x "$t" ] && echo "unit ${t##*/} $t"
		done
	fi
	if [ "$ONLY" != unit ]; then
		for t in tests/integration/*.bats; do
			[ -f "$t" ] || continue
			if [ -n "${SUITES:-}" ]; then
				case " $SUITES " in *" $(basename "$t" .bats) "*) ;; *) continue ;; esac
			fi
			echo "integration ${t##*/} $t"
		done
	fi
}
ordered() {
	list | while read -r kind name path; do
		s=$(awk -v n="$name" '$1 == n { print $2 }' "$times" 2>/dev/null)
		echo "${s:-100000} $kind $name $path"
	done | sort -k1,1nr | cut -d' ' -f2-
}

# run_suite I KIND NAME PATH: TAP in $out/I.tap, status in $out/I.rc
run_suite() {
	local i=$1 kind=$2 name=$3 path=$4 st start
	start=$SECONDS
	if [ "$kind" = unit ]; then
		CMOCKA_MESSAGE_OUTPUT=TAP "$path" >"$out/$i.tap" 2>&1
	else
		bats --tap --timing "$path" >"$out/$i.tap" 2>&1
	fi
	st=$?
	echo "$name $((SECONDS - start))" >"$out/$i.time"
	echo "$st" >"$out/$i.rc"
}

# report I KIND NAME: print a finished suite's TAP and count it.
report() {
	echo "# $2: $3"
	cat "$out/$1.tap"
	tally "$3" "$out/$1.tap" "$(cat "$out/$1.rc")"
	rm -f "$out/$1.tap"
}

declare -A running=() # job index -> "KIND NAME"
i=0
reap() { # report every suite that has ended
	local j
	for j in "${!running[@]}"; do
		[ -e "$out/$j.rc" ] || continue
		# shellcheck disable=SC2086
		report "$j" ${running[$j]}
		unset "running[$j]"
	done
}
while read -r kind name path; do
	while [ "${#running[@]}" -ge "$JOBS" ]; do
		wait -n 2>/dev/null || true
		reap
	done
	i=$((i + 1))
	running[$i]="$kind $name"
	# fd 3 closed for the same reason helpers.bash closes it: nothing
	# this suite starts may hold up the others' output.
	run_suite "$i" "$kind" "$name" "$path" 3>&- &
done < <(ordered)
while [ "${#running[@]}" -gt 0 ]; do
	wait -n 2>/dev/null || sleep 0.2
	reap
done

# keep this run's times for the next one's order
if [ -d "$BUILD/tests" ]; then
	{
		cat "$out"/*.time 2>/dev/null
		[ -f "$times" ] && cat "$times"
	} | awk '!seen[$1]++' >"$times.new" && mv "$times.new" "$times"
fi
echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
