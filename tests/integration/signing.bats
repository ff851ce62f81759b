#!/usr/bin/env bats
# Signed releases (issue 12 item 1): the pipeline signs every commit it
# makes with $DEPLOY_SIGNING_KEY, in git's own SSH format; an agent with
# allowed_signers boots only history signed by a listed key, every commit
# since the last one it accepted. Real pushes through the hook, a real
# agent, real git verify-commit and ssh-keygen.

load helpers


setup() {
	KEYS=$(mktemp -d "${BATS_TMPDIR:-/tmp}/udkeys.XXXXXX")
	ssh-keygen -q -t ed25519 -N '' -C ci -f "$KEYS/ci"
	ssh-keygen -q -t ed25519 -N '' -C other -f "$KEYS/other"
	echo "ci@example namespaces=\"git\" $(cat "$KEYS/ci.pub")" >"$KEYS/allowed"
	DEPLOY_SIGNING_KEY=$(cat "$KEYS/ci")
	export DEPLOY_SIGNING_KEY
	AGENT_JQ=".allowed_signers = \"$KEYS/allowed\""
	setup_world
}

teardown() {
	teardown_world
	rm -rf "$KEYS"
}

git_verify() {
	git --git-dir="$DREPO" -c gpg.ssh.allowedSignersFile="$KEYS/allowed" \
		verify-commit "$1"
}

# Every line of the private key's body, looked for in what it must never
# reach.
key_appears_in() {
	local line
	while read -r line; do
		case $line in -----*) continue ;; esac
		grep -rqF -- "$line" "$@" && return 0
	done <"$KEYS/ci"
	return 1
}

@test "signed releases boot; git verify-commit accepts every commit; the key is nowhere" {
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "pong v1" ]
	for c in $(dgit rev-list main); do
		git_verify "$c"
	done
	# the agent recorded what it accepted
	[ "$(cat "$T/state/signed-head")" = "$(main_rev)" ]
	release_version v2
	[ "$(answer)" = "pong v2" ]
	[ "$(cat "$T/state/signed-head")" = "$(main_rev)" ]
	# not in the push output, the repositories, the agent's state or log
	refute key_appears_in "$T/push.out" "$DREPO" "$APPREPO" "$T/state" "$T/agent.log"
	run git --git-dir="$DREPO" log -p --all
	[[ "$output" != *"$(sed -n 2p "$KEYS/ci")"* ]]
}

@test "a release signed by another key is refused, naming the commit; the old release serves" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	good=$(main_rev)
	DEPLOY_SIGNING_KEY=$(cat "$KEYS/other") release_version v2
	bad=$(main_rev)
	[ "$bad" != "$good" ]
	[[ "$PUSH_OUT" == *"commit ${bad:0:12}"* ]]
	[[ "$PUSH_OUT" == *"not in allowed_signers"* ]]
	[ "$(answer)" = "pong v1" ]
	[ "$(cat "$T/state/signed-head")" = "$good" ]
	refute git_verify "$bad" 2>/dev/null
	# a sync on its own refuses it the same way, and boots nothing
	run agent_cli sync
	[ "$status" -ne 0 ]
	[[ "$output" == *"${bad:0:12}"* ]]
	[ "$(answer)" = "pong v1" ]
}

@test "an unsigned release is refused" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	DEPLOY_SIGNING_KEY= release_version v2
	[[ "$PUSH_OUT" == *"commit $(main_rev | cut -c1-12)"*"not signed"* ]]
	[ "$(answer)" = "pong v1" ]
}

@test "a signed head on top of an unsigned change is refused, naming the change" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	# someone with write access to the deployment repository adds an
	# unsigned commit (plain git, no signature) ...
	tree=$(dgit rev-parse "main^{tree}")
	sneak=$(dgit commit-tree "$tree" -p main -m "sneaked in")
	dgit update-ref refs/heads/main "$sneak"
	# ... and the next signed release lands on top of it
	release_version v2
	[ "$(main_rev)" != "$sneak" ]
	git_verify main
	[[ "$PUSH_OUT" == *"commit ${sneak:0:12} (sneaked in): not signed"* ]]
	[ "$(answer)" = "pong v1" ]
}

@test "a malformed allowed_signers file is named with line and column; nothing changes" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	good=$(main_rev)
	printf '# ok\nci@example bogus="1" %s\n' "$(cat "$KEYS/ci.pub")" >"$KEYS/allowed"
	release_version v2
	[[ "$PUSH_OUT" == *"$KEYS/allowed:2:12: unknown option"* ]]
	[ "$(answer)" = "pong v1" ]
	[ "$(cat "$T/state/signed-head")" = "$good" ]
}
