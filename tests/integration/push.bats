#!/usr/bin/env bats
# git push -> build -> release in the deployment repository -> running on
# the local agent (SPEC §2, §3, §4 "Pushes to the hook's branch", §5).

load helpers

# This suite runs the post-receive hook (`deploy hook install
# --post-receive`): the option keeps working as it always did. The default,
# pre-receive, is prereceive.bats (and every other suite).
HOOK_INSTALL_OPTS=--post-receive

@test "hook install writes deploy.repo and deploy.branch into the app repository's config" {
	[ "$(git --git-dir="$APPREPO" config deploy.repo)" = "$DREPO" ]
	[ "$(git --git-dir="$APPREPO" config deploy.branch)" = main ]
	[ -x "$APPREPO/hooks/post-receive" ]
}

@test "push v1: the release is live and answers 'pong v1' through the listen address" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	[ "$(answer /health)" = "ok" ]
	[ "$(current_release)" = 1 ]
	[ "$(tags)" = "pong/v1 " ]
	[ "$(instance_count)" -eq 1 ]
}

@test "push v1 commits manifest, image, build.log and current in one commit, tagged pong/v1" {
	release_version v1
	src=$(git -C "$W" rev-parse HEAD)
	# one commit on top of the fleet history touches exactly the release
	changed=$(dgit diff-tree --no-commit-id --name-only -r main | sort)
	img=$(manifest 1 | jq -r '.images[0].file')
	expected=$(printf '%s\n' "apps/pong/current" "apps/pong/releases/1/$img" \
		"apps/pong/releases/1/build.log" "apps/pong/releases/1/manifest.json" | sort)
	[ "$changed" = "$expected" ]
	[ "$(dgit rev-parse 'pong/v1^{commit}')" = "$(main_rev)" ]
	# the manifest, field by field (SPEC §3)
	m=$(manifest 1)
	[ "$(jq -r .app <<<"$m")" = pong ]
	[ "$(jq -r .release <<<"$m")" = 1 ]
	[ "$(jq -r .source.commit <<<"$m")" = "$src" ]
	[ "$(jq -r .source.ref <<<"$m")" = refs/heads/main ]
	[ "$(jq -r .source.subject <<<"$m")" = "pong v1" ]
	jq -r .source.author <<<"$m" | grep -q "Int Test"
	jq -e '.created_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")' <<<"$m"
	jq -e '.build.command | contains("cc -O2")' <<<"$m"
	jq -e '.build.duration_ms | type == "number" and . >= 0' <<<"$m"
	jq -e '.build.builder | type == "string" and length > 0' <<<"$m"
	jq -e '.rollback_of == null' <<<"$m"
	jq -e '.images | length == 1' <<<"$m"
	jq -e '.images[0] | .target == "unix" and .arch == "x86_64" and (.sha256 | test("^[0-9a-f]{64}$")) and .size > 0 and (.compression | IN("none","gzip","xz","zstd"))' <<<"$m"
}

@test "manifest sha256 equals the sha256sum of the image the agent booted" {
	release_version v1
	pids=$(instance_pids)
	[ "$(echo "$pids" | wc -w)" -eq 1 ]
	booted=$(sha256sum "/proc/$pids/exe" | cut -d' ' -f1)
	[ "$(manifest 1 | jq -r '.images[0].sha256')" = "$booted" ]
	[ "$(manifest 1 | jq -r '.images[0].size')" = "$(stat -L -c %s "/proc/$pids/exe")" ]
	# stored uncompressed, the blob is the booted image itself
	if [ "$(manifest 1 | jq -r '.images[0].compression')" = none ]; then
		file=$(manifest 1 | jq -r '.images[0].file')
		[ "$(dgit cat-file blob "main:apps/pong/releases/1/$file" | sha256sum | cut -d' ' -f1)" = "$booted" ]
	fi
}

@test "remote: lines show the build log, digests, release number, per-host result and stage timings" {
	write_deploy_json "echo BUILD-MARKER-\$DEPLOY_APP && $(pong_build_cmd)"
	release_version v1
	sha=$(manifest 1 | jq -r '.images[0].sha256')
	remote=$(grep '^remote: ' <<<"$PUSH_OUT")
	grep -q 'remote: .*BUILD-MARKER-pong' <<<"$remote"           # live build output
	grep -q "remote: .*$sha" <<<"$remote"                          # digest
	grep -Eiq 'remote: .*release[ds]? [a-z ]*v?1\b' <<<"$remote" # release number
	grep -Eiq 'remote: .*\blocal\b.*\b(ok|running|ready|healthy|live)\b' <<<"$remote" # host result
	# each stage says how long it took
	[ "$(grep -Ec 'remote: .*\b[0-9]+(\.[0-9]+)? ?(ms|s)\b' <<<"$remote")" -ge 3 ]
	# and the build log was kept with the release
	dgit show main:apps/pong/releases/1/build.log | grep -q BUILD-MARKER-pong
}

