#!/usr/bin/env bats
# One host, several users (docs/multiuser.md), with real users and a real
# sshd: a `git` user owns the app and deployment repositories and is
# reached over OpenSSH; the deployment repository is shared with a group
# (core.sharedRepository=group, setgid directories); another member of
# the group and root run `deploy` on it; the agent runs as root and gives
# its control socket to the group (agent.json control_group/control_mode),
# so the git user's hook signals it. Users and group are created here and
# removed in teardown.

load helpers

# Names of this suite's users and group (short: useradd's limit is 32).
GITU=udmugit
OPSU=udmuops
OUTU=udmuout
GRP=udmudep

setup() {
	setup_world
	# setup_world's agent and repositories are root's: this suite makes
	# its own.
	stop_agent
	USERS_MADE=
	SSHD_DIR=
	multiuser_world
}

teardown() {
	local rc=0 u
	[ -z "$SSHD_DIR" ] || sh "$ROOT/tests/sshd.sh" stop "$SSHD_DIR" || rc=1
	teardown_world || rc=1
	for u in $USERS_MADE; do
		if ! userdel "$u"; then
			echo "cannot remove user $u; its processes:" >&2
			ps -u "$u" -o pid,args >&2 || true
			rc=1
		fi
	done
	[ -z "$USERS_MADE" ] || groupdel "$GRP" 2>/dev/null || true
	return $rc
}

# as USER CMD...: run CMD as USER with its groups (initgroups), as a login
# would; HOME is the user's, the deploy binaries marked for teardown.
as() {
	local u=$1 home
	shift
	home=$(getent passwd "$u" | cut -d: -f6)
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups \
		env -u DEPLOY_REPO -u DEPLOY_CACHE_ROOT HOME="$home" \
		UD_IT_MARK="$T" PATH="$BIN:/usr/bin:/bin" "$@"
}

make_users() {
	local u
	for u in $GITU $OPSU $OUTU; do
		if id -u "$u" >/dev/null 2>&1; then
			echo "user $u exists already (a previous run?): remove it" >&2
			return 1
		fi
	done
	getent group "$GRP" >/dev/null || groupadd "$GRP"
	# -p '*': no password, yet not "locked", which the test's sshd
	# (UsePAM no) would refuse a key login for
	useradd -m -d "$T/home-$GITU" -s /bin/sh -p '*' -G "$GRP" "$GITU"
	USERS_MADE="$GITU"
	useradd -m -d "$T/home-$OPSU" -s /bin/sh -G "$GRP" "$OPSU"
	USERS_MADE="$USERS_MADE $OPSU"
	# not in the group: must be refused
	useradd -m -d "$T/home-$OUTU" -s /bin/sh "$OUTU"
	USERS_MADE="$USERS_MADE $OUTU"
}

multiuser_world() {
	local port
	make_users
	SRV=$T/srv
	mkdir -p "$SRV/git"
	chown -R "$GITU:$GRP" "$SRV"
	chmod 2775 "$SRV" "$SRV/git"
	DREPO=$SRV/deploy.git
	APPREPO=$SRV/git/pong.git

	# The recipe of docs/multiuser.md, step by step.
	as $GITU deploy init "$DREPO"
	as $GITU git -C "$DREPO" config core.sharedRepository group
	chgrp -R "$GRP" "$DREPO"
	chmod -R g+rwX "$DREPO"
	find "$DREPO" -type d -exec chmod g+s {} +
	as $GITU git init -q --bare -b main "$APPREPO"
	as $GITU deploy hook install --deploy-repo "$DREPO" "$APPREPO"
	as $GITU deploy host add --deploy-repo "$DREPO" local --agent "unix:$T/run/agent.sock"
	as $GITU deploy place --deploy-repo "$DREPO" "$APP" --hosts local --listen "$LISTEN"

	# root's agent: root trusts the git user's repository through git's
	# safe.directory (root is not in the group); the socket goes to the
	# group, in a directory its members can reach.
	git config --global --add safe.directory "$DREPO"
	mkdir -p "$T/run"
	chmod 755 "$T/run"
	jq -n --arg repo "$DREPO" --arg state "$T/state" --arg ctl "unix:$T/run/agent.sock" \
		--arg grp "$GRP" \
		'{host: "local", repo: $repo, state_dir: $state, control: $ctl,
		  poll_s: 3600, control_group: $grp, control_mode: "0660"}' >"$T/agent.json"
	# start_agent waits for the socket at $T/agent.sock
	ln -s run/agent.sock "$T/agent.sock"
	start_agent

	# the git user behind a real sshd (logins by the test's key)
	KEY=$T/keys/id_ed25519
	mkdir -p "$T/keys" "$T/sshd"
	ssh-keygen -q -t ed25519 -N '' -f "$KEY"
	cp "$KEY.pub" "$T/sshd/authorized_keys"
	port=$(free_port)
	SSHD_DIR=$T/sshd
	sh "$ROOT/tests/sshd.sh" start "$SSHD_DIR" "$port"
	# sshd reads the keys file as the user logging in
	chown "$GITU" "$SSHD_DIR/authorized_keys"
	sh "$ROOT/tests/sshd.sh" known "$SSHD_DIR" "$port" >"$T/known_hosts"
	export GIT_SSH_COMMAND="ssh -i $KEY -o UserKnownHostsFile=$T/known_hosts -o IdentitiesOnly=yes -o BatchMode=yes"
	git -C "$W" remote set-url origin "ssh://$GITU@127.0.0.1:$port$APPREPO"
}

