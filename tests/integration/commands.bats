#!/usr/bin/env bats
# Fleet commands that check what they are asked (SPEC §4): deploy place
# refuses a listen address taken on a host and a target the release does
# not build, and moving an app signals the hosts it leaves; deploy host
# list / host remove, deploy remove APP, deploy build --worktree, and the
# --help of every command. Two real agents where hosts must act: "local"
# (helpers.bash) and "edge2", a second agent with its own state and socket.

load helpers

setup() {
	setup_world
	AGENT2_PID=
}

teardown() {
	stop_agent2
	teardown_world
}

agent2_answers() {
	env UD_IT_MARK="$T" "$AGENT_BIN" --config "$T/agent2.json" status --json 2>/dev/null |
		jq -e .ok >/dev/null
}

# start_agent2: host edge2 in the fleet and its agent running.
start_agent2() {
	deploy host add edge2 --agent "unix:$T/agent2.sock" >/dev/null
	mkdir -p "$T/state2"
	jq --arg s "$T/state2" --arg c "unix:$T/agent2.sock" \
		'.host = "edge2" | .state_dir = $s | .control = $c' \
		"$T/agent.json" >"$T/agent2.json"
	env UD_IT_MARK="$T" "$AGENT_BIN" --config "$T/agent2.json" run \
		>>"$T/agent2.log" 2>&1 3>&- &
	AGENT2_PID=$!
	wait_until 10 test -S "$T/agent2.sock"
	wait_until 10 agent2_answers
}

stop_agent2() {
	[ -n "${AGENT2_PID:-}" ] || return 0
	kill -TERM "$AGENT2_PID" 2>/dev/null || true
	if ! wait_until 5 gone "$AGENT2_PID"; then
		kill -KILL "$AGENT2_PID" 2>/dev/null || true
	fi
	wait "$AGENT2_PID" 2>/dev/null || true
	AGENT2_PID=
	[ "${BATS_TEST_COMPLETED:-}" = 1 ] || tail -n 40 "$T/agent2.log" >&2 2>/dev/null || true
}

# instances run by edge2's agent (an executable under its state dir)
instances2() {
	find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$T/state2/*" \
		2>/dev/null | wc -l
}
instances2_are() { [ "$(instances2)" -eq "$1" ]; }
fleet() { dgit show main:fleet.json; }
refused() { ! curl -s --max-time 5 "http://$LISTEN/" >/dev/null; }

# ---- deploy place: listen address, target, moving -------------------------

@test "place: a listen address another app uses on the host is refused, naming app and host; fleet.json unchanged" {
	release_version v1
	before=$(main_rev)
	fleet_before=$(fleet)
	run --separate-stderr deploy place ping --hosts local --listen "$LISTEN"
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -qF "deploy: place ping: listen address $LISTEN is already used by app 'pong' on host 'local'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(fleet)" = "$fleet_before" ]
	# a wildcard on the same port takes it too
	run --separate-stderr deploy place ping --hosts local --listen "0.0.0.0:${LISTEN##*:}"
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qF "is already used by app 'pong' on host 'local'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(answer)" = "pong v1" ]
	# another port on the same host is fine
	run deploy place ping --hosts local --listen "127.0.0.1:$(free_port)"
	[ "$status" -eq 0 ]
	fleet | jq -e '.apps.ping.hosts == ["local"]'
}

@test "place: the same listen address on another host is not a conflict" {
	deploy host add edge3 --agent "unix:$T/agent3.sock"
	run deploy place ping --hosts edge3 --listen "$LISTEN"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	# ... but moving ping onto local as well is
	before=$(main_rev)
	run --separate-stderr deploy place ping --hosts edge3,local
	[ "$status" -eq 1 ]
	grep -qF "already used by app 'pong' on host 'local'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
}

@test "place: a target the app's last release does not build is refused; before any release it is accepted" {
	release_version v1
	before=$(main_rev)
	run --separate-stderr deploy place pong --hosts local --target qemu
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qF "deploy: place pong: pong v1 builds no image for target 'qemu' (its images: unix/x86_64)" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	fleet | jq -e '.apps.pong.target == "unix"'
	[ "$(answer)" = "pong v1" ]
	# the target it builds is fine
	run deploy place pong --hosts local --target unix
	[ "$status" -eq 0 ]
	# an app with no release yet: nothing to check against
	run deploy place ping --hosts local --target qemu --listen "127.0.0.1:$(free_port)"
	[ "$status" -eq 0 ]
	fleet | jq -e '.apps.ping.target == "qemu"'
}

@test "place: moving an app signals the host it leaves, which stops it, and the new host serves it" {
	start_agent2
	release_version v1
	[ "$(answer)" = "pong v1" ]
	[ "$(instance_count)" -eq 1 ]
	run deploy place pong --hosts edge2
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q '^-----> local: pong stopped' <<<"$output"
	grep -q '^-----> edge2: pong v1 running' <<<"$output"
	# no wait: the command returns once the hosts answered
	[ "$(instance_count)" -eq 0 ]
	[ "$(instances2)" -eq 1 ]
	[ "$(answer)" = "pong v1" ]
	agent_cli status --json | jq -e '.apps | has("pong") | not'
	# and back: edge2 stops it, local serves it again
	run deploy place pong --hosts local
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q '^-----> edge2: pong stopped' <<<"$output"
	[ "$(instances2)" -eq 0 ]
	[ "$(instance_count)" -eq 1 ]
	[ "$(answer)" = "pong v1" ]
}

@test "place: a host it leaves that does not answer: committed, exit 3, the host named" {
	release_version v1
	deploy host add edge2 --agent "unix:$T/agent2.sock"
	deploy place pong --hosts local,edge2 --no-signal
	run --separate-stderr deploy place pong --hosts local
	echo "$output" >&2
	echo "$stderr" >&2
	[ "$status" -eq 3 ]
	grep -q '^-----> edge2: unreachable' <<<"$output"
	grep -q '^deploy: place pong: .*edge2' <<<"$stderr"
	fleet | jq -e '.apps.pong.hosts == ["local"]'
	[ "$(answer)" = "pong v1" ]
}