@test "build.command runs in a clean export with DEPLOY_* set, no GIT_* leaking, cache kept between builds" {
	cmd='env | grep -E "^(DEPLOY_|GIT_)" | sed "s/^/ENV /" | sort; echo "PWD $(pwd)"; test -e "$DEPLOY_CACHE_DIR/stamp" && echo CACHE-HIT; touch "$DEPLOY_CACHE_DIR/stamp"; test -d .git && echo HAS-DOTGIT; '"$(pong_build_cmd)"
	write_deploy_json "$cmd"
	release_version v1
	src=$(git -C "$W" rev-parse HEAD)
	log=$(dgit show main:apps/pong/releases/1/build.log)
	echo "$log" >&2
	grep -qx 'ENV DEPLOY_APP=pong' <<<"$log"
	grep -qx "ENV DEPLOY_COMMIT=$src" <<<"$log"
	grep -qx 'ENV DEPLOY_REF=refs/heads/main' <<<"$log"
	grep -q '^ENV DEPLOY_CACHE_DIR=/' <<<"$log"
	refute grep -q '^ENV GIT_' <<<"$log"
	refute grep -q '^CACHE-HIT' <<<"$log"
	refute grep -q '^HAS-DOTGIT' <<<"$log"
	pwd=$(sed -n 's/^PWD //p' <<<"$log")
	[ -n "$pwd" ]
	[[ "$pwd" != "$APPREPO"* ]]
	release_version v2
	dgit show main:apps/pong/releases/2/build.log | grep -qx CACHE-HIT
	[ "$(answer)" = "pong v2" ]
}

@test "push v2 swaps to 'pong v2' with zero failed requests during the swap" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	old=$(instance_pids)
	start_load 3
	# every client has been answered before the push, and by v2 after it
	# (waits for those answers, however slowly a loaded machine runs them)
	wait_until 60 load_all_saw 'pong v1'
	release_version v2
	wait_until 60 load_all_saw 'pong v2'
	wait_until 120 load_answers_over 10
	stop_load
	echo "ok=$LOAD_OK failed=$LOAD_FAILED" >&2
	grep -h FAILED "$T"/load.*.bodies >&2 || true
	[ "$LOAD_FAILED" -eq 0 ]
	[ "$LOAD_OK" -gt 10 ]
	# every answer is v1 or v2, and once a client saw v2 it never sees v1 again
	for f in "$T"/load.*.bodies; do
		refute grep -qvxE 'pong v[12]' "$f"
		grep -qx 'pong v2' "$f"
		[ -z "$(sed -n '/^pong v2$/,$p' "$f" | grep -x 'pong v1')" ]
	done
	[ "$(answer)" = "pong v2" ]
	# the old instance was stopped: one instance, a new one
	wait_until 60 instances_are 1
	[ "$(instance_pids)" != "$old" ]
	gone "$old"
}

@test "a release that boots slowly still swaps with zero failed requests" {
	release_version v1
	write_deploy_json "$(pong_build_cmd -DSTARTUP_DELAY_MS=1500)"
	start_load 2
	release_version v2
	wait_until 120 load_answers_over 10
	stop_load
	echo "ok=$LOAD_OK failed=$LOAD_FAILED" >&2
	[ "$LOAD_FAILED" -eq 0 ]
	[ "$LOAD_OK" -gt 10 ]
	[ "$(answer)" = "pong v2" ]
	[ "$(instance_count)" -eq 1 ]
}

@test "a slow request in flight on the old release completes during the swap (drain)" {
	release_version v1
	curl -s --max-time 60 "http://$LISTEN/slow?ms=20000" >"$T/slow.out" 3>&- &
	slow=$!
	# the request is in flight on v1 before the push
	wait_until 60 connections_at_least 1
	release_version v2
	wait "$slow"
	[ "$(cat "$T/slow.out")" = "slept 20000 ms" ]
	[ "$(answer)" = "pong v2" ]
}

@test "a push to another branch publishes nothing" {
	release_version v1
	before=$(main_rev)
	set_version v2
	commit_all "pong v2 on a branch"
	push HEAD:refs/heads/feature
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(main_rev)" = "$before" ]
	[ "$(tags)" = "pong/v1 " ]
	[ "$(answer)" = "pong v1" ]
}

@test "an idle keep-alive client of the old release does not hold up the push; its next request goes to the new one" {
	release_version v1
	old=$(instance_pids)
	[ "$(echo "$old" | wc -w)" -eq 1 ]
	exec {conn}<>"/dev/tcp/${LISTEN%:*}/${LISTEN##*:}"
	printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&$conn
	read -r -t 5 status <&$conn
	[[ "$status" == "HTTP/1.1 200"* ]]
	# the rest of the first reply, up to its body
	[ "$(timeout 5 grep -m1 '^pong v' <&$conn)" = "pong v1" ]
	release_version v2
	echo "$PUSH_OUT" | grep -q "pong v2 running"
	[ "$(answer)" = "pong v2" ]
	# pong has an http health check, so the proxy follows requests
	# (docs/proxy.md): the same kept-alive connection's next request is
	# answered by the new release ...
	printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&$conn
	[ "$(timeout 5 grep -m1 '^pong v' <&$conn)" = "pong v2" ]
	exec {conn}>&-
	# ... and v1, whose connection was idle, drains and stops.
	wait_until 60 gone "$old"
	[ "$(instance_count)" -eq 1 ]
}
