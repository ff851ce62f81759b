#!/usr/bin/env bats
# The SSH key in DEPLOY_SSH_KEY against a build command that goes looking
# for it: the build runs as the same user, so it can read
# /proc/<pid>/environ of every process above it, and its log is committed
# to the deployment repository. The key must be in none of them.

load helpers

setup() {
	setup_world
	# Recognisable text in the shape of a key; the pipeline never
	# needs to parse it (the host is reached through the agent socket).
	CANARY="ud-secret-canary-$RANDOM$RANDOM$RANDOM"
	KEY=$(printf '%s\n' "-----BEGIN OPENSSH PRIVATE KEY-----" "$CANARY" \
		"-----END OPENSSH PRIVATE KEY-----")
	KEY_B64=$(printf '%s' "$KEY" | base64 -w0)
	# The build writes the environment of each of its ancestors to
	# leak.txt, then prints it into the build log too.
	write_deploy_json "$(jq -r .build.command "$ROOT/templates/pong/deploy.json") && { p=\$PPID; while [ \"\$p\" -gt 1 ]; do echo \"== \$p \$(tr '\\0' ' ' </proc/\$p/cmdline)\"; tr '\\0' '\\n' </proc/\$p/environ; p=\$(awk '/^PPid:/ { print \$2 }' /proc/\$p/status); done; } >leak.txt 2>&1; cat leak.txt"
	set_version v1
	commit_all "pong v1"
}

teardown() {
	teardown_world
}

# The build saw its ancestors, deploy among them, and found no key: not in
# the committed build log, not in leak.txt, not in the output.
no_key_found() {
	local log leak
	log=$(dgit show main:apps/pong/releases/1/build.log)
	grep -q "^== [0-9]* .*deploy" <<<"$log"
	refute grep -qF -e "$CANARY" -e "$KEY_B64" <<<"$log"
	leak=$(find "$T" -name leak.txt -print -quit)
	if [ -n "$leak" ]; then refute grep -qF -e "$CANARY" -e "$KEY_B64" "$leak"; fi
	refute grep -qF -e "$CANARY" -e "$KEY_B64" <<<"$output$stderr"
}

@test "deploy publish: a build reading /proc/\$PPID/environ finds no DEPLOY_SSH_KEY" {
	cd "$W"
	run --separate-stderr env UD_IT_MARK="$T" DEPLOY_SSH_KEY="$KEY" \
		DEPLOY_SSH_KEY_B64="$KEY_B64" "$DEPLOY_BIN" publish
	cd "$ROOT"
	printf '%s\n' "--- publish (status $status):" "$output" "--- stderr:" "$stderr" >&2
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 1 ]
	no_key_found
}

@test "deploy ci through ci/deploy-ci.sh: DEPLOY_SSH_KEY_B64, decoded, is not found either" {
	cd "$W"
	run --separate-stderr env -u GITHUB_ACTIONS -u TRAVIS -u DEPLOY_SSH_KEY \
		-u DEPLOY_KNOWN_HOSTS_B64 UD_IT_MARK="$T" DEPLOY_BIN="$DEPLOY_BIN" \
		DEPLOY_SSH_KEY_B64="$KEY_B64" DEPLOY_KNOWN_HOSTS="$T/known_hosts" \
		DEPLOY_COMMIT="$(git rev-parse HEAD)" DEPLOY_REF=refs/heads/main \
		sh "$ROOT/ci/deploy-ci.sh"
	cd "$ROOT"
	printf '%s\n' "--- deploy-ci.sh (status $status):" "$output" "--- stderr:" "$stderr" >&2
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 1 ]
	no_key_found
}
