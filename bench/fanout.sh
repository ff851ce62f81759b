#!/usr/bin/env bash
# Signalling hosts over real SSH, each host a network namespace with its own
# sshd (the pipeline's key forced to `deploy-agent ssh-command`) and its own
# deploy-agent (tests/integration/netns.bash builds them).
#
#   1. fan-out: `deploy signal pong` until every host has the new release
#      live (its agent answered the sync after the health check), for 1, 4
#      and 16 hosts; the 1-host figure is the baseline of the others.
#   2. push to live over SSH: `git push` start until the new version
#      answers on a host, against a host that only polls every 11 minutes
#      (mean lag 5.5 min, half the interval: analytic, not measured); and
#      the agent's own poll path with a short poll_s, measured.
#
# Where the CPU goes: each host's sshd (with everything it forks: the
# login shell, the forced command), the forced command alone, each agent
# (with the instances it boots) and the `deploy signal` client are put in
# cgroups of their own (cpuacct or cgroup2, removed at exit) and their CPU
# time is read around every signal, per host.
#
# Needs root (ip netns). Knobs: BENCH_REPS (5), BENCH_FANOUT_SIZES
# ("1 4 16"), BENCH_POLL_S (2), BENCH_LOGIN_RC (keep: the SSH user's
# ~/.bashrc as this machine has it, which bash sources for every command
# sshd runs; empty: an empty file bound over it in a mount namespace of the
# bench's own, as a host's service account without a dev shell setup would
# have). Prints one Markdown section on stdout, progress on stderr.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOGIN_RC=${BENCH_LOGIN_RC:-keep}
LOGIN_HOME=$(getent passwd "$(id -un)" | cut -d: -f6)
LOGIN_SHELL=$(getent passwd "$(id -un)" | cut -d: -f7)
case $LOGIN_RC in
keep) ;;
empty)
	# sshd looks the user up in passwd: its rc is masked for this run's
	# processes only, never changed on the machine.
	if [ -z "${FANOUT_PRIVATE_MNT:-}" ]; then
		FANOUT_PRIVATE_MNT=1 exec unshare -m --propagation private bash "$0" "$@"
	fi
	[ ! -f "$LOGIN_HOME/.bashrc" ] || mount --bind /dev/null "$LOGIN_HOME/.bashrc"
	;;
*) echo "fanout.sh: BENCH_LOGIN_RC is keep or empty" >&2; exit 2 ;;
esac
REPS=${BENCH_REPS:-5}
SIZES=${BENCH_FANOUT_SIZES:-1 4 16}
POLL_S=${BENCH_POLL_S:-2}
DEPLOY_BIN=$ROOT/bin/deploy
AGENT_BIN=$ROOT/bin/deploy-agent
APP=pong

for b in "$DEPLOY_BIN" "$AGENT_BIN"; do
	[ -x "$b" ] || { echo "fanout.sh: $b is not built: run make" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/unideploy-fanout.XXXXXX")

wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
deploy() { "$DEPLOY_BIN" "$@"; }
# shellcheck source=../tests/integration/netns.bash
. "$ROOT/tests/integration/netns.bash"

# CPU accounting groups: cpuacct (v1) or cgroup2, whichever the machine
# has, mounted again under $T because `ip netns exec` remounts /sys and
# the forced command, inside a host's namespace, must reach its group.
CG=
CG_KIND=
CG_MNT=$T/cgroup
mkdir -p "$CG_MNT"
if grep -q ' /sys/fs/cgroup/cpuacct cgroup .*cpuacct' /proc/mounts &&
	mount -t cgroup -o cpuacct unideploy-fanout "$CG_MNT" 2>/dev/null; then
	CG_KIND=v1
elif grep -q ' cgroup2 ' /proc/mounts &&
	mount -t cgroup2 unideploy-fanout "$CG_MNT" 2>/dev/null; then
	CG_KIND=v2
fi
[ -z "$CG_KIND" ] || CG=$CG_MNT/unideploy-fanout.$$
COMPONENTS="client sshd cmd agent"
if [ -n "$CG" ]; then
	for c in $COMPONENTS; do mkdir -p "$CG/$c" 2>/dev/null || CG=; done
fi
# cg_usage C: CPU-seconds so far of everything that ran in group C
cg_usage() {
	if [ "$CG_KIND" = v1 ]; then
		awk '{ printf "%.6f", $1 / 1e9 }' "$CG/$1/cpuacct.usage"
	else
		awk '$1 == "usage_usec" { printf "%.6f", $2 / 1e6 }' "$CG/$1/cpu.stat"
	fi
}
cg_join() { [ -z "$CG" ] || echo "$2" >"$CG/$1/cgroup.procs"; }
cg_remove() {
	local c p
	[ -n "$CG" ] && [ -d "$CG" ] || return 0
	for c in $COMPONENTS; do
		# anything left (nothing should be) goes back to the root group
		while read -r p; do
			echo "$p" >"${CG%/*}/cgroup.procs" 2>/dev/null || true
		done <"$CG/$c/cgroup.procs" 2>/dev/null
		rmdir "$CG/$c" 2>/dev/null || true
	done
	rmdir "$CG" 2>/dev/null || true
}
cg_unmount() { [ -z "$CG_KIND" ] || umount "$CG_MNT" 2>/dev/null || true; }

cleanup() {
	netns_teardown || true
	cg_remove
	cg_unmount
	# never into a group hierarchy still mounted
	mountpoint -q "$T/cgroup" 2>/dev/null || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "fanout: $*" >&2; }
now() { echo "$EPOCHREALTIME"; }
# CPU-seconds the whole machine has spent busy (all CPUs, every process:
# ours and anyone else's), from /proc/stat
cpu_busy() {
	awk -v hz="$(getconf CLK_TCK)" '$1 == "cpu" { printf "%.3f", ($2 + $3 + $4 + $7 + $8) / hz; exit }' /proc/stat
}
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "n/a"; exit }
		if (NR % 2) printf "%.3f", v[(NR + 1) / 2]
		else printf "%.3f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }

