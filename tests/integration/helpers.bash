# Shared by every integration suite (`load helpers`): a fresh world per test.
#
# setup() builds, under one temp dir $T:
#   $DREPO     the deployment repository (deploy init), $DEPLOY_REPO points at it
#   $APPREPO   a bare app repository with the hook installed: pre-receive
#              (the default), or post-receive when the suite sets
#              HOOK_INSTALL_OPTS=--post-receive before setup_world
#   $W         a work clone of it holding the pong sample app (not committed)
#   an agent   (host "local", control unix:$T/agent.sock, state $T/state)
#              running in the background, log in $T/agent.log
#   pong is placed on "local" and served at $LISTEN (a free port).
# teardown() stops the agent and fails the test if anything started from $T
# (agent, instance, build) is still running, then removes $T.
#
# Processes the product starts carry UD_IT_MARK=$T in their environment (the
# agent, pushes and deploy commands are started with it; the test shell never
# exports it), so leftovers are found by that mark or by an executable under $T.
#
# Isolation: tests/run.sh runs the suites concurrently (and other people may
# run theirs on the same machine), so a test owns nothing machine-wide by a
# fixed name. The rules, for every suite:
#   - files: only under $T (or a mktemp of your own); never a fixed /tmp path.
#   - TCP/UDP ports: free_port, never a fixed number in the root namespace.
#     It hands out ports below the kernel's ephemeral range (no outgoing
#     connection can take them meanwhile) and claims each for this test
#     until teardown_world, so two suites never get the same one.
#   - network namespaces, bridges, veths, taps in the root namespace:
#     it_name PREFIX gives a name no other live test uses (at most 15
#     characters for a link: keep PREFIX to 5); it_netns_add NAME creates
#     one (netns.bash does this for its hosts). A fixed name is fine only
#     inside a namespace of the test's own.
#   - processes: end only those you started, by PID, or those that
#     leftover_pids finds under $T; never pkill/killall by name.
#   - system users: it_user NAME creates one once, safe when two suites
#     ask at the same moment; never delete it.
#   - waits: wait_until SECONDS CMD for the event meant, with a generous
#     bound (the machine may be loaded); never a fixed sleep to let
#     something happen.

bats_require_minimum_version 1.5.0 # run --separate-stderr

# The tests' tools are Debian's (ci/install-deps.sh): they come first, not a
# shim of the person running the tests (pyenv's python3 shim took 28 s a
# call on a loaded machine, /usr/bin/python3 under 3).
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
BUILD=${BUILD:-build/rel}
# make passes BINDIR: bin for the plain build, build/san/bin for SANITIZE=1
case ${BINDIR:-bin} in /*) BIN=$BINDIR ;; *) BIN=$ROOT/${BINDIR:-bin} ;; esac
DEPLOY_BIN=$BIN/deploy
AGENT_BIN=$BIN/deploy-agent
APP=pong

export GIT_AUTHOR_NAME="Int Test" GIT_AUTHOR_EMAIL="it@example.invalid"
export GIT_COMMITTER_NAME="Int Test" GIT_COMMITTER_EMAIL="it@example.invalid"
export GIT_CONFIG_NOSYSTEM=1

# Ports claimed by live tests: a directory per port, holding the claiming
# test's $T (claims of a test whose $T is gone are stale).
IT_PORTS=${IT_PORTS:-/tmp/unideploy-it-ports}

# A TCP and UDP port on 127.0.0.1 that nobody listens on right now and no
# other test holds: picked at random below the ephemeral range, claimed for
# this test until teardown_world. Outside a test ($T unset), unclaimed.
free_port() {
	local lo hi p i
	read -r lo hi </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
	hi=$((lo > 20000 ? lo - 1 : 32767)) lo=$((lo > 20000 ? 10000 : 20000))
	[ -d "$IT_PORTS" ] || mkdir -p "$IT_PORTS" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
		it_claim_port "$p" || continue
		# no socket of any address on it, TCP or UDP (one grep, not a
		# python start: forks are what a loaded machine makes slow)
		if ! grep -qi ":$(printf %04X "$p") " /proc/net/tcp /proc/net/tcp6 \
			/proc/net/udp /proc/net/udp6 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "free_port: no free port in $lo-$hi" >&2
	return 1
}
# it_claim_port PORT: claim PORT for this test ($T), taking over a stale
# claim; fails when a live test holds it.
it_claim_port() {
	local d=$IT_PORTS/$1 owner
	[ -n "${T:-}" ] || return 0
	if ! mkdir "$d" 2>/dev/null; then
		owner=$(cat "$d/owner" 2>/dev/null) || return 1
		# a claim being written, or a live test's
		[ -n "$owner" ] && [ ! -d "$owner" ] || return 1
		# stale: take it over (one taker wins the rename)
		mv "$d" "$d.stale.$BASHPID" 2>/dev/null || return 1
		rm -rf "$d.stale.$BASHPID"
		mkdir "$d" 2>/dev/null || return 1
	fi
	echo "$T" >"$d/owner"
}
# it_release_ports: give back this test's ports (teardown_world does).
it_release_ports() {
	local d
	[ -n "${T:-}" ] || return 0
	grep -lxF "$T" "$IT_PORTS"/*/owner 2>/dev/null | while read -r d; do
		rm -rf "${d%/owner}"
	done
}

