#!/usr/bin/env bats
# The ops CLI: releases, rollback, status, signal, build, publish (SPEC §4).

load helpers

# image files of a release with their blob oids: "<oid> <name>" lines
image_blobs() {
	dgit ls-tree "main:apps/pong/releases/$1" | awk '$4 != "manifest.json" && $4 != "build.log" { print $3, $4 }'
}

@test "deploy releases --json: newest first, commit, created_at, rollback_of, current" {
	release_version v1
	c1=$(git -C "$W" rev-parse HEAD)
	release_version v2
	c2=$(git -C "$W" rev-parse HEAD)
	run deploy releases pong --json
	echo "$output" >&2
	[ "$status" -eq 0 ]
	jq -e 'type == "array" and length == 2' <<<"$output"
	jq -e '.[0] | .release == 2 and .current == true and .rollback_of == null' <<<"$output"
	jq -e '.[1] | .release == 1 and .current == false and .rollback_of == null' <<<"$output"
	[ "$(jq -r '.[0].commit' <<<"$output")" = "$c2" ]
	[ "$(jq -r '.[1].commit' <<<"$output")" = "$c1" ]
	jq -e 'all(.[]; .created_at | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"))' <<<"$output"
	jq -e 'all(.[]; keys == ["commit","created_at","current","release","rollback_of"])' <<<"$output"
}

@test "deploy releases (text): every release listed, the current one marked" {
	release_version v1
	release_version v2
	run deploy releases pong
	echo "$output" >&2
	[ "$status" -eq 0 ]
	# one line per release, newest first, the current one marked
	[ "$(wc -l <<<"$output")" -eq 2 ]
	grep -Eq '^\* +v2\b' <<<"$(sed -n 1p <<<"$output")"
	grep -Eq '^ +v1\b' <<<"$(sed -n 2p <<<"$output")"
}

@test "deploy releases of an unknown app fails with exit 1 and one error line" {
	run --separate-stderr deploy releases nosuchapp
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -q '^deploy: .*nosuchapp' <<<"$stderr"
}

@test "deploy rollback (default) restores the release before the live one, same blobs" {
	release_version v1
	release_version v2
	[ "$(answer)" = "pong v2" ]
	run deploy rollback pong
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 3 ]
	[ "$(manifest 3 | jq -r .rollback_of)" = 1 ]
	[ "$(manifest 3 | jq -r .release)" = 3 ]
	[ "$(image_blobs 3)" = "$(image_blobs 1)" ]
	[ -n "$(image_blobs 1)" ]
	[ "$(tags)" = "pong/v1 pong/v2 pong/v3 " ]
	[ "$(answer)" = "pong v1" ]
	run deploy releases pong --json
	jq -e '.[0] | .release == 3 and .rollback_of == 1 and .current' <<<"$output"
	# again: v3 stands for v1 and nothing is older, so nothing to do
	# (rollbacks go back, they do not toggle between v1 and v2: SPEC §4)
	before=$(main_rev)
	run --separate-stderr deploy rollback pong
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qx 'deploy: rollback pong: pong has no earlier release to roll back to' <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(answer)" = "pong v1" ]
}

@test "two default rollbacks in a row go two releases back, each the same blobs" {
	release_version v1
	release_version v2
	release_version v3
	run deploy rollback pong
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q 'published v4, rolling back to v2' <<<"$output"
	[ "$(manifest 4 | jq -r .rollback_of)" = 2 ]
	[ "$(image_blobs 4)" = "$(image_blobs 2)" ]
	[ "$(answer)" = "pong v2" ]
	run deploy rollback pong
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(manifest 5 | jq -r .rollback_of)" = 1 ]
	[ "$(image_blobs 5)" = "$(image_blobs 1)" ]
	[ "$(answer)" = "pong v1" ]
	[ "$(tags)" = "pong/v1 pong/v2 pong/v3 pong/v4 pong/v5 " ]
}

@test "deploy rollback to the live release (or what it restores) is refused and changes nothing" {
	release_version v1
	release_version v2
	before=$(main_rev)
	run --separate-stderr deploy rollback pong 2
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -qx 'deploy: rollback pong: v2 is the live release of pong; nothing to roll back' <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(tags)" = "pong/v1 pong/v2 " ]
	# v3 restores v1: asking for v1 (or v3) again is the same no-op
	run deploy rollback pong 1
	[ "$status" -eq 0 ]
	before=$(main_rev)
	run --separate-stderr deploy rollback pong v1
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qx 'deploy: rollback pong: v1 is what pong serves already (live v3 restores v1); nothing to roll back' <<<"$stderr"
	run --separate-stderr deploy rollback pong 3
	[ "$status" -eq 1 ]
	[ "$(main_rev)" = "$before" ]
	[ "$(current_release)" = 3 ]
	[ "$(answer)" = "pong v1" ]
}

@test "deploy rollback APP N restores release N with the same blob oids" {
	release_version v1
	release_version v2
	release_version v3
	run deploy rollback pong 1
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 4 ]
	[ "$(manifest 4 | jq -r .rollback_of)" = 1 ]
	[ "$(image_blobs 4)" = "$(image_blobs 1)" ]
	[ "$(dgit rev-parse 'pong/v4^{commit}')" = "$(main_rev)" ]
	[ "$(answer)" = "pong v1" ]
}

