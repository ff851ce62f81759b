#!/usr/bin/env bats
# docs/gitolite.md's recipe, run as written against Debian's gitolite3
# behind a real sshd (tests/sshd.sh, reading the gitolite user's own
# authorized_keys): gitolite set up for a new user, its rc edited, the
# repo-specific hook installed, the app repository configured through
# gitolite-admin; then an app pushed through gitolite deploys. The
# gitolite user is created by the recipe and removed in teardown.

load helpers

GL_USER=udglgit

setup() {
	setup_world
	stop_agent
	SSHD_DIR=
	GL_MADE=
	command -v gitolite >/dev/null || skip "gitolite3 is not installed (ci/install-deps.sh test)"
	if id -u "$GL_USER" >/dev/null 2>&1; then
		echo "user $GL_USER exists already (a previous run?): remove it" >&2
		return 1
	fi
	KEY=$T/keys/id_ed25519
	mkdir -p "$T/keys" "$T/sshd"
	ssh-keygen -q -t ed25519 -N '' -f "$KEY"
	PORT=$(free_port)
	SSHD_DIR=$T/sshd
	SSHD_USER_KEYS=1 sh "$ROOT/tests/sshd.sh" start "$SSHD_DIR" "$PORT"
	sh "$ROOT/tests/sshd.sh" known "$SSHD_DIR" "$PORT" >"$T/known_hosts"
	export GIT_SSH_COMMAND="ssh -i $KEY -o UserKnownHostsFile=$T/known_hosts -o IdentitiesOnly=yes -o BatchMode=yes"
}

teardown() {
	local rc=0
	[ -z "$SSHD_DIR" ] || sh "$ROOT/tests/sshd.sh" stop "$SSHD_DIR" || rc=1
	teardown_world || rc=1
	if [ -n "$GL_MADE" ] && ! userdel "$GL_USER"; then
		ps -u "$GL_USER" -o pid,args >&2 || true
		rc=1
	fi
	return $rc
}

recipe() {
	sed -n '/^<!-- gitolite-recipe:begin -->$/,/^<!-- gitolite-recipe:end -->$/p' \
		"$ROOT/docs/gitolite.md" | sed '1,2d;$d' | sed '$d'
}

@test "gitolite: the recipe sets up gitolite3; a push through it deploys" {
	recipe >"$T/recipe.sh"
	grep -q 'gitolite setup' "$T/recipe.sh"
	# the recipe's settings, for this test
	GL_MADE=1
	run env GL_USER="$GL_USER" GL_HOME="$T/gl" ADMIN_KEY="$KEY.pub" \
		GL_SSH="ssh://$GL_USER@127.0.0.1:$PORT" DEPLOY_REPO="$T/gl/deploy.git" \
		PATH="$BIN:$PATH" bash -e "$T/recipe.sh"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	# the rc as the recipe meant it, read by gitolite itself
	[ "$(runuser -u "$GL_USER" -- sh -c 'cd && gitolite query-rc GIT_CONFIG_KEYS')" = 'deploy\..*' ]
	runuser -u "$GL_USER" -- sh -c 'cd && gitolite query-rc LOCAL_CODE' | grep -qx "$T/gl/local"
	# the hook names the absolute path of the deploy that was on PATH
	grep -qx "exec $BIN/deploy hook post-receive" "$T/gl/local/hooks/repo-specific/unideploy"
	[ -L "$T/gl/repositories/pong.git/hooks/post-receive.h00-unideploy" ]
	[ "$(git --git-dir="$T/gl/repositories/pong.git" config deploy.repo)" = "$T/gl/deploy.git" ]

	# the deployment repository, the gitolite user's; a root agent that
	# trusts it (safe.directory) and gives its socket to the user's group
	DREPO=$T/gl/deploy.git
	runuser -u "$GL_USER" -- env PATH="$BIN:/usr/bin:/bin" deploy init "$DREPO"
	runuser -u "$GL_USER" -- env PATH="$BIN:/usr/bin:/bin" deploy host add local \
		--deploy-repo "$DREPO" --agent "unix:$T/run/agent.sock"
	runuser -u "$GL_USER" -- env PATH="$BIN:/usr/bin:/bin" deploy place "$APP" \
		--deploy-repo "$DREPO" --hosts local --listen "$LISTEN"
	git config --global --add safe.directory "$DREPO"
	mkdir -p "$T/run"
	chmod 755 "$T/run"
	jq -n --arg repo "$DREPO" --arg state "$T/state" --arg ctl "unix:$T/run/agent.sock" \
		--arg grp "$(id -gn "$GL_USER")" \
		'{host: "local", repo: $repo, state_dir: $state, control: $ctl,
		  poll_s: 3600, control_group: $grp}' >"$T/agent.json"
	ln -s run/agent.sock "$T/agent.sock"
	start_agent

	# a push through gitolite: gitolite-shell, its hook driver, deploy
	git -C "$W" remote set-url origin "ssh://$GL_USER@127.0.0.1:$PORT/pong"
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	grep -q "^remote: -----> local: pong v1 running" <<<"$PUSH_OUT"
	[ "$(answer)" = "pong v1" ]
	release_version v2
	grep -q "^remote: -----> local: pong v2 running" <<<"$PUSH_OUT"
	[ "$(answer)" = "pong v2" ]
	[ "$(dgit show main:apps/$APP/current)" = 2 ]
}
