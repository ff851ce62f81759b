#!/usr/bin/env bats
# What the agent does with failures (SPEC §5): a release that failed on a
# host is not booted there again until asked (`deploy signal --retry`) or
# superseded; run.restart decides which exits are restarted; the pusher is
# shown the end of the failed instance's console.

load helpers

# boots REL: how many instances of release REL the agent has started
# (its log is appended to across restarts).
boots() { grep -c "started instance [0-9]* of release $1 " "$T/agent.log" || true; }
boots_are() { [ "$(boots "$1")" -eq "$2" ]; }
boots_at_least() { [ "$(boots "$1")" -ge "$2" ]; }
app_state() { agent_cli status --json | jq -r ".apps.$APP.state"; }
state_is() { [ "$(app_state)" = "$1" ]; }

@test "a release that failed its health check is booted once, not at later syncs, until deploy signal --retry" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)" '.health.on_failure = "keep"'
	release_version v2
	[ "$(current_release)" = 2 ]
	[ "$(boots 2)" -eq 1 ]
	# the pusher saw the reason and the instance's own last words
	grep -Eiq '^remote: .*local.*v2 failed: health check' <<<"$PUSH_OUT"
	grep -q '^remote: .*| pong v2: built to fail: GET /health answers 503' <<<"$PUSH_OUT"

	# an explicit sync of this app, of every app, and of the whole
	# fleet: none boots it again
	run deploy signal "$APP"
	echo "$output" >&2
	[ "$status" -eq 3 ]
	grep -q 'v2 failed: health check' <<<"$output"
	grep -q '| pong v2: built to fail' <<<"$output"
	run agent_cli sync
	[ "$status" -eq 1 ]
	run deploy signal
	[ "$status" -eq 3 ]
	[ "$(boots 2)" -eq 1 ]
	[ "$(answer)" = "pong v1" ]

	# status says failed, why, and what still serves
	run agent_cli status
	echo "$output" >&2
	grep -q "^pong: release 2 failed: health check.*(still serving release 1)" <<<"$output"
	[ "$(deploy status --json | jq -r '.apps.pong.hosts.local.state')" = failed ]
	deploy status --json | jq -r '.apps.pong.hosts.local.error' | grep -q 'health check'
	[ "$(jq -r '.apps.pong.failed_release' "$T/state/state.json")" = 2 ]

	# ... also after the agent restarts, whose first sync leaves it be
	stop_agent TERM
	start_agent
	run agent_cli sync
	[ "$status" -eq 1 ]
	grep -q "^pong: release 2 failed: health check" <<<"$output"
	[ "$(boots 2)" -eq 1 ]
	[ "$(answer)" = "pong v1" ]

	# asked explicitly, the host boots it once more (and it fails again)
	run deploy signal --retry "$APP"
	echo "$output" >&2
	[ "$status" -eq 3 ]
	grep -q '| pong v2: built to fail' <<<"$output"
	[ "$(boots 2)" -eq 2 ]
	[ "$(answer)" = "pong v1" ]

	# a new release is tried without being asked
	write_deploy_json
	release_version v3
	[ "$(boots 3)" -eq 1 ]
	wait_until 60 answer_is "pong v3"
	state_is running
}

@test "deploy-agent sync --retry APP retries only that app" {
	release_version v1
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)" '.health.on_failure = "keep"'
	release_version v2
	[ "$(boots 2)" -eq 1 ]
	run agent_cli sync --retry other
	[ "$(boots 2)" -eq 1 ]
	run agent_cli sync --retry "$APP"
	[ "$status" -eq 1 ]
	grep -q '  | pong v2: built to fail' <<<"$output"
	[ "$(boots 2)" -eq 2 ]
}

@test "a release that dies while booting: the push names the exit and quotes its console" {
	release_version v1
	# exits 7 at once, before it could ever be healthy
	write_deploy_json "$(pong_build_cmd "-DEXIT_AFTER_MS=0 -DEXIT_STATUS=7")" '.health.on_failure = "keep"'
	release_version v2
	grep -Eq '^remote: .*v2 failed: health check: .*exited with status 7' <<<"$PUSH_OUT"
	grep -q '^remote: .*| pong: done after 0 ms, exiting with status 7' <<<"$PUSH_OUT"
	[ "$(answer)" = "pong v1" ]
}

@test "run.restart never: an instance that exits 0 stays exited, across syncs and an agent restart" {
	write_deploy_json "$(pong_build_cmd -DEXIT_AFTER_MS=1500)" '.run.restart = "never"'
	release_version v1
	grep -q '^remote: .*local: pong v1 running' <<<"$PUSH_OUT"
	wait_until 60 state_is exited
	[ "$(instance_count)" -eq 0 ]
	run agent_cli status
	grep -q '^pong: release 1 exited (0 instances' <<<"$output"
	[ "$(deploy status --json | jq -r '.apps.pong.hosts.local.state')" = exited ]
	# no sync starts it again, nor the agent's restart
	run agent_cli sync
	[ "$status" -eq 0 ]
	state_is exited
	stop_agent TERM
	start_agent
	run agent_cli sync
	state_is exited
	[ "$(boots 1)" -eq 1 ]
	[ "$(instance_count)" -eq 0 ]
	# asked to, it runs again (and ends again)
	run deploy signal --retry "$APP"
	echo "$output" >&2
	[ "$(boots 1)" -eq 2 ]
	wait_until 60 state_is exited
}

@test "run.restart never: an instance that fails is not restarted; status says how it ended" {
	write_deploy_json "$(pong_build_cmd "-DEXIT_AFTER_MS=1500 -DEXIT_STATUS=5")" '.run.restart = "never"'
	release_version v1
	wait_until 60 state_is exited
	run agent_cli status
	echo "$output" >&2
	grep -q 'exited with status 5; not restarted (run.restart: never' <<<"$output"
	grep -q '  | pong: done after 1500 ms, exiting with status 5' <<<"$output"
	[ "$(boots 1)" -eq 1 ]
}

@test "run.restart on-failure: exit 0 stays exited, a non-zero exit is restarted" {
	write_deploy_json "$(pong_build_cmd -DEXIT_AFTER_MS=1500)" '.run.restart = "on-failure"'
	release_version v1
	wait_until 60 state_is exited
	[ "$(boots 1)" -eq 1 ]

	write_deploy_json "$(pong_build_cmd "-DEXIT_AFTER_MS=1500 -DEXIT_STATUS=3")" '.run.restart = "on-failure"'
	release_version v2
	wait_until 60 boots_at_least 2 2
	refute state_is exited
}

@test "run.restart always (the default): an instance that exits 0 is restarted" {
	write_deploy_json "$(pong_build_cmd -DEXIT_AFTER_MS=1500)"
	release_version v1
	wait_until 60 boots_at_least 1 2
	wait_until 60 answer_is "pong v1"
	refute state_is exited
}

@test "a summoned boot that fails its health check: the held client is closed; status quotes the instance's console" {
	deploy place "$APP" --hosts local --mode summon --listen "$LISTEN" --idle-stop 30
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)" '.health.timeout_s = 5'
	release_version v1
	run curl -sS --max-time 30 "http://$LISTEN/"
	[ "$status" -ne 0 ]
	[ "$status" -ne 28 ] # closed, not timed out
	run agent_cli status --json
	jq -e ".apps.$APP.error | test(\"summon: .*health\")" <<<"$output"
	jq -e ".apps.$APP.log_tail | any(test(\"pong v1: built to fail\"))" <<<"$output"
}