# it_name PREFIX: PREFIX and this test's number $IT_ID, unique among live
# tests of any suite: for names the kernel keeps machine-wide (namespaces,
# links). The number is a port this test claimed (it_begin), so it holds
# until teardown_world; setup_world makes it the listen port, $LISTEN.
it_name() {
	[ -n "${IT_ID:-}" ] || { echo "it_name: no it_begin yet" >&2; return 1; }
	echo "$1$IT_ID"
}
# it_netns_add NAME: create network namespace NAME (from it_name), lo up.
it_netns_add() {
	ip netns add "$1" && ip -n "$1" link set lo up
}
# it_user NAME: a system user (no home, no shell), created once, as a
# package would; two suites asking at once both succeed.
it_user() {
	id -u "$1" >/dev/null 2>&1 ||
		useradd --system --no-create-home --shell /usr/sbin/nologin "$1" 2>/dev/null ||
		id -u "$1" >/dev/null 2>&1
}

# it_sleep SECONDS: sleep without a fork (a read that times out on a pipe
# nobody writes to): on a loaded machine each `sleep` process costs more
# than the pause it asks for.
it_sleep() {
	if [ -z "${IT_SLEEP_FD:-}" ]; then
		exec {IT_SLEEP_FD}<> <(:) || { sleep "$1"; return 0; }
	fi
	read -rt "$1" -u "$IT_SLEEP_FD" _ || true
}

# wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds; fails
# when the deadline passes.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		it_sleep 0.1
	done
}

# refute CMD...: CMD must fail (a bare `! cmd` never fails a bats test).
refute() {
	if "$@"; then
		echo "expected to fail: $*" >&2
		return 1
	fi
}

# The CLI, marked so a leftover child would be found by teardown.
deploy() { env UD_IT_MARK="$T" "$DEPLOY_BIN" "$@"; }
agent_cli() { env UD_IT_MARK="$T" "$AGENT_BIN" --config "$T/agent.json" "$@"; }

# Plain git on the deployment repository.
dgit() { git --git-dir="$DREPO" "$@"; }
main_rev() { dgit rev-parse main; }
manifest() { dgit show "main:apps/$APP/releases/$1/manifest.json"; }
current_release() { dgit show "main:apps/$APP/current"; }
tags() { dgit tag -l "$APP/v*" | sort -V | tr '\n' ' '; }

# A suite whose agent runs in a network namespace of its own (a VM host
# network) sets NS_EXEC="ip netns exec NAME" before setup_world: the agent
# and every client of its listen addresses run there.
NS_EXEC=

