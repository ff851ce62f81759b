#!/usr/bin/env bats
# Bad input never changes the deployment repository or what serves, and the
# pusher is told exactly why (SPEC §1 errors, §2, §7).

load helpers

# Before each case: v1 is live. After it: main, tags and the answer are as
# they were.
setup() {
	setup_world
	release_version v1
	[ "$(answer)" = "pong v1" ]
	BEFORE=$(main_rev)
	TAGS_BEFORE=$(tags)
}

unchanged() {
	[ "$(main_rev)" = "$BEFORE" ]
	[ "$(tags)" = "$TAGS_BEFORE" ]
	[ "$(answer)" = "pong v1" ]
	[ "$(instance_count)" -eq 1 ]
}

# push_bad MESSAGE: commit the work clone as it is and push it to main.
push_bad() {
	set_version v2
	commit_all "$1"
	push
}

# sleep processes started by the build of commit $1
build_sleepers() {
	local p
	for p in $(pgrep -x sleep); do
		grep -qzx -e "DEPLOY_COMMIT=$1" -e "UD_IT_MARK=$T" "/proc/$p/environ" 2>/dev/null && echo "$p"
	done
}

# the error line the pusher sees, without the "remote: " prefix
pusher_error() { sed -n 's/^remote: *//p' <<<"$PUSH_OUT" | grep -E '^deploy: '; }

@test "deploy.json with an unknown key: refused, the key named" {
	write_deploy_json "" '.bulid = {"command": "true"}'
	push_bad "typo in deploy.json"
	unchanged
	pusher_error | grep -q "deploy.json"
	pusher_error | grep -qF "unknown key 'bulid'"
}

@test "deploy.json with a misspelled nested key: refused, the key named" {
	write_deploy_json "" '.health.timout_s = 5'
	push_bad "nested typo"
	unchanged
	pusher_error | grep -qF "unknown key 'health.timout_s'"
}

@test "malformed deploy.json: refused with file:line:column" {
	printf '{\n  "app": "pong",\n  "build": { "command": "true" }\n  "images": []\n}\n' >"$W/deploy.json"
	push_bad "broken json"
	unchanged
	pusher_error | grep -qF "deploy.json:4:10: '}' expected near '\"images\"'"
}

@test "app name '../x' is refused before it touches a path" {
	write_deploy_json "" '.app = "../x"'
	push_bad "path trick"
	unchanged
	pusher_error | grep -qF "invalid app name '../x'"
	[ "$(dgit ls-tree --name-only main:apps)" = pong ]
	[ ! -e "$T/x" ] && [ ! -e "$T/state/x" ]
}

@test "a failing build (exit 1 in build.command) publishes nothing; the log and status reach the pusher" {
	write_deploy_json 'echo about to fail; exit 1'
	push_bad "failing build"
	unchanged
	grep -q '^remote: .*about to fail' <<<"$PUSH_OUT"
	pusher_error | grep -qF 'nothing was published: build.command exited with status 1'
}

@test "an image path missing after the build publishes nothing; the path is named" {
	write_deploy_json 'echo built nothing'
	push_bad "no image"
	unchanged
	pusher_error | grep -qF 'image dist/pong (unix/x86_64) was not produced by the build'
}

@test "a build past its timeout is killed with its whole process group; nothing published" {
	write_deploy_json 'sleep 60 & sleep 60' '.build.timeout_s = 2'
	push_bad "endless build"
	unchanged
	pusher_error | grep -qF 'build.command timed out after 2 s'
	commit=$(git -C "$W" rev-parse HEAD)
	# no sleep of that build survives
	wait_until 60 output_is "" build_sleepers "$commit" || {
		build_sleepers "$commit" | xargs -r ps -o pid,pgid,cmd -p >&2
		false
	}
}

