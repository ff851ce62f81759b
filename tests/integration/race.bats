#!/usr/bin/env bats
# Racing publishers get releases 1..N with no gap and no duplicate (SPEC §3).

load helpers

@test "8 parallel deploy publish plus a push at the same time: releases 1..N, no gap, no duplicate" {
	release_version v1
	set_version v2
	commit_all "pong v2"
	push HEAD:refs/heads/next # the CLI publishers build this one
	set_version v3
	commit_all "pong v3"
	pids=()
	for i in 1 2 3 4 5 6 7 8; do
		deploy publish --source "$APPREPO" --commit next --no-signal \
			>"$T/publish.$i.out" 2>&1 3>&- &
		pids+=($!)
	done
	push 3>&- &
	pusher=$!
	failed=0
	for i in "${!pids[@]}"; do
		if ! wait "${pids[$i]}"; then
			failed=$((failed + 1))
			cat "$T/publish.$((i + 1)).out" >&2
		fi
	done
	wait "$pusher"
	[ "$failed" -eq 0 ]
	n=10
	# the tree: releases/1..10, each manifest naming its own number
	[ "$(dgit ls-tree --name-only main:apps/pong/releases/ | sort -n | tr '\n' ' ')" = "$(seq -s ' ' 1 $n) " ]
	for r in $(seq 1 $n); do
		[ "$(manifest "$r" | jq -r .release)" = "$r" ]
	done
	# the tags: pong/v1..v10, each pointing at a commit whose current is its number
	[ "$(tags)" = "$(for r in $(seq 1 $n); do printf 'pong/v%s ' "$r"; done)" ]
	for r in $(seq 1 $n); do
		[ "$(dgit show "pong/v$r:apps/pong/current")" = "$r" ]
	done
	[ "$(current_release)" = $n ]
	# history is linear: one release per commit on main
	[ "$(dgit rev-list --merges main | wc -l)" -eq 0 ]
	run deploy releases pong --json
	jq -e "[.[].release] == [range($n; 0; -1)]" <<<"$output"
	# 8 releases of commit next, 1 of v1 and 1 of the pushed v3
	next=$(git --git-dir="$APPREPO" rev-parse next)
	[ "$(jq "[.[] | select(.commit == \"$next\")] | length" <<<"$output")" -eq 8 ]
	# after a sync the host serves the current release, whatever its source
	run deploy signal pong
	[ "$status" -eq 0 ]
	want=$(dgit show "main:apps/pong/releases/$n/manifest.json" | jq -r .source.commit)
	if [ "$want" = "$next" ]; then [ "$(answer)" = "pong v2" ]; else [ "$(answer)" = "pong v3" ]; fi
}
