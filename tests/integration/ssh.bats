#!/usr/bin/env bats
# Several hosts reached over real SSH (SPEC §3-§7): each host is a network
# namespace with its own sshd (the pipeline's key limited to the forced
# command `deploy-agent ssh-command`) and its own deploy-agent, all serving
# pong at the same address inside their namespace. The pipeline's key lives
# only in DEPLOY_SSH_KEY; host keys are checked against $T/known_hosts.

load helpers
load netns

setup() {
	setup_world
	# setup_world's local agent serves no placement here
	stop_agent
	netns_init
	[ -n "$NETNS_UNAVAILABLE" ] || netns_pipeline_key
}

teardown() {
	local rc=0
	netns_teardown || rc=1
	teardown_world || rc=1
	return $rc
}

# place_on H1 H2 ...: pong placed on those hosts at $NETNS_LISTEN
place_on() {
	local IFS=,
	deploy place "$APP" --hosts "$*" --listen "$NETNS_LISTEN" >/dev/null
}

# hosts N: edge1..edgeN (index i, default agent.json), pong placed on all
hosts() {
	local i names=()
	for ((i = 1; i <= $1; i++)); do
		netns_host "edge$i" "$i"
		names+=("edge$i")
	done
	place_on "${names[@]}"
}

# publish_version V: commit VERSION=V in the work clone and run `deploy
# publish` on it (bats run: $status, $output), for its exit status, which
# a push through the hook does not give.
publish_version() {
	set_version "$1"
	commit_all "pong $1"
	run deploy publish --source "$W"
	printf '%s\n' "--- deploy publish $1 (status $status):" "$output" >&2
}

# known_hosts without the lines for host NAME's address
forget_host() {
	local addr
	addr=$(netns_addr "$1")
	awk -v a="$addr" '$1 != a' "$T/known_hosts" >"$T/known_hosts.new"
	mv "$T/known_hosts.new" "$T/known_hosts"
}

# objects_hold GIT_DIR TEXT: some object of the repository contains TEXT
objects_hold() {
	git --git-dir="$1" cat-file --batch-all-objects --batch | grep -qaF "$2"
}

# The lines of the pipeline's key text that are its own: not the armour,
# and not the first base64 line, which every unencrypted OpenSSH ed25519
# key shares (the "openssh-key-v1", "none", "none" header).
secret_lines() { sed -n '3,$p' <<<"$DEPLOY_SSH_KEY" | grep -v '^-----'; }

# line_for HOST: the output lines that name HOST
line_for() { grep -E "(^|[^a-z0-9-])$1([^a-z0-9-]|$)" <<<"$output"; }

@test "a push reaches three SSH hosts: each serves the new version, one line per host" {
	netns_require
	hosts 3
	release_version v1
	for h in edge1 edge2 edge3; do
		grep -Eq "^remote: -----> $h: pong v1 running \(1 instance\)" <<<"$PUSH_OUT"
		[ "$(netns_answer "$h")" = "pong v1" ]
	done
	# the same namespace address, three different machines: each its own
	[ "$(netns_exec edge1 ip -4 -o addr show eth0 | awk '{print $4}')" = "$(netns_addr edge1)/24" ]

	publish_version v2
	[ "$status" -eq 0 ]
	for h in edge1 edge2 edge3; do
		line_for "$h" | grep -q "pong v2 running"
		[ "$(netns_answer "$h")" = "pong v2" ]
	done
}

@test "a host whose key changed fails naming its new fingerprint; the others deploy; exit 3" {
	netns_require
	hosts 3
	release_version v1
	netns_rekey edge2
	fp=$(netns_fingerprint edge2)
	[[ $fp == SHA256:* ]]

	publish_version v2
	[ "$status" -eq 3 ]
	line_for edge2 | grep -qF "$fp"
	line_for edge2 | grep -qi "changed"
	[ "$(netns_answer edge1)" = "pong v2" ]
	[ "$(netns_answer edge3)" = "pong v2" ]
	# edge2 was never asked: it still serves v1
	[ "$(netns_answer edge2)" = "pong v1" ]
	# a changed key is never trusted, not even with --accept-new-host-keys
	run deploy signal "$APP" --accept-new-host-keys
	[ "$status" -eq 3 ]
	line_for edge2 | grep -qF "$fp"
	refute grep -qF "$(cut -d' ' -f2 "$(netns_dir edge2)/sshd/ssh_host_ed25519_key.pub")" "$T/known_hosts"
}

@test "an unknown host fails naming its fingerprint; --accept-new-host-keys trusts and records it" {
	netns_require
	hosts 3
	forget_host edge3
	fp=$(netns_fingerprint edge3)
	key=$(cut -d' ' -f2 "$(netns_dir edge3)/sshd/ssh_host_ed25519_key.pub")

	publish_version v1
	[ "$status" -eq 3 ]
	line_for edge3 | grep -qF "$fp"
	line_for edge3 | grep -qi "unknown"
	[ "$(netns_answer edge1)" = "pong v1" ]
	[ "$(netns_answer edge2)" = "pong v1" ]
	refute netns_answer_is edge3 "pong v1"
	refute grep -qF "$key" "$T/known_hosts"

	run deploy signal "$APP" --accept-new-host-keys
	[ "$status" -eq 0 ]
	line_for edge3 | grep -q "pong v1 running"
	[ "$(netns_answer edge3)" = "pong v1" ]
	# recorded (plain or hashed) under its address, with its key
	ssh-keygen -F "$(netns_addr edge3)" -f "$T/known_hosts" | grep -qF "$key"
	# and trusted from now on without the flag
	run deploy signal "$APP"
	[ "$status" -eq 0 ]
}