@test "deploy rollback to a nonexistent release fails and changes nothing" {
	release_version v1
	release_version v2
	before=$(main_rev)
	tags_before=$(tags)
	run --separate-stderr deploy rollback pong 7
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -Eq '^deploy: .*\b7\b' <<<"$stderr"
	grep -Eiq 'not found|no such|does not exist|no release' <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(tags)" = "$tags_before" ]
	[ "$(answer)" = "pong v2" ]
}

@test "deploy rollback with only one release has nothing to restore: fails, changes nothing" {
	release_version v1
	before=$(main_rev)
	run --separate-stderr deploy rollback pong
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -q '^deploy: ' <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(answer)" = "pong v1" ]
}

@test "deploy status --json: desired, and per host release, state, instances" {
	release_version v1
	run deploy status --json
	echo "$output" >&2
	[ "$status" -eq 0 ]
	jq -e '.apps.pong.desired == 1' <<<"$output"
	jq -e '.apps.pong.hosts.local | .release == 1 and .state == "running" and .instances == 1' <<<"$output"
	run deploy status pong --json
	[ "$status" -eq 0 ]
	jq -e '.apps | keys == ["pong"]' <<<"$output"
}

@test "deploy status reports an unreachable host" {
	release_version v1
	stop_agent TERM
	run deploy status --json
	echo "$output" >&2
	# SPEC gives status no exit code for this: the report is what counts
	jq -e '.apps.pong.desired == 1 and .apps.pong.hosts.local.state == "unreachable"' <<<"$output"
}

@test "deploy status (text) names app, host, release and state" {
	release_version v1
	run deploy status
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q pong <<<"$output"
	grep -E 'local' <<<"$output" | grep -q running
}

@test "deploy signal asks the app's hosts to sync and prints each host's answer" {
	release_version v1
	run deploy signal pong
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q local <<<"$output"
	stop_agent TERM
	run deploy signal pong
	echo "$output" >&2
	[ "$status" -eq 3 ] || [ "$status" -eq 1 ]
	grep -q local <<<"$output"
}

@test "deploy build --out DIR produces a runnable image and publishes nothing" {
	set_version v7
	commit_all "pong v7"
	push HEAD:refs/heads/feature # not the deploy branch: no release
	before=$(main_rev)
	run deploy build --source "$APPREPO" --commit feature --out "$T/out"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(main_rev)" = "$before" ]
	[ -z "$(tags)" ]
	img=$(find "$T/out" -type f -perm -u+x | head -n 1)
	[ -n "$img" ]
	port=$(free_port)
	PORT=$port "$img" 2>/dev/null 3>&- &
	pid=$!
	wait_until 60 curl -sf "http://127.0.0.1:$port/health" || { kill "$pid"; false; }
	body=$(curl -s "http://127.0.0.1:$port/")
	kill "$pid"
	wait "$pid" || true
	[ "$body" = "pong v7" ]
}

@test "deploy publish --source REPO --commit REV publishes that commit and signals the host" {
	release_version v1
	set_version v2
	commit_all "pong v2 via publish"
	push HEAD:refs/heads/next
	c2=$(git -C "$W" rev-parse HEAD)
	[ "$(current_release)" = 1 ]
	run deploy publish --source "$APPREPO" --commit next
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 2 ]
	[ "$(manifest 2 | jq -r .source.commit)" = "$c2" ]
	[ "$(manifest 2 | jq -r .source.subject)" = "pong v2 via publish" ]
	[ "$(answer)" = "pong v2" ]
	grep -q local <<<"$output"
}

@test "deploy publish --no-signal publishes without touching the hosts" {
	release_version v1
	set_version v2
	commit_all "pong v2"
	push HEAD:refs/heads/next
	run deploy publish --source "$APPREPO" --commit next --no-signal
	[ "$status" -eq 0 ]
	[ "$(current_release)" = 2 ]
	[ "$(answer)" = "pong v1" ]
	run deploy signal pong
	[ "$status" -eq 0 ]
	[ "$(answer)" = "pong v2" ]
}

@test "deploy publish with its host down: published, exit 3 (partial), no rollback" {
	release_version v1
	set_version v2
	commit_all "pong v2"
	push HEAD:refs/heads/next
	stop_agent TERM
	run --separate-stderr deploy publish --source "$APPREPO" --commit next
	echo "$output" >&2
	echo "$stderr" >&2
	[ "$status" -eq 3 ]
	[ "$(current_release)" = 2 ]
	[ "$(tags)" = "pong/v1 pong/v2 " ]
	grep -q 'local' <<<"$output$stderr"
	grep -q '^deploy: ' <<<"$stderr"
	# the host catches up when it is back
	start_agent
	wait_until 60 answer_is "pong v2"
}

@test "usage errors exit 2" {
	run deploy rollback
	[ "$status" -eq 2 ]
	run deploy no-such-command
	[ "$status" -eq 2 ]
	run deploy rollback pong notanumber
	[ "$status" -eq 2 ]
	run deploy releases --help
	[ "$status" -eq 0 ]
}
