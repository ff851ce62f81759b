#!/usr/bin/env bats
# deploy ci (SPEC §6): GitHub Actions and Travis CI conventions, pull
# requests never published, and the secrets of §6/§7: the SSH key lives in
# DEPLOY_SSH_KEY alone and is found nowhere afterwards. Real binaries, a
# real agent, real sshd servers (tests/sshd.sh) for the ssh:// deployment
# repository and for signalling the host through the forced command.

load helpers

setup() {
	setup_world
	KEYDIR=
	SSHD_DIRS=()
}

teardown() {
	local d
	for d in "${SSHD_DIRS[@]}"; do sh "$ROOT/tests/sshd.sh" stop "$d"; done
	[ -z "$KEYDIR" ] || rm -rf "$KEYDIR"
	teardown_world
}

# ci_env [VAR=value ...] CMD...: CMD in a CI's environment; nothing of the
# runner running these tests leaks in.
ci_env() {
	env -u GITHUB_ACTIONS -u GITHUB_SHA -u GITHUB_REF -u GITHUB_EVENT_NAME \
		-u GITHUB_STEP_SUMMARY -u TRAVIS -u TRAVIS_COMMIT -u TRAVIS_BRANCH \
		-u TRAVIS_PULL_REQUEST -u DEPLOY_COMMIT -u DEPLOY_REF \
		-u DEPLOY_SSH_KEY -u DEPLOY_KNOWN_HOSTS -u DEPLOY_SSH_KEY_B64 \
		-u DEPLOY_KNOWN_HOSTS_B64 -u SSH_AUTH_SOCK UD_IT_MARK="$T" "$@"
}

# github_ci EVENT [VAR=value ...]: `deploy ci` in the work clone as a
# GitHub Actions push (or other EVENT) of its HEAD to main.
github_ci() {
	local event=$1
	shift
	cd "$W"
	run --separate-stderr ci_env GITHUB_ACTIONS=true \
		GITHUB_SHA="$(git -C "$W" rev-parse HEAD)" GITHUB_REF=refs/heads/main \
		GITHUB_EVENT_NAME="$event" GITHUB_STEP_SUMMARY="$T/summary.md" \
		"$@" "$DEPLOY_BIN" ci
	cd "$ROOT"
	printf '%s\n' "--- deploy ci (status $status):" "$output" "--- stderr:" "$stderr" >&2
}

# travis_ci [VAR=value ...]: the Travis template's script line,
# ci/deploy-ci.sh, in the work clone as a Travis build of its HEAD on main.
travis_ci() {
	cd "$W"
	run --separate-stderr ci_env DEPLOY_REPO= TRAVIS=true \
		TRAVIS_COMMIT="$(git -C "$W" rev-parse HEAD)" TRAVIS_BRANCH=main \
		DEPLOY_BIN="$DEPLOY_BIN" "$@" sh "$ROOT/ci/deploy-ci.sh"
	cd "$ROOT"
	printf '%s\n' "--- deploy ci (status $status):" "$output" "--- stderr:" "$stderr" >&2
}

# start_sshd NAME: a throwaway sshd in $T/NAME on a free port ($SSHD_PORT).
start_sshd() {
	SSHD_PORT=$(free_port)
	SSHD_DIRS+=("$T/$1")
	mkdir -p "$T/$1"
	cp "$T/$1.authorized_keys" "$T/$1/authorized_keys"
	sh "$ROOT/tests/sshd.sh" start "$T/$1" "$SSHD_PORT"
}

@test "github: a push to main publishes, signals, groups each stage and writes the step summary" {
	set_version v1
	commit_all "pong v1"
	github_ci push
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 1 ]
	[ "$(answer)" = "pong v1" ]
	# a group per stage, each closed
	grep -qx '::group::build' <<<"$output"
	grep -qx '::group::release' <<<"$output"
	grep -qx '::group::deploy' <<<"$output"
	[ "$(grep -c '^::group::' <<<"$output")" -eq "$(grep -c '^::endgroup::$' <<<"$output")" ]
	grep -q '^-----> local: pong v1 running (1 instance) in [0-9]* ms$' <<<"$output"
	refute grep -q '^::error::' <<<"$output"
	# the summary: release, commit, images, hosts, stage timings
	s=$(cat "$T/summary.md")
	m=$(manifest 1)
	grep -qx '### unideploy: deployed' <<<"$s"
	grep -qF '| release | pong v1 |' <<<"$s"
	grep -qF "| commit | \`$(git -C "$W" rev-parse HEAD)\` |" <<<"$s"
	grep -qF "| $(jq -r '.images[0].file' <<<"$m") | unix/x86_64 | $(jq -r '.images[0].size' <<<"$m") bytes | \`$(jq -r '.images[0].sha256' <<<"$m")\` |" <<<"$s"
	grep -q '^| local | :white_check_mark: pong v1 running (1 instance) in [0-9]* ms |$' <<<"$s"
	grep -q '^| build | [0-9.]* s |$' <<<"$s"
	grep -q '^| release | [0-9.]* s |$' <<<"$s"
	grep -q '^| deploy | [0-9.]* s |$' <<<"$s"
}