@test "an unreachable host: the push finishes naming it, exit 3, and it converges on its own next poll" {
	netns_require
	netns_host edge1 1
	netns_host edge2 2
	netns_host edge3 3 '.poll_s = 2'
	place_on edge1 edge2 edge3
	release_version v1
	[ "$(netns_answer edge3)" = "pong v1" ]
	netns_link_down edge3

	start=$SECONDS
	publish_version v2
	echo "# deploy publish with edge3 unreachable took $((SECONDS - start)) s" >&2
	[ "$status" -eq 3 ]
	# named by the bound on reaching a host, not the whole sync's timeout
	line_for edge3 | grep -q "^-----> edge3: unreachable: .*$(netns_addr edge3).*: cannot connect within "
	[ "$(netns_answer edge1)" = "pong v2" ]
	[ "$(netns_answer edge2)" = "pong v2" ]
	# nobody reached edge3; its agent's poll (every 2 s) brings v2
	wait_until 60 netns_answer_is edge3 "pong v2"
}

@test "the pipeline's key runs only the forced command: a shell command is refused, status is allowed" {
	netns_require
	hosts 1
	release_version v1
	# plain OpenSSH with the pipeline's key, as anyone holding it would
	install -m 600 /dev/null "$T/keys/plain"
	printf '%s\n' "$DEPLOY_SSH_KEY" >"$T/keys/plain"
	sshplain() {
		ssh -F /dev/null -i "$T/keys/plain" -o IdentitiesOnly=yes -o BatchMode=yes \
			-o UserKnownHostsFile="$T/known_hosts" -o StrictHostKeyChecking=yes \
			-o LogLevel=ERROR -o ConnectTimeout=10 "root@$(netns_addr edge1)" "$@" </dev/null
	}
	refusal="deploy-agent: refused: only 'sync' and 'status' are allowed"

	for cmd in 'cat /etc/passwd' 'status; cat /etc/passwd' 'sync && id' 'status $(id)' 'sh'; do
		run --separate-stderr sshplain "$cmd"
		echo "# $cmd: status $status, stderr $stderr" >&2
		[ "$status" -ne 0 ]
		[ "$stderr" = "$refusal" ]
		[ -z "$output" ]
	done
	# no command at all: an interactive shell is refused the same way
	run --separate-stderr sshplain
	[ "$status" -ne 0 ]
	[ "$stderr" = "$refusal" ]

	run --separate-stderr sshplain status
	[ "$status" -eq 0 ]
	[[ $output == "pong: release 1 running (1 instance"* ]]
	run --separate-stderr sshplain deploy-agent status --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .apps.pong.release <<<"$output")" = 1 ]

	# the pipeline with the key as a file (--identity) instead of the
	# environment; and with no key at all, which the host refuses
	run --separate-stderr env -u DEPLOY_SSH_KEY UD_IT_MARK="$T" "$DEPLOY_BIN" status --json --identity "$T/keys/plain"
	[ "$status" -eq 0 ]
	[ "$(jq -r .apps.pong.hosts.edge1.state <<<"$output")" = running ]
	run --separate-stderr env -u DEPLOY_SSH_KEY UD_IT_MARK="$T" "$DEPLOY_BIN" status --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .apps.pong.hosts.edge1.state <<<"$output")" = unreachable ]
	run --separate-stderr env -u DEPLOY_SSH_KEY UD_IT_MARK="$T" "$DEPLOY_BIN" signal "$APP"
	[ "$status" -eq 3 ]
	line_for edge1 | grep -q "no key was accepted"
	rm -f "$T/keys/plain"
}

@test "deploy status and deploy status --json across SSH hosts, one of them unreachable" {
	netns_require
	hosts 3
	release_version v1
	netns_sshd_stop edge3

	run --separate-stderr deploy status --json
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(jq -c .apps.pong.desired <<<"$output")" = 1 ]
	for h in edge1 edge2; do
		[ "$(jq -c --arg h "$h" '.apps.pong.hosts[$h] | {release, state, instances}' <<<"$output")" = '{"release":1,"state":"running","instances":1}' ]
	done
	[ "$(jq -c '.apps.pong.hosts.edge3 | {release, state, instances}' <<<"$output")" = '{"release":null,"state":"unreachable","instances":0}' ]
	[ "$(jq -c '.apps.pong.hosts | keys' <<<"$output")" = '["edge1","edge2","edge3"]' ]

	run --separate-stderr deploy status
	[ "$status" -eq 0 ]
	echo "$output" >&2
	grep -Eq '^APP +HOST +DESIRED +RUNNING +STATE +INSTANCES' <<<"$output"
	grep -Eq '^pong +edge1 +v1 +v1 +running +1( |$)' <<<"$output"
	grep -Eq '^pong +edge2 +v1 +v1 +running +1( |$)' <<<"$output"
	grep -Eq '^pong +edge3 +v1 +- +unreachable +0( |$)' <<<"$output"
}

