#!/usr/bin/env bats
# The SSH key in DEPLOY_SSH_KEY against a build command that goes looking
# for it: in /proc/<pid>/environ of every process above it and of every
# process it can see (git push and git-receive-pack hold the key too), in
# /proc/1/environ, and in the pusher's key file. Its log is committed to
# the deployment repository. The key must be in none of them: the build
# runs in its own namespaces as nobody (lib/sandbox.c), and its output is
# scrubbed (lib/scrub.c).

load helpers

setup() {
	setup_world
	# Recognisable text in the shape of a key; the pipeline never
	# needs to parse it (the host is reached through the agent socket).
	CANARY="ud-secret-canary-$RANDOM$RANDOM$RANDOM"
	KEY=$(printf '%s\n' "-----BEGIN OPENSSH PRIVATE KEY-----" "$CANARY" \
		"-----END OPENSSH PRIVATE KEY-----")
	KEY_B64=$(printf '%s' "$KEY" | base64 -w0)
	# The pusher's key file: the pipeline does not know this one, only
	# the sandbox keeps it from the build.
	FILE_CANARY="ud-file-canary-$RANDOM$RANDOM$RANDOM"
	mkdir -p "$T/home/.ssh"
	printf '%s\n' "-----BEGIN OPENSSH PRIVATE KEY-----" "$FILE_CANARY" \
		"-----END OPENSSH PRIVATE KEY-----" >"$T/home/.ssh/id_ed25519"
	chmod 600 "$T/home/.ssh/id_ed25519"
	# The build writes the environment of each of its ancestors, of
	# every process it sees and of pid 1, and the key file, to leak.txt,
	# then prints it into the build log too.
	write_deploy_json "$(jq -r .build.command "$ROOT/templates/pong/deploy.json") && { p=\$PPID; while [ \"\$p\" -gt 1 ]; do echo \"== \$p \$(tr '\\0' ' ' </proc/\$p/cmdline)\"; tr '\\0' '\\n' </proc/\$p/environ; p=\$(awk '/^PPid:/ { print \$2 }' /proc/\$p/status); done; for f in /proc/[0-9]*/environ /proc/1/environ; do echo \"== \$f\"; tr '\\0' '\\n' <\$f; done; echo '== key file'; cat '$T/home/.ssh/id_ed25519'; echo WALKED; } >leak.txt 2>&1; cat leak.txt"
	set_version v1
	commit_all "pong v1"
}

teardown() {
	teardown_world
}

# The build walked what it could see, and saw neither deploy nor any of
# its ancestors above, and found no key: not in the committed build log,
# not in leak.txt, not in the output, not in any object of the
# deployment repository.
no_key_found() {
	local log leak
	log=$(dgit show main:apps/pong/releases/1/build.log)
	grep -qx WALKED <<<"$log"
	refute grep -q "^== [0-9]* .*deploy" <<<"$log"
	refute grep -q "^== [0-9]* .*git" <<<"$log"
	refute grep -qF -e "$CANARY" -e "$KEY_B64" -e "$FILE_CANARY" <<<"$log"
	leak=$(find "$T" -name leak.txt -print -quit)
	if [ -n "$leak" ]; then refute grep -qF -e "$CANARY" -e "$KEY_B64" -e "$FILE_CANARY" "$leak"; fi
	refute grep -qF -e "$CANARY" -e "$KEY_B64" -e "$FILE_CANARY" <<<"$output$stderr"
	dgit cat-file --batch-all-objects --batch >"$T/objects"
	[ -s "$T/objects" ]
	refute grep -aqF -e "$CANARY" -e "$KEY_B64" -e "$FILE_CANARY" "$T/objects"
}

@test "git push with DEPLOY_SSH_KEY: the build cannot read it from git push or git-receive-pack" {
	run --separate-stderr bash -c "cd '$W' && env -u DEPLOY_REPO UD_IT_MARK='$T' DEPLOY_SSH_KEY=\"\$1\" git push origin HEAD:main" _ "$KEY"
	cd "$ROOT"
	printf '%s\n' "--- push (status $status):" "$output" "--- stderr:" "$stderr" >&2
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 1 ]
	no_key_found
}

@test "a build that may not be isolated is refused unless isolation is turned off, then warned about" {
	cd "$W"
	# no bwrap in PATH: refused, nothing published, the way out named
	mkdir -p "$T/nobwrap"
	for t in sh git cc mkdir cat tr awk env jq setpriv; do
		p=$(command -v "$t") && ln -s "$p" "$T/nobwrap/$t"
	done
	run --separate-stderr env UD_IT_MARK="$T" PATH="$T/nobwrap" "$DEPLOY_BIN" publish
	printf '%s\n' "--- publish (status $status):" "$output" "--- stderr:" "$stderr" >&2
	[ "$status" -ne 0 ]
	grep -qF 'bwrap is not in PATH (apt-get install bubblewrap); or set DEPLOY_BUILD_SANDBOX=off' <<<"$output$stderr"
	run dgit rev-parse -q --verify main:apps/pong/current
	[ "$status" -ne 0 ]
	# turned off on purpose: built, with a warning in the log
	run --separate-stderr env UD_IT_MARK="$T" DEPLOY_BUILD_SANDBOX=off "$DEPLOY_BIN" publish
	cd "$ROOT"
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 1 ]
	dgit show main:apps/pong/releases/1/build.log | grep -q '^warning: DEPLOY_BUILD_SANDBOX=off: this build is not isolated'
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