# GET through the placement's listen address; prints the body.
answer() { $NS_EXEC curl -s --max-time 10 "http://$LISTEN${1:-/}"; }
answer_is() { [ "$(answer)" = "$1" ]; }

# PIDs of the processes running an executable under the state dir: the
# instances the agent started.
# One find, not a readlink per process: on a busy machine a loop of forks
# over /proc takes seconds, longer than the idle stops the tests watch.
instance_pids() {
	find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$T/state/*" \
		2>/dev/null | cut -d/ -f3
}
# gone PID: the process has exited (a zombie counts: it serves nothing).
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
instance_count() { instance_pids | wc -l; }
# The qemu processes of a test: their kernel is an image under $T. (One
# grep over /proc, not a fork per process.)
qemu_pids() {
	local f p
	for f in $(grep -lz "^$T/state/images/" /proc/[0-9]*/cmdline 2>/dev/null); do
		p=${f%/cmdline}
		case $(readlink "$p/exe" 2>/dev/null) in */qemu-system-*) echo "${p#/proc/}" ;; esac
	done
}
qemu_count() { qemu_pids | wc -l; }
no_qemu() { [ -z "$(qemu_pids)" ]; }
# stop_agent_and_vms SECONDS: for a VM suite's teardown: stop the agent,
# give its VMs SECONDS to go, kill those left; VMS_LEFT holds their PIDs.
# (Not run in $(...): stop_agent must wait for the agent, its child.)
stop_agent_and_vms() {
	stop_agent TERM
	wait_until "$1" no_qemu || true
	VMS_LEFT=$(qemu_pids)
	[ -z "$VMS_LEFT" ] || kill -KILL $VMS_LEFT 2>/dev/null || true
}
# For wait_until (its arguments are expanded once, before it polls: a
# `wait_until N test "$(cmd)" ...` tests one value N seconds long):
instances_are() { [ "$(instance_count)" -eq "$1" ]; }
# output_is TEXT CMD...: CMD prints TEXT; lines_are N CMD...: N lines.
output_is() { [ "$("${@:2}")" = "$1" ]; }
lines_are() { [ "$("${@:2}" | grep -c .)" -eq "$1" ]; }