export GIT_AUTHOR_NAME=Bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=Bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home DEPLOY_CACHE_ROOT=$T/cache
mkdir -p "$HOME"

netns_init
if [ -n "$NETNS_UNAVAILABLE" ]; then
	printf '## SSH fan-out and push to live over SSH\n\nNot measured: network namespaces unavailable (%s).\n' \
		"$NETNS_UNAVAILABLE"
	exit 0
fi

DREPO=$T/deploy.git APPREPO=$T/app.git W=$T/work
export DEPLOY_REPO=$DREPO
deploy init "$DREPO" >/dev/null
git init -q --bare -b main "$APPREPO"
deploy hook install "$APPREPO" >/dev/null
git clone -q "$APPREPO" "$W" 2>/dev/null
git -C "$W" checkout -q -b main 2>/dev/null || true
cp "$ROOT/templates/pong/pong.c" "$ROOT/templates/pong/deploy.json" "$W/"
netns_pipeline_key

max=0
for n in $SIZES; do [ "$n" -le "$max" ] || max=$n; done
say "starting $max hosts (namespace, sshd, agent each)"
for ((i = 1; i <= max; i++)); do
	netns_host "edge$i" "$i"
	if [ -n "$CG" ]; then
		d=$(netns_dir "edge$i")
		cg_join sshd "$(cat "$d/sshd/sshd.pid")"
		cg_join agent "$(cat "$d/agent.pid")"
		# the forced command moves itself to its own group, then is
		# exactly what it was (the shell's exec)
		sed -i "s|command=\"|command=\"echo \$\$ >$CG/cmd/cgroup.procs \&\& exec |" \
			"$d/sshd/authorized_keys"
	fi
done
netns_host poller 250 ".poll_s = $POLL_S"
[ -n "$CG" ] || say "no writable cgroup hierarchy: no per-component CPU figures"

# cpu_sample FILE: every component's CPU-seconds so far, one line
cpu_sample() {
	local c
	if [ -z "$CG" ]; then echo >"$1"; return; fi
	for c in $COMPONENTS; do printf '%s ' "$(cg_usage "$c")"; done >"$1"
}
# cpu_record N KIND: the components' CPU-s per host between the samples
# $T/c0 and $T/c1, appended to $T/comp.KIND.N.COMPONENT
cpu_record() {
	local c i=1 a b
	[ -n "$CG" ] || return 0
	for c in $COMPONENTS; do
		a=$(cut -d' ' -f$i "$T/c0") b=$(cut -d' ' -f$i "$T/c1")
		awk -v a="$a" -v b="$b" -v n="$1" 'BEGIN { printf "%.4f\n", (b - a) / n }' \
			>>"$T/comp.$2.$1.$c"
		i=$((i + 1))
	done
}
# the client in its own group: a subshell joins it, then execs
signal() {
	(
		cg_join client "$BASHPID"
		exec "$DEPLOY_BIN" signal "$APP"
	)
}
# the login shell's own start, as sshd runs it for a command (bash reads
# ~/.bashrc when it sees SSH_CLIENT): CPU-s of one, from its rusage
login_shell_cpu() {
	local t
	t=$( { TIMEFORMAT='%U %S'; time env -i HOME="$LOGIN_HOME" \
		SSH_CLIENT="127.0.0.1 1 22" PATH=/usr/bin:/bin \
		"$LOGIN_SHELL" -c true; } 2>&1 >/dev/null)
	awk -v t="$t" 'BEGIN { split(t, v, " "); printf "%.4f", v[1] + v[2] }'
}