@test "github: a pull request is skipped with one line and publishes nothing" {
	before=$(main_rev)
	set_version v1
	commit_all "pong v1"
	github_ci pull_request
	[ "$status" -eq 0 ]
	[ "$output" = "skipped: pull request" ]
	[ -z "$stderr" ]
	[ "$(main_rev)" = "$before" ]
	[ -z "$(tags)" ]
	[ ! -e "$T/summary.md" ]
}

@test "github: another branch is skipped, nothing published" {
	before=$(main_rev)
	set_version v1
	commit_all "pong v1"
	github_ci push GITHUB_REF=refs/heads/feature
	[ "$status" -eq 0 ]
	grep -q '^skipped: refs/heads/feature is not the deploy branch refs/heads/main' <<<"$output"
	[ "$(main_rev)" = "$before" ]
}

@test "github: a host that cannot be reached: exit 3, an annotation and a summary row naming it" {
	port=$(free_port)
	deploy host add edge2 --ssh "root@127.0.0.1:$port"
	deploy place pong --hosts local,edge2 --listen "$LISTEN"
	set_version v1
	commit_all "pong v1"
	github_ci push
	[ "$status" -eq 3 ]
	[ "$(current_release)" = 1 ]
	[ "$(answer)" = "pong v1" ]
	grep -q "^-----> edge2: unreachable: .*127.0.0.1.*" <<<"$output"
	grep -q "^::error::edge2: unreachable: " <<<"$output"
	grep -q '^-----> local: pong v1 running' <<<"$output"
	grep -q 'v1 failed on some hosts' <<<"$stderr"
	s=$(cat "$T/summary.md")
	grep -qx '### unideploy: published; some hosts failed' <<<"$s"
	grep -q '^| edge2 | :x: unreachable: ' <<<"$s"
	grep -q '^| local | :white_check_mark: ' <<<"$s"
}

@test "travis: through ci/deploy-ci.sh, a pull request without secrets is skipped; a push to main publishes inside folds" {
	set_version v1
	commit_all "pong v1"
	travis_ci TRAVIS_PULL_REQUEST=12
	[ "$status" -eq 0 ]
	[ "$output" = "skipped: pull request" ]
	[ -z "$(tags)" ]

	# Travis settings hold one line: the key and known_hosts in base64
	# (unused here: the repository is a path and the host an agent socket,
	# but the script insists on them being configured).
	KEYDIR=$(mktemp -d /tmp/udci-key.XXXXXX)
	ssh-keygen -q -t ed25519 -N '' -f "$KEYDIR/key"
	travis_ci TRAVIS_PULL_REQUEST=false DEPLOY_REPO="$DREPO" \
		DEPLOY_SSH_KEY_B64="$(base64 -w0 "$KEYDIR/key")" \
		DEPLOY_KNOWN_HOSTS_B64="$(printf '%s\n' "[127.0.0.1]:2222 $(cut -d' ' -f1,2 "$KEYDIR/key.pub")" | base64 -w0)"
	[ "$status" -eq 0 ]
	[ "$(answer)" = "pong v1" ]
	for stage in build release deploy; do
		grep -q "^travis_fold:start:deploy-$stage"$'\r'"\$" <<<"$output"
		grep -q "^travis_fold:end:deploy-$stage"$'\r'"\$" <<<"$output"
	done
	refute grep -q '^::' <<<"$output"
}

