# Hosts as network namespaces, each with its own real sshd and deploy-agent,
# for the SSH suites (load after helpers) and bench/fanout.sh.
#
# A run gets a prefix (ud<id>, id the test's IT_ID: see "Isolation" in
# helpers.bash) and a subnet 10.X.Y.0/24 (from id); the root namespace
# holds a bridge ud<id>br at 10.X.Y.254, and each host NAME with INDEX i is a
# namespace ud<id>-NAME whose eth0 (a veth into the bridge) is 10.X.Y.i, with
# lo up. Every host serves its placements at the same address
# ($NETNS_LISTEN, 127.0.0.1:8080) inside its own namespace, as separate
# machines would.
#
# Needs from the caller: $T (a temp dir, removed by the caller), $ROOT,
# $AGENT_BIN, wait_until, and deploy (the CLI) for netns_host's fleet entry.
#
#   netns_init                 pick prefix and subnet, create the bridge;
#                              sets NETNS_UNAVAILABLE (why) when namespaces
#                              cannot be made
#   netns_require              skip the test when they cannot
#   netns_pipeline_key         the pipeline's key: DEPLOY_SSH_KEY (in memory
#                              only), DEPLOY_KNOWN_HOSTS=$T/known_hosts
#   netns_host NAME I [JQ]     a host: namespace, sshd (authorized_keys: the
#                              forced command for the pipeline's key), its
#                              known_hosts line, agent (agent.json edited by
#                              the jq filter JQ), `deploy host add NAME --ssh`
#   netns_server NAME I        a namespace with only an sshd, as a deploy
#                              server (the caller writes authorized_keys)
#   netns_teardown             stop everything above, delete namespaces
#                              and links
#
# Processes started here carry UD_IT_MARK=$T (helpers.bash's leftover check).

NETNS_LISTEN=127.0.0.1:8080
NETNS_HOSTS=()
NETNS_UNAVAILABLE=
NETNS_BRIDGE=

netns_init() {
	# the test's number (helpers.bash: unique among live tests); a bench
	# script has none and uses its PID
	local id=${IT_ID:-$((BASHPID % 32768))} x y out
	# e.g. ud23456: its links are ud23456br, ud23456v1 (15 at most)
	NETNS_PREFIX=ud$id
	NETNS_HOSTS=()
	NETNS_BRIDGE=
	# one subnet per run, clear of the machine's own addresses
	x=$((64 + (id >> 8) % 128)) y=$((id % 256))
	while ip -4 addr show | grep -q "inet 10\.$x\.$y\."; do
		y=$(((y + 1) % 256))
	done
	NETNS_NET=10.$x.$y
	if ! out=$(ip netns add "$NETNS_PREFIX-probe" 2>&1); then
		NETNS_UNAVAILABLE="ip netns add: ${out:-failed}"
		return 0
	fi
	ip netns del "$NETNS_PREFIX-probe"
	if ! out=$(ip link add "${NETNS_PREFIX}br" type bridge 2>&1); then
		NETNS_UNAVAILABLE="ip link add type bridge: $out"
		return 0
	fi
	NETNS_BRIDGE=${NETNS_PREFIX}br
	ip addr add "$NETNS_NET.254/24" dev "$NETNS_BRIDGE"
	ip link set "$NETNS_BRIDGE" up
}

netns_require() {
	[ -z "$NETNS_UNAVAILABLE" ] ||
		skip "network namespaces unavailable: $NETNS_UNAVAILABLE"
}

# The pipeline's key is generated into $T/keys, read into DEPLOY_SSH_KEY
# and its private file deleted at once: only the environment holds it.
# NETNS_KEY_LINE is one line of its text, to look for where it must not be.
netns_pipeline_key() {
	mkdir -p "$T/keys"
	ssh-keygen -q -t ed25519 -N '' -C pipeline -f "$T/keys/pipeline"
	DEPLOY_SSH_KEY=$(cat "$T/keys/pipeline")
	rm -f "$T/keys/pipeline"
	NETNS_KEY_LINE=$(sed -n 3p <<<"$DEPLOY_SSH_KEY")
	export DEPLOY_SSH_KEY DEPLOY_KNOWN_HOSTS=$T/known_hosts
	: >"$T/known_hosts"
	# the machine's ssh-agent is none of the tests' business
	unset SSH_AUTH_SOCK
}

netns_ns() { echo "$NETNS_PREFIX-$1"; }
netns_dir() { echo "$T/hosts/$1"; }
netns_addr() { echo "$NETNS_NET.$(cat "$T/hosts/$1/index")"; }
# ip netns exec for host NAME
netns_exec() {
	local name=$1
	shift
	ip netns exec "$NETNS_PREFIX-$name" "$@"
}

# The namespace, its link to the bridge, its address.
netns_link() {
	local name=$1 i=$2 ns=$NETNS_PREFIX-$1 veth=${NETNS_PREFIX}v$2
	mkdir -p "$T/hosts/$name"
	echo "$i" >"$T/hosts/$name/index"
	ip netns add "$ns"
	NETNS_HOSTS+=("$name")
	ip link add "$veth" type veth peer name "${NETNS_PREFIX}p$i"
	ip link set "${NETNS_PREFIX}p$i" netns "$ns"
	ip link set "$veth" master "$NETNS_BRIDGE" up
	ip -n "$ns" link set "${NETNS_PREFIX}p$i" name eth0
	ip -n "$ns" addr add "$NETNS_NET.$i/24" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set lo up
}
netns_link_down() { ip link set "${NETNS_PREFIX}v$(cat "$T/hosts/$1/index")" down; }
netns_link_up() { ip link set "${NETNS_PREFIX}v$(cat "$T/hosts/$1/index")" up; }