@test "an agent fetches its deployment repository over ssh:// with its own key" {
	netns_require
	# the deploy server: a namespace with an sshd that knows the agent's key
	netns_server srv 200
	srv=$(netns_addr srv)
	ssh-keygen -q -t ed25519 -N '' -C agent -f "$T/agent_key"
	echo "restrict $(cat "$T/agent_key.pub")" >"$(netns_dir srv)/sshd/authorized_keys"
	sh "$ROOT/tests/sshd.sh" known "$(netns_dir srv)/sshd" 22 "$srv" >"$T/agent_known_hosts"

	netns_host edge1 1 ".repo = \"ssh://root@$srv$DREPO\" | .ssh_key = \"$T/agent_key\" | .known_hosts = \"$T/agent_known_hosts\""
	place_on edge1
	release_version v1
	grep -Eq "^remote: -----> edge1: pong v1 running" <<<"$PUSH_OUT"
	[ "$(netns_answer edge1)" = "pong v1" ]
	# it came over SSH, from edge1's address, with the agent's key
	agent_fp=$(ssh-keygen -lf "$T/agent_key.pub" | cut -d' ' -f2)
	grep -F "Accepted publickey for root from $(netns_addr edge1)" "$(netns_dir srv)/sshd/sshd.log" | grep -qF "$agent_fp"
	grep -qF "ssh://root@$srv" "$(netns_dir edge1)/agent.log"

	release_version v2
	[ "$(netns_answer edge1)" = "pong v2" ]

	# the agent checks the deploy server's host key too: a changed one is
	# refused, named by its fingerprint, and v2 keeps serving. edge1 was
	# reached, its sync failed: not "unreachable", the URL named once,
	# and no rollback (v3 did not fail a health check)
	netns_rekey srv
	fp=$(netns_fingerprint srv)
	release_version v3
	line=$(grep -E "^remote: -----> edge1:" <<<"$PUSH_OUT")
	grep -qF "$fp" <<<"$line"
	grep -q "^remote: -----> edge1: sync failed: fetching ssh://root@$srv$DREPO: .*CHANGED" <<<"$line"
	[ "$(grep -o "ssh://" <<<"$line" | wc -l)" = 1 ]
	refute grep -qi "unreachable" <<<"$line"
	refute grep -q "rolling back" <<<"$PUSH_OUT"
	[ "$(netns_answer edge1)" = "pong v2" ]
}

@test "the pipeline's key appears nowhere on disk nor in any output" {
	netns_require
	hosts 2
	release_version v1
	outputs=$PUSH_OUT
	# a failing host and its error messages too
	netns_rekey edge2
	publish_version v2
	outputs+=$output
	run deploy status
	outputs+=$output
	run deploy signal "$APP" --json
	outputs+=$output
	run deploy status --json
	outputs+=$output

	[ -n "$NETNS_KEY_LINE" ]
	while read -r line; do
		refute grep -qF "$line" <<<"$outputs"
		# (-l: the files, should there be any, in the failure's output)
		refute grep -rlF "$line" "$T"
		# the repositories' objects are compressed: read them
		refute objects_hold "$DREPO" "$line"
		for m in "$T"/hosts/*/state/repo.git; do
			[ -d "$m" ] || continue
			refute objects_hold "$m" "$line"
		done
	done < <(secret_lines)
}

@test "a build that prints its environment does not leak the pipeline's key" {
	netns_require
	hosts 1
	write_deploy_json "env; $(pong_build_cmd)"
	release_version v1
	[ "$(netns_answer edge1)" = "pong v1" ]
	grep -q "DEPLOY_APP=pong" <<<"$PUSH_OUT"
	dgit show "main:apps/pong/releases/1/build.log" | grep -q "DEPLOY_APP=pong"
	while read -r line; do
		refute grep -qF "$line" <<<"$PUSH_OUT"
		refute objects_hold "$DREPO" "$line"
	done < <(secret_lines)
}

@test "over SSH: a failed release is not retried by a plain signal; deploy signal --retry boots it again and quotes its console" {
	netns_require
	hosts 1
	release_version v1
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)" '.health.on_failure = "keep"'
	release_version v2
	boots2() { grep -c "started instance [0-9]* of release 2 " "$(netns_dir edge1)/agent.log" || true; }
	[ "$(boots2)" -eq 1 ]
	grep -q '^remote: .*| pong v2: built to fail' <<<"$PUSH_OUT"
	run deploy signal "$APP"
	[ "$status" -eq 3 ]
	[ "$(boots2)" -eq 1 ]
	run deploy signal --retry "$APP"
	echo "$output" >&2
	[ "$status" -eq 3 ]
	line_for edge1 | grep -q 'v2 failed: health check'
	grep -q '| pong v2: built to fail' <<<"$output"
	[ "$(boots2)" -eq 2 ]
}