@test "ci/deploy-ci.sh names the settings that are missing, never a value, and runs nothing" {
	before=$(main_rev)
	set_version v1
	commit_all "pong v1"
	cd "$W"
	run --separate-stderr ci_env DEPLOY_REPO= GITHUB_ACTIONS=true \
		GITHUB_SHA="$(git rev-parse HEAD)" GITHUB_REF=refs/heads/main \
		GITHUB_EVENT_NAME=push DEPLOY_BIN="$DEPLOY_BIN" \
		DEPLOY_KNOWN_HOSTS="secret-marker-5f1c known" sh "$ROOT/ci/deploy-ci.sh"
	cd "$ROOT"
	[ "$status" -eq 1 ]
	[ "$stderr" = "deploy-ci: not set: DEPLOY_SSH_KEY DEPLOY_REPO (CI secrets or variables: see docs/ssh-and-ci.md)" ]
	grep -q '^::error::deploy-ci: not set: DEPLOY_SSH_KEY DEPLOY_REPO' <<<"$output"
	refute grep -q secret-marker <<<"$output$stderr"
	[ "$(main_rev)" = "$before" ]

	run --separate-stderr ci_env DEPLOY_BIN="$T/nowhere/deploy" sh "$ROOT/ci/deploy-ci.sh"
	[ "$status" -eq 1 ]
	grep -q "deploy-ci: '$T/nowhere/deploy' not found" <<<"$stderr"
}

@test "github: ssh:// deployment repository and an ssh host, the key only in DEPLOY_SSH_KEY and found nowhere after" {
	# The pipeline's key, kept outside every directory searched below.
	KEYDIR=$(mktemp -d /tmp/udci-key.XXXXXX)
	ssh-keygen -q -t ed25519 -N '' -C ci-key -f "$KEYDIR/key"
	me=$(id -un)
	# The deployment repository's server: the key may run git.
	cp "$KEYDIR/key.pub" "$T/sshd-git.authorized_keys"
	start_sshd sshd-git
	git_port=$SSHD_PORT
	# The host's server: the key may run the forced command only.
	agent_cli authorize "$KEYDIR/key.pub" >"$T/sshd-host.authorized_keys"
	start_sshd sshd-host
	host_port=$SSHD_PORT
	known=$(sh "$ROOT/tests/sshd.sh" known "$T/sshd-git" "$git_port"
		sh "$ROOT/tests/sshd.sh" known "$T/sshd-host" "$host_port")
	deploy host add local --ssh "$me@127.0.0.1:$host_port"

	# The build prints its whole environment into the build log.
	write_deploy_json "$(jq -r .build.command "$ROOT/templates/pong/deploy.json") && env"
	set_version v1
	commit_all "pong v1"
	github_ci push DEPLOY_REPO="ssh://$me@127.0.0.1:$git_port$DREPO" \
		DEPLOY_SSH_KEY="$(cat "$KEYDIR/key")" DEPLOY_KNOWN_HOSTS="$known"
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 1 ]
	[ "$(answer)" = "pong v1" ]
	grep -q "^-----> local: pong v1 running (1 instance) in [0-9]* ms$" <<<"$output"
	grep -qF '| release | pong v1 |' "$T/summary.md"
	grep -q '^| local | :white_check_mark: ' "$T/summary.md"
	# the build did run with an environment, and the key was not in it
	log=$(dgit show main:apps/pong/releases/1/build.log)
	grep -q '^DEPLOY_APP=pong' <<<"$log"
	refute grep -q DEPLOY_SSH_KEY <<<"$log"

	# Every line of the key's body, searched for everywhere; but the
	# first, the same in every unencrypted ed25519 key (the sshd host
	# keys under $T have it too).
	grep -v '^-----' "$KEYDIR/key" | tail -n +2 >"$KEYDIR/lines"
	[ "$(wc -l <"$KEYDIR/lines")" -ge 3 ]
	refute grep -qF -f "$KEYDIR/lines" <<<"$output$stderr"
	refute grep -qF -f "$KEYDIR/lines" "$T/summary.md"
	refute grep -rqF -f "$KEYDIR/lines" "$T"
	refute dgit grep -qF -f "$KEYDIR/lines" $(dgit rev-list --all)
	refute grep -qF -f "$KEYDIR/lines" <(dgit log --all --format=%B)
	# the remote repository was used through its cache, under $T
	[ -n "$(ls "$T/cache/repos" 2>/dev/null)" ]
}
