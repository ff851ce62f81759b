#!/usr/bin/env bats
# The README's "Using it" block, run as written (SPEC §1, issue 16): the
# lines between <!-- using-it:begin --> and <!-- using-it:end --> are
# extracted from README.md and run by bash -e as root, after `make install`
# into a temporary prefix. So that the block's own paths (/srv, /etc/
# unideploy, /run, /var/lib/unideploy, /usr/local, 127.0.0.1:8080) touch
# nothing of this machine, it runs in a network namespace of its own
# (private loopback) and a mount namespace where /srv and /run are empty
# tmpfs, /etc and /var are overlays whose writes land under $T, and the
# prefix is mounted on /usr/local. The processes it starts are stopped at
# its end (the agent by its own TERM handling).

load helpers

setup() {
	T=$(mktemp -d "${BATS_TMPDIR:-/tmp}/udit.XXXXXX")
	# nobody (the build user) reaches its cache under $T/root
	chmod 711 "$T"
	NS=
	AGENT_PID=
	if ! command -v unshare >/dev/null || ! ip netns list >/dev/null 2>&1; then
		skip "needs unshare and ip netns"
	fi
	NS=udreadme$((BASHPID % 100000))
	ip netns add "$NS"
}

teardown() {
	local rc=0
	if [ -n "$NS" ]; then
		# anything left in the namespace is this test's
		for p in $(ip netns pids "$NS" 2>/dev/null); do
			echo "left running in $NS: $(tr '\0' ' ' </proc/$p/cmdline)" >&2
			kill -KILL "$p" 2>/dev/null || true
			rc=1
		done
		ip netns delete "$NS" || rc=1
	fi
	teardown_world || rc=1
	return $rc
}

# The block, as the README writes it.
using_it_block() {
	sed -n '/^<!-- using-it:begin -->$/,/^<!-- using-it:end -->$/p' "$ROOT/README.md" |
		sed '1,2d;$d' | sed '$d'
}

@test "readme: the Using-it block is fenced between its markers" {
	run using_it_block
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -gt 10 ]
	grep -q '^deploy init /srv/deploy.git$' <<<"$output"
	grep -q '^deploy rollback pong' <<<"$output"
	# the fence itself is not part of it
	refute grep -q '^```' <<<"$output"
}

@test "readme: the Using-it block runs as written on a fresh install" {
	local prefix=$T/prefix
	make -C "$ROOT" -s install PREFIX="$prefix" >&2
	# what make install promises the README's reader
	[ -x "$prefix/bin/deploy" ] && [ -x "$prefix/bin/deploy-agent" ]
	[ -f "$prefix/share/doc/unideploy/README.md" ]
	[ -f "$prefix/share/doc/unideploy/SPEC.md" ]
	[ -f "$prefix/share/doc/unideploy/multiuser.md" ]
	[ -f "$prefix/share/unideploy/templates/pong/deploy.json" ]
	grep -qx "ExecStart=$prefix/bin/deploy-agent --config /etc/unideploy/agent.json run" \
		"$prefix/lib/systemd/system/deploy-agent.service"
	grep -qx "Documentation=file://$prefix/share/doc/unideploy/README.md" \
		"$prefix/lib/systemd/system/deploy-agent.service"

	local etc_before=no
	[ ! -e /etc/unideploy ] || etc_before=yes
	using_it_block >"$T/block.sh"
	mkdir -p "$T/root" "$T/ovl"
	cat >"$T/run.sh" <<EOF
set -eu
mount --make-rprivate /
mount -t tmpfs tmpfs /srv
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs "$T/ovl"
mkdir -p "$T/ovl/etc" "$T/ovl/etc.work" "$T/ovl/var" "$T/ovl/var.work"
mount -t overlay overlay -o lowerdir=/etc,upperdir=$T/ovl/etc,workdir=$T/ovl/etc.work /etc
mount -t overlay overlay -o lowerdir=/var,upperdir=$T/ovl/var,workdir=$T/ovl/var.work /var
mount --bind "$prefix" /usr/local
ip link set lo up
# a fresh root login: Debian's PATH for root, nothing of the test's
export HOME=$T/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
unset DEPLOY_REPO DEPLOY_CACHE_ROOT GIT_CONFIG_NOSYSTEM GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
cd "\$HOME"
# the agent the block starts in the background stops when the block ends
trap 'kill \$(jobs -p) 2>/dev/null; wait' EXIT
set -x
. "$T/block.sh"
set +x
# what the block left, read before its agent stops
echo "=== after"
deploy releases pong --json >"$T/releases.json"
curl -s http://127.0.0.1:8080/ >"$T/answer"
cp /var/log/deploy-agent.log "$T/agent.log" 2>/dev/null || true
cp /etc/unideploy/agent.json "$T/agent.json.seen"
EOF
	run ip netns exec "$NS" unshare --mount --propagation private \
		env UD_IT_MARK="$T" bash -e "$T/run.sh"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q "=== after" <<<"$output"
	# the pushes built and booted, the rollback served v1 again
	grep -q "^remote: -----> local: pong v1 running" <<<"$output"
	grep -q "^remote: -----> local: pong v2 running" <<<"$output"
	[ "$(grep -c '^pong v1$' <<<"$output")" -eq 2 ]
	[ "$(cat "$T/answer")" = "pong v1" ]
	[ "$(jq -r '.[0].release' "$T/releases.json")" = 3 ]
	[ "$(jq -r '.[0].rollback_of' "$T/releases.json")" = 1 ]
	[ "$(jq -r '.[0].current' "$T/releases.json")" = true ]
	# the block wrote its agent.json; none of it reached this
	# machine's own /etc or /srv
	jq -e '.host == "local" and .repo == "/srv/deploy.git"' "$T/agent.json.seen"
	[ "$etc_before" = yes ] || [ ! -e /etc/unideploy ]
	[ ! -e /srv/deploy.git ] && [ ! -e /srv/git/pong.git ]
}