# Every live process started from this test (mark in its environment, the
# agent's instance marker for a state dir under $T, which VMs carry too, or
# its executable under $T), but never this shell.
leftover_pids() {
	local p
	{
		grep -lzx "UD_IT_MARK=$T" /proc/[0-9]*/environ 2>/dev/null |
			sed 's,^/proc/,,; s,/environ$,,'
		grep -lz "^UNIDEPLOY_STATE_DIR=$T/" /proc/[0-9]*/environ 2>/dev/null |
			sed 's,^/proc/,,; s,/environ$,,'
		# one find, not a readlink per process: on a loaded machine
		# with a few hundred processes those forks took 20 s
		find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$T/*" \
			2>/dev/null | cut -d/ -f3
	} | sort -u | while read -r p; do
		[ "$p" != "$$" ] && [ "$p" != "$BASHPID" ] || continue
		# zombies are gone already, only not reaped
		grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null && continue
		[ -e "/proc/$p" ] && echo "$p"
	done
}

no_leftovers() { [ -z "$(leftover_pids)" ]; }

# instance_user: the system user tests run instances as (agent.json
# "user"), created once as a package would.
instance_user() { it_user udinst; }

start_agent() {
	# fd 3 closed: bats waits for every holder of it before finishing
	$NS_EXEC env UD_IT_MARK="$T" "$AGENT_BIN" --config "$T/agent.json" run \
		>>"$T/agent.log" 2>&1 3>&- &
	AGENT_PID=$!
	if ! wait_until 60 test -S "$T/agent.sock"; then
		echo "deploy-agent did not create its socket; its log:" >&2
		cat "$T/agent.log" >&2
		return 1
	fi
	# the socket may exist before it accepts: wait for a status answer
	# (its exit status is 1 also when it answers that an app failed)
	wait_until 60 agent_answers
}
agent_answers() { agent_cli status --json 2>/dev/null | jq -e .ok >/dev/null; }

# stop_agent [SIGNAL]: TERM (default) then KILL after 30 s.
stop_agent() {
	local sig=${1:-TERM}
	[ -n "$AGENT_PID" ] || return 0
	kill -"$sig" "$AGENT_PID" 2>/dev/null || true
	if ! wait_until 30 sh -c "! kill -0 $AGENT_PID 2>/dev/null || grep -q '^State:.*Z' /proc/$AGENT_PID/status"; then
		kill -KILL "$AGENT_PID" 2>/dev/null || true
	fi
	wait "$AGENT_PID" 2>/dev/null || true
	AGENT_PID=
}

# write_deploy_json [BUILD_COMMAND [EXTRA_JQ]]: the work clone's deploy.json
# from the template, with another build.command and/or a jq edit.
write_deploy_json() {
	local cmd=${1:-} edit=${2:-.}
	if [ -n "$cmd" ]; then
		jq --arg c "$cmd" '.build.command = $c' "$ROOT/templates/pong/deploy.json" |
			jq "$edit" >"$W/deploy.json"
	else
		jq "$edit" "$ROOT/templates/pong/deploy.json" >"$W/deploy.json"
	fi
}
# The template's build command, with extra cc flags.
pong_build_cmd() {
	echo "mkdir -p dist && cc -O2 $1 -DVERSION=\"\\\"\$(cat VERSION)\\\"\" -o dist/pong pong.c -lpthread"
}

set_version() { echo "$1" >"$W/VERSION"; }

# commit_all MESSAGE: commit the work clone's changes.
commit_all() {
	git -C "$W" add -A
	git -C "$W" commit -q --allow-empty -m "$1"
}

# push [REFSPEC]: push the work clone; output in $PUSH_OUT, status in
# $PUSH_STATUS (with a post-receive hook git push succeeds even when the
# deploy fails: read the output; a pre-receive hook rejects the push).
push() {
	local refspec=${1:-HEAD:main}
	PUSH_STATUS=0
	(cd "$W" && env -u DEPLOY_REPO UD_IT_MARK="$T" git push origin "$refspec") \
		>"$T/push.out" 2>&1 || PUSH_STATUS=$?
	PUSH_OUT=$(cat "$T/push.out")
	printf '%s\n' "--- push $refspec (status $PUSH_STATUS):" "$PUSH_OUT" >&2
}

# release_version V: commit VERSION=V and push it to main.
release_version() {
	set_version "$1"
	commit_all "pong $1"
	push
}

# Background clients hammering the listen address until stop_load; each
# request on a new connection. Answers go to $T/load.<i>.
start_load() {
	local i n=${1:-2}
	rm -f "$T/load.stop"
	LOAD_PIDS=()
	for ((i = 0; i < n; i++)); do
		(
			ok=0 bad=0
			while [ ! -e "$T/load.stop" ]; do
				if body=$($NS_EXEC curl -sf --max-time 10 "http://$LISTEN/"); then
					ok=$((ok + 1))
					echo "$body" >>"$T/load.$i.bodies"
				else
					bad=$((bad + 1))
					echo "FAILED $(date +%T.%N)" >>"$T/load.$i.bodies"
				fi
			done
			echo "$ok $bad" >"$T/load.$i"
		) 3>&- &
		LOAD_PIDS+=($!)
	done
}
# For wait_until, while the load runs: every client has an answer BODY /
# the clients have more than N answers between them (the bodies files
# grow as they go; LOAD_OK is counted only at stop_load).
load_all_saw() {
	local i
	for i in "${!LOAD_PIDS[@]}"; do
		grep -qx "$1" "$T/load.$i.bodies" 2>/dev/null || return 1
	done
}
load_answers_over() {
	[ "$(cat "$T"/load.*.bodies 2>/dev/null | grep -vc '^FAILED')" -gt "$1" ]
}
# For wait_until: the agent's proxy holds at least N open connections to
# the app (a request is really in flight, however slowly its client
# started).
connections_at_least() {
	local n
	n=$(agent_cli status --json 2>/dev/null | jq -r ".apps.$APP.connections // 0") || return 1
	[ "${n:-0}" -ge "$1" ]
}
# stop_load: sets LOAD_OK, LOAD_FAILED (totals).
stop_load() {
	local i f
	touch "$T/load.stop"
	for i in "${LOAD_PIDS[@]}"; do wait "$i" || true; done
	LOAD_OK=0 LOAD_FAILED=0
	for f in "$T"/load.[0-9]; do
		read -r o b <"$f"
		LOAD_OK=$((LOAD_OK + o)) LOAD_FAILED=$((LOAD_FAILED + b))
	done
	LOAD_PIDS=()
}

setup() { setup_world; }
teardown() { teardown_world; }

# it_begin: this test's temp dir $T and its unique number $IT_ID (see
# it_name). setup_world calls it; a setup that needs it_name before
# setup_world calls it first.
it_begin() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/udit.XXXXXX")
	# mktemp's 0700 would keep an agent.json "user" out of $T/state
	chmod 711 "$T"
	IT_ID=$(free_port)
}

setup_world() {
	if ! [ -x "$DEPLOY_BIN" ] || ! [ -x "$AGENT_BIN" ]; then
		echo "bin/deploy and bin/deploy-agent are not built: run make" >&2
		return 1
	fi
	# a suite's setup may have begun the test to name things first
	[ -n "${T:-}" ] && [ -d "$T" ] || it_begin
	DREPO=$T/deploy.git
	APPREPO=$T/app.git
	W=$T/work
	export HOME=$T/home DEPLOY_CACHE_ROOT=$T/cache DEPLOY_REPO=$DREPO
	mkdir -p "$HOME" "$T/state"
	# the test's own claimed port (it_begin) serves as its listen port
	LISTEN=127.0.0.1:$IT_ID
	AGENT_PID=

	deploy init "$DREPO"
	git init -q --bare -b main "$APPREPO"
	deploy hook install "$APPREPO" ${HOOK_INSTALL_OPTS:-}
	deploy host add local --agent "unix:$T/agent.sock"
	deploy place "$APP" --hosts local --listen "$LISTEN"

	jq -n --arg repo "$DREPO" --arg state "$T/state" --arg ctl "unix:$T/agent.sock" \
		'{host: "local", repo: $repo, state_dir: $state, control: $ctl, poll_s: 3600}' |
		jq "${AGENT_JQ:-.}" >"$T/agent.json"
	start_agent

	git clone -q "$APPREPO" "$W" 2>/dev/null
	git -C "$W" checkout -q -b main 2>/dev/null || true
	cp "$ROOT/templates/pong/pong.c" "$ROOT/templates/pong/deploy.json" \
		"$ROOT/templates/pong/VERSION" "$W/"
}

teardown_world() {
	local left p
	[ -n "${T:-}" ] || return 0
	stop_agent TERM
	[ "${#LOAD_PIDS[@]}" -eq 0 ] || stop_load
	# what a killed process leaves may take a moment to disappear
	wait_until 30 no_leftovers || true
	left=$(leftover_pids)
	if [ -n "$left" ]; then
		echo "processes left running from $T:" >&2
		for p in $left; do
			echo "  $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) (exe $(readlink "/proc/$p/exe" 2>/dev/null))" >&2
			kill -KILL "$p" 2>/dev/null || true
		done
	fi
	if [ -n "$left" ] || [ "${BATS_TEST_COMPLETED:-}" != 1 ]; then
		echo "--- agent log:" >&2
		tail -n 60 "$T/agent.log" >&2 2>/dev/null || true
	fi
	it_release_ports
	rm -rf "$T"
	[ -z "$left" ]
}