version=0
# commit_version: a new VERSION in the work clone, committed; sets $version
commit_version() {
	version=$((version + 1))
	echo "v$version" >"$W/VERSION"
	git -C "$W" add -A
	git -C "$W" commit -q -m "pong v$version"
}
all_answer() {
	local h
	for h in "$@"; do netns_answer_is "$h" "pong v$version" || return 1; done
}
place() {
	local IFS=,
	deploy place "$APP" --hosts "$*" --listen "$NETNS_LISTEN" >/dev/null
}

# 1. fan-out
declare -A live noop cpu comp
for n in $SIZES; do
	hosts=()
	for ((i = 1; i <= n; i++)); do hosts+=("edge$i"); done
	place "${hosts[@]}"
	# untimed: every placed host running some release first
	commit_version
	deploy publish --source "$W" >/dev/null
	all_answer "${hosts[@]}"
	: >"$T/live.$n" && : >"$T/noop.$n" && : >"$T/cpu.$n"
	for ((r = 1; r <= REPS; r++)); do
		commit_version
		deploy publish --source "$W" --no-signal >/dev/null
		cpu_sample "$T/c0"
		c0=$(cpu_busy)
		t0=$(now)
		signal >"$T/signal.out"
		t1=$(now)
		c1=$(cpu_busy)
		cpu_sample "$T/c1"
		cpu_record "$n" live
		all_answer "${hosts[@]}" || { cat "$T/signal.out" >&2; exit 1; }
		elapsed "$t0" "$t1" >>"$T/live.$n" && echo >>"$T/live.$n"
		elapsed "$c0" "$c1" >>"$T/cpu.$n" && echo >>"$T/cpu.$n"
		cpu_sample "$T/c0"
		t0=$(now)
		signal >/dev/null
		t1=$(now)
		cpu_sample "$T/c1"
		cpu_record "$n" noop
		elapsed "$t0" "$t1" >>"$T/noop.$n" && echo >>"$T/noop.$n"
		say "$n host(s), rep $r: new release $(tail -n1 "$T/live.$n") s (machine busy $(tail -n1 "$T/cpu.$n") CPU-s), nothing new $(tail -n1 "$T/noop.$n") s"
	done
	for kind in live noop; do
		for c in $COMPONENTS; do
			comp[$kind.$c.$n]=$( (cat "$T/comp.$kind.$n.$c" 2>/dev/null || true) | median)
		done
	done
	live[$n]=$(median <"$T/live.$n")
	noop[$n]=$(median <"$T/noop.$n")
	cpu[$n]=$(median <"$T/cpu.$n")
done

# 2. push to live over SSH, on one host
place edge1
commit_version
deploy publish --source "$W" >/dev/null
: >"$T/push"
for ((r = 1; r <= REPS; r++)); do
	commit_version
	t0=$(now)
	git -C "$W" push -q origin HEAD:main >"$T/push.out" 2>&1
	wait_until 60 all_answer edge1 || { cat "$T/push.out" >&2; exit 1; }
	t1=$(now)
	elapsed "$t0" "$t1" >>"$T/push" && echo >>"$T/push"
	say "push to live, rep $r: $(tail -n1 "$T/push") s"
done
push_live=$(median <"$T/push")

# the agent's poll: a host nobody signals
place poller
commit_version
deploy publish --source "$W" >/dev/null
: >"$T/poll"
for ((r = 1; r <= REPS; r++)); do
	commit_version
	deploy publish --source "$W" --no-signal >/dev/null
	t0=$(now)
	wait_until $((POLL_S * 3 + 60)) all_answer poller
	t1=$(now)
	elapsed "$t0" "$t1" >>"$T/poll" && echo >>"$T/poll"
	say "poll (poll_s $POLL_S), rep $r: $(tail -n1 "$T/poll") s"
done
poll_live=$(median <"$T/poll")
baseline=330

login_rc_cpu=$(for r in 1 2 3 4 5; do login_shell_cpu; echo; done | median)