@test "a build past its timeout dies whole, with what left its process group through setsid" {
	# issue 16 item 8: the build runs as the first process of its own PID
	# namespace (docs/builds.md), so killing it takes every process it
	# started, whatever session or group they moved to
	write_deploy_json 'setsid sleep 60 & setsid -f sh -c "sleep 60" & sleep 60' '.build.timeout_s = 2'
	push_bad "endless build, escaping its group"
	unchanged
	pusher_error | grep -qF 'build.command timed out after 2 s'
	commit=$(git -C "$W" rev-parse HEAD)
	wait_until 60 output_is "" build_sleepers "$commit" || {
		build_sleepers "$commit" | xargs -r ps -o pid,pgid,sid,cmd -p >&2
		false
	}
}

@test "deploy place naming a nonexistent host fails and changes nothing" {
	run --separate-stderr deploy place pong --hosts local,nosuchhost
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -q "^deploy: .*host 'nosuchhost' is not in fleet.json" <<<"$stderr"
	unchanged
	dgit show main:fleet.json | jq -e '.apps.pong.hosts == ["local"]'
}

@test "a deploy.json past 1 MiB is refused from its size, naming the file and the limit" {
	{ printf '{"app": "pong", "pad": "'; head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' x; printf '"}\n'; } >"$W/deploy.json"
	size=$(wc -c <"$W/deploy.json")
	push_bad "huge deploy.json"
	unchanged
	pusher_error | grep -qF "deploy: nothing was built: 'deploy.json' is $size bytes, more than the limit of 1048576 bytes; nothing of it was read"
}

@test "numbers are read strictly: ' 1', '+1', '01' are not release 1" {
	for n in " 1" "+1" "01" "1 " "v 1"; do
		run --separate-stderr deploy rollback pong "$n"
		echo "$n: $stderr" >&2
		[ "$status" -eq 2 ]
		grep -qxF "deploy: rollback pong: N must be a release number, not '$n'" <<<"$stderr"
	done
	run --separate-stderr deploy place pong --instances " 2"
	echo "$stderr" >&2
	[ "$status" -eq 2 ]
	grep -qxF "deploy: place: --instances must be a positive number, not ' 2'" <<<"$stderr"
	unchanged
}

@test "rollback to a nonexistent release fails and changes nothing" {
	run --separate-stderr deploy rollback pong 42
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qx 'deploy: rollback pong: pong has no release 42' <<<"$stderr"
	unchanged
}

@test "a second hook run while one is in progress is refused with a clear message" {
	# the build sees only its export and its cache dir, $T/cache/pong; it
	# goes on only once the test says so (a "sleep 3" could end before the
	# second run below on a loaded machine)
	write_deploy_json "touch \"\$DEPLOY_CACHE_DIR/build-started\"; while [ ! -e \"\$DEPLOY_CACHE_DIR/go\" ]; do sleep 0.1; done; $(pong_build_cmd)"
	set_version v2
	commit_all "slow build"
	new=$(git -C "$W" rev-parse HEAD)
	push 3>&- &
	pusher=$!
	wait_until 60 test -e "$T/cache/pong/build-started"
	# the same push again, by hand, in the bare repo, while the first builds
	run --separate-stderr bash -c "cd '$APPREPO' && echo '$(git -C "$W" rev-parse HEAD~1) $new refs/heads/main' | env -u DEPLOY_REPO UD_IT_MARK='$T' '$DEPLOY_BIN' hook post-receive"
	echo "out: $output" >&2
	echo "err: $stderr" >&2
	[ "$status" -eq 1 ]
	grep -q '^deploy: hook: another deploy of this repository is in progress' <<<"$stderr"
	[ "$(main_rev)" = "$BEFORE" ]
	# the first one goes on and publishes
	touch "$T/cache/pong/go"
	wait "$pusher"
	[ "$(main_rev)" != "$BEFORE" ]
	[ "$(current_release)" = 2 ]
	[ "$(tags)" = "pong/v1 pong/v2 " ]
	[ "$(answer)" = "pong v2" ]
}