# Nothing in the deployment repository that a member could not write
# into or replace: every directory group-writable and setgid, every file
# in the group.
repo_shared_ok() {
	local bad
	bad=$(find "$DREPO" \( -type d \( ! -perm -g+w -o ! -perm -g+s \) \) -o ! -group "$GRP")
	if [ -n "$bad" ]; then
		echo "not shared with $GRP:" >&2
		ls -ld $bad >&2
		return 1
	fi
}

@test "multiuser: git pushes over ssh, another member and root roll back, git pushes again" {
	release_version v1
	grep -q "^remote: -----> local: pong v1 running" <<<"$PUSH_OUT"
	[ "$(answer)" = "pong v1" ]
	release_version v2
	grep -q "^remote: -----> local: pong v2 running" <<<"$PUSH_OUT"
	[ "$(answer)" = "pong v2" ]
	repo_shared_ok

	# another member of the group rolls back: its signal reaches the
	# agent through the group's socket
	run as $OPSU deploy rollback --deploy-repo "$DREPO" "$APP"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(answer)" = "pong v1" ]
	repo_shared_ok

	# root too, though not in the group (safe.directory): what it writes
	# stays the group's
	run deploy rollback --deploy-repo "$DREPO" "$APP" 2
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(answer)" = "pong v2" ]
	[ -n "$(find "$DREPO" -user root)" ]
	repo_shared_ok

	# the git user pushes on top of both: no lockfile or object
	# directory it cannot write
	release_version v3
	refute grep -q "Permission denied" <<<"$PUSH_OUT"
	grep -q "^remote: -----> local: pong v5 running" <<<"$PUSH_OUT"  # release 5: VERSION v3
	[ "$(answer)" = "pong v3" ]
	[ "$(as $GITU git --git-dir="$DREPO" show "main:apps/$APP/current")" = 5 ]
	repo_shared_ok
	as $GITU git --git-dir="$DREPO" fsck --no-progress
}

@test "multiuser: the control socket belongs to control_group; members signal, others cannot" {
	[ "$(stat -c '%G %a' "$T/run/agent.sock")" = "$GRP 660" ]
	run as $OPSU deploy-agent --config "$T/agent.json" status --json
	[ "$status" -eq 0 ]
	jq -e '.ok' <<<"$output"
	run as $GITU deploy signal --deploy-repo "$DREPO" "$APP"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	# a user outside the group cannot connect
	run as $OUTU deploy-agent --config "$T/agent.json" status --json
	echo "$output" >&2
	[ "$status" -ne 0 ]
	grep -q "Permission denied" <<<"$output"
}

@test "multiuser: a user outside the group is refused the repository, with the reason" {
	run as $OUTU deploy releases --deploy-repo "$DREPO" "$APP"
	echo "$output" >&2
	[ "$status" -ne 0 ]
	grep -qF "cannot open deployment repository '$DREPO': '$DREPO' belongs to user $GITU and group $GRP, and $OUTU is neither in that group nor has it in git's safe.directory (docs/multiuser.md)" <<<"$output"
	# root without safe.directory is refused the same way
	git config --global --unset-all safe.directory
	run deploy releases --deploy-repo "$DREPO" "$APP"
	[ "$status" -ne 0 ]
	grep -qF "belongs to user $GITU and group $GRP, and root is neither" <<<"$output"
}

@test "multiuser: a bad control_group or control_mode is named and the agent does not start" {
	jq '.control_group = "no-such-group-udmu"' "$T/agent.json" >"$T/bad.json"
	run "$AGENT_BIN" --config "$T/bad.json" check
	echo "$output" >&2
	[ "$status" -ne 0 ]
	grep -qF "control_group: no group 'no-such-group-udmu' on this host" <<<"$output"
	jq '.control_mode = "0668"' "$T/agent.json" >"$T/bad.json"
	run "$AGENT_BIN" --config "$T/bad.json" run
	[ "$status" -ne 0 ]
	grep -qF "control_mode: '0668' is not a socket mode" <<<"$output"
	# the running agent's socket is untouched
	[ "$(stat -c '%G %a' "$T/run/agent.sock")" = "$GRP 660" ]
}