netns_sshd_start() {
	local dir
	dir=$(netns_dir "$1")
	netns_exec "$1" env -u DEPLOY_SSH_KEY -u DEPLOY_KNOWN_HOSTS \
		UD_IT_MARK="$T" sh "$ROOT/tests/sshd.sh" start \
		"$dir/sshd" 22 "$(netns_addr "$1")" 3>&-
}
netns_sshd_stop() {
	local dir pid
	dir=$(netns_dir "$1")
	pid=$(cat "$dir/sshd/sshd.pid" 2>/dev/null) || return 0
	sh "$ROOT/tests/sshd.sh" stop "$dir/sshd"
	wait_until 30 sh -c "! kill -0 $pid 2>/dev/null"
}
# A new host key, as after a reinstall: the old known_hosts line is wrong.
netns_rekey() {
	netns_sshd_stop "$1"
	rm -f "$(netns_dir "$1")"/sshd/ssh_host_ed25519_key*
	netns_sshd_start "$1"
}
netns_known_line() {
	sh "$ROOT/tests/sshd.sh" known "$(netns_dir "$1")/sshd" 22 "$(netns_addr "$1")"
}
# SHA256:... of host NAME's current key, as ssh-keygen prints it
netns_fingerprint() {
	ssh-keygen -lf "$(netns_dir "$1")/sshd/ssh_host_ed25519_key.pub" | cut -d' ' -f2
}

netns_agent_start() {
	local dir
	dir=$(netns_dir "$1")
	# ip execs env which execs the agent: $! is the agent. Not a shell
	# function here, or $! would be a subshell. The pipeline's secrets are
	# not the agent's: it fetches with its own key.
	ip netns exec "$NETNS_PREFIX-$1" env -u DEPLOY_SSH_KEY -u DEPLOY_KNOWN_HOSTS \
		UD_IT_MARK="$T" "$AGENT_BIN" --config "$dir/agent.json" \
		run >>"$dir/agent.log" 2>&1 3>&- &
	echo $! >"$dir/agent.pid"
	if ! wait_until 60 test -S "$dir/agent.sock" ||
		! wait_until 60 "$AGENT_BIN" --config "$dir/agent.json" status >/dev/null 2>&1; then
		echo "deploy-agent of $1 did not come up; its log:" >&2
		cat "$dir/agent.log" >&2
		return 1
	fi
}
netns_agent_stop() {
	local dir pid
	dir=$(netns_dir "$1")
	pid=$(cat "$dir/agent.pid" 2>/dev/null) || return 0
	kill -TERM "$pid" 2>/dev/null || true
	wait_until 30 sh -c "! kill -0 $pid 2>/dev/null || grep -q '^State:.*Z' /proc/$pid/status" ||
		kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	rm -f "$dir/agent.pid"
}

netns_host() {
	local name=$1 i=$2 edit=${3:-.} dir
	dir=$(netns_dir "$name")
	netns_link "$name" "$i"
	mkdir -p "$dir/sshd" "$dir/state"
	jq -n --arg host "$name" --arg repo "${DEPLOY_REPO:?}" --arg state "$dir/state" \
		--arg ctl "unix:$dir/agent.sock" \
		'{host: $host, repo: $repo, state_dir: $state, control: $ctl, poll_s: 3600}' |
		jq "$edit" >"$dir/agent.json"
	"$AGENT_BIN" --config "$dir/agent.json" authorize "$T/keys/pipeline.pub" \
		>"$dir/sshd/authorized_keys"
	netns_sshd_start "$name"
	netns_known_line "$name" >>"$T/known_hosts"
	netns_agent_start "$name"
	deploy host add "$name" --ssh "root@$(netns_addr "$name"):22" >/dev/null
}

netns_server() {
	netns_link "$1" "$2"
	mkdir -p "$(netns_dir "$1")/sshd"
	netns_sshd_start "$1"
}

# GET on host NAME's listen address, from inside its namespace
netns_answer() {
	netns_exec "$1" curl -s --max-time 5 "http://$NETNS_LISTEN${2:-/}"
}
netns_answer_is() { [ "$(netns_answer "$1")" = "$2" ]; }

netns_empty() { [ -z "$(ip netns pids "$1" 2>/dev/null)" ]; }

# Fails (after cleaning up) when a namespace still held a process once its
# agent and sshd were stopped: an instance or session nobody ended.
netns_teardown() {
	local name ns pids p left=
	for name in "${NETNS_HOSTS[@]}"; do
		netns_agent_stop "$name"
		netns_sshd_stop "$name" || true
	done
	for name in "${NETNS_HOSTS[@]}"; do
		ns=$NETNS_PREFIX-$name
		wait_until 30 netns_empty "$ns" || true
		pids=$(ip netns pids "$ns" 2>/dev/null) || true
		for p in $pids; do
			echo "left running in $ns: $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" >&2
			kill -KILL "$p" 2>/dev/null || true
			left=1
		done
		ip netns del "$ns" 2>/dev/null || true
		ip link del "${NETNS_PREFIX}v$(cat "$T/hosts/$name/index")" 2>/dev/null || true
	done
	NETNS_HOSTS=()
	[ -z "$NETNS_BRIDGE" ] || ip link del "$NETNS_BRIDGE" 2>/dev/null || true
	NETNS_BRIDGE=
	[ -z "$left" ]
}