first=${SIZES%% *}
last=${SIZES##* }
{
	echo "## SSH fan-out and push to live over SSH (hosts as network namespaces)"
	echo
	printf '| figure, median of %s |' "$REPS"
	for n in $SIZES; do printf ' %s host%s |' "$n" "$([ "$n" = 1 ] || echo s)"; done
	printf ' ratio %s / %s hosts |\n' "$last" "$first"
	printf '|---|'
	for n in $SIZES; do printf -- '---|'; done
	printf -- '---|\n'
	printf '| `deploy signal` → new release live on every host |'
	for n in $SIZES; do printf ' %s s |' "${live[$n]}"; done
	printf ' %s |\n' "$(ratio "${live[$last]}" "${live[$first]}")"
	printf '| machine CPU busy during that signal (all CPUs, all processes) |'
	for n in $SIZES; do printf ' %s CPU-s |' "${cpu[$n]}"; done
	printf ' %s |\n' "$(ratio "${cpu[$last]}" "${cpu[$first]}")"
	printf '| `deploy signal`, nothing new (SSH round trip + no-op sync) |'
	for n in $SIZES; do printf ' %s s |' "${noop[$n]}"; done
	printf ' %s |\n' "$(ratio "${noop[$last]}" "${noop[$first]}")"
	comp_row() {
		printf '| %s |' "$3"
		for n in $SIZES; do printf ' %s CPU-s |' "${comp[$1.$2.$n]}"; done
		printf ' %s |\n' "$(ratio "${comp[$1.$2.$last]}" "${comp[$1.$2.$first]}")"
	}
	if [ -n "$CG" ]; then
		comp_row live client 'new release, per host: `deploy signal` client (its share)'
		comp_row live sshd 'new release, per host: sshd (connection, login shell, forced command)'
		comp_row live cmd 'new release, per host: of which `deploy-agent ssh-command`'
		comp_row live agent 'new release, per host: agent (sync, boot, health check, the instance)'
		comp_row noop client 'nothing new, per host: `deploy signal` client (its share)'
		comp_row noop sshd 'nothing new, per host: sshd (connection, login shell, forced command)'
		comp_row noop cmd 'nothing new, per host: of which `deploy-agent ssh-command`'
		comp_row noop agent 'nothing new, per host: agent (no-op sync)'
	fi
	printf '| login shell start as sshd runs it (`%s -c`, ~/.bashrc: %s), any host count | %s CPU-s |' \
		"$LOGIN_SHELL" "$LOGIN_RC" "$login_rc_cpu"
	for n in $SIZES; do printf ' |'; done
	echo
	echo
	printf '| figure, median of %s | measured | baseline: a host polling every 11 min | baseline / measured |\n' "$REPS"
	echo '|---|---|---|---|'
	printf '| `git push` start → new version answers on an SSH host | %s s | %s s (analytic mean lag) | %s |\n' \
		"$push_live" "$baseline" "$(ratio "$baseline" "$push_live")"
	printf '| release committed (`publish --no-signal`) → answers on a host polling every %s s | %s s | | |\n' \
		"$POLL_S" "$poll_live"
	echo
	echo "Each host is a network namespace on a bridge (10.x.y.i/24) running its own"
	echo "sshd and deploy-agent (poll_s 3600, so only the signal moves it) and serving"
	echo "pong at 127.0.0.1:8080 inside its namespace; the pipeline reaches each over"
	echo "SSH with its key in DEPLOY_SSH_KEY, host keys checked, forced command"
	echo "\`deploy-agent ssh-command\`. Fan-out: a release is published with"
	echo "\`--no-signal\`, then \`deploy signal pong\` is timed until it returns, which"
	echo "is when every host has answered that the release passed its health check"
	echo "(each host's answer is then checked with curl inside its namespace). All"
	echo "hosts, their sshd, agents and instances share this machine's $(nproc) CPUs"
	echo "(and with whatever else runs on it: the CPU row counts every process, from"
	echo "/proc/stat; busy CPU-seconds close to $(nproc) × the elapsed time mean the"
	echo "fan-out was bound by this machine's CPUs, not by waiting on one host after another)."
	echo "Per-host CPU rows: CPU-seconds of each part divided by the hosts signalled,"
	echo "read from cgroups (${CG_KIND:-none}) around each signal. sshd includes everything"
	echo "it forks per connection: its re-exec and privilege separation, the user's"
	echo "login shell (bash sources ~/.bashrc for commands run by sshd; BENCH_LOGIN_RC"
	echo "was $LOGIN_RC) and the forced command, which is also shown alone."
	echo "Push to live: \`git push\` through the post-receive hook (build, publish,"
	echo "signal over SSH) until curl in the host's namespace gets the new version."
	echo "The 11-minute baseline is not measured: a poll lands uniformly within the"
	echo "interval, so the mean lag is half of it, 330 s, plus the same sync. The poll"
	echo "row times a host that is never signalled (poll_s $POLL_S): expected ≈ poll_s/2 + a sync."
}
