#!/usr/bin/env bats
# The default hook, pre-receive: a push is accepted only once its release is
# live, and a deploy that fails rejects it with the branch left where it was
# (SPEC §4 "deploy hook install"). Real pushes into a real bare repository,
# a real agent.

load helpers

# The last remote: line of the push (git pads sideband lines with spaces).
last_remote() { grep '^remote: ' <<<"$PUSH_OUT" | tail -n 1 | sed 's/ *$//'; }
app_head() { git --git-dir="$APPREPO" rev-parse --verify -q refs/heads/main || echo none; }

# rejected: the push failed the way git reports a declined pre-receive,
# its branch did not move, and the pusher's last line says why.
rejected() {
	local before=$1
	[ "$PUSH_STATUS" -ne 0 ]
	grep -q '! \[remote rejected\] HEAD -> main (pre-receive hook declined)' <<<"$PUSH_OUT"
	[ "$(app_head)" = "$before" ]
	last_remote | grep -q '^remote: -----> FAILED: .*; push rejected$'
}

@test "hook install: pre-receive by default; --post-receive switches, and back, never both" {
	[ -x "$APPREPO/hooks/pre-receive" ]
	[ ! -e "$APPREPO/hooks/post-receive" ]
	grep -q "hook pre-receive" "$APPREPO/hooks/pre-receive"
	deploy hook install "$APPREPO" --post-receive
	[ -x "$APPREPO/hooks/post-receive" ]
	[ ! -e "$APPREPO/hooks/pre-receive" ]
	deploy hook install "$APPREPO"
	[ -x "$APPREPO/hooks/pre-receive" ]
	[ ! -e "$APPREPO/hooks/post-receive" ]
	# a hook of someone else's is left alone, in either place
	printf '#!/bin/sh\nexit 0\n' >"$APPREPO/hooks/post-receive"
	run --separate-stderr deploy hook install "$APPREPO"
	[ "$status" -eq 1 ]
	grep -q "post-receive exists and is not unideploy's" <<<"$stderr"
	grep -q 'exit 0' "$APPREPO/hooks/post-receive"
}

@test "a push that deploys is accepted: branch moved, release live, stages shown" {
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(app_head)" = "$(git -C "$W" rev-parse HEAD)" ]
	[ "$(answer)" = "pong v1" ]
	[ "$(manifest 1 | jq -r .source.commit)" = "$(app_head)" ]
	grep -q '^remote: -----> local: pong v1 running' <<<"$PUSH_OUT"
	refute grep -q FAILED <<<"$PUSH_OUT"
	release_version v2
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "pong v2" ]
}

@test "the hook reads the pushed commit out of git's quarantine" {
	release_version v1
	old=$(app_head)
	set_version v2
	commit_all "pong v2"
	new=$(git -C "$W" rev-parse HEAD)
	# What receive-pack does before pre-receive: the new objects in a
	# tmp_objdir under objects/, not in the repository's own store.
	q=$APPREPO/objects/tmp_objdir-incoming-test
	mkdir -p "$q/pack"
	git -C "$W" rev-list --objects "$new" "^$old" |
		git -C "$W" pack-objects -q "$q/pack/pack" >/dev/null
	refute git --git-dir="$APPREPO" cat-file -e "$new" 2>/dev/null
	# without the quarantine the commit is not there: refused
	run --separate-stderr bash -c "cd '$APPREPO' && echo '$old $new refs/heads/main' |
		env UD_IT_MARK='$T' '$DEPLOY_BIN' hook pre-receive"
	echo "$output$stderr" >&2
	[ "$status" -ne 0 ]
	grep -q "unknown revision '$new'" <<<"$stderr"
	# as git runs it: deployed from the quarantine
	run bash -c "cd '$APPREPO' && echo '$old $new refs/heads/main' |
		env UD_IT_MARK='$T' GIT_QUARANTINE_PATH='$q' GIT_OBJECT_DIRECTORY='$q' \
		GIT_ALTERNATE_OBJECT_DIRECTORIES='$APPREPO/objects' '$DEPLOY_BIN' hook pre-receive 2>&1"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(manifest 2 | jq -r .source.commit)" = "$new" ]
	[ "$(answer)" = "pong v2" ]
	# a quarantine outside this repository is not read
	mv "$q" "$T/elsewhere"
	run --separate-stderr bash -c "cd '$APPREPO' && echo '$old $new refs/heads/main' |
		env UD_IT_MARK='$T' GIT_QUARANTINE_PATH='$T/elsewhere' '$DEPLOY_BIN' hook pre-receive"
	[ "$status" -ne 0 ]
	grep -q "unknown revision '$new'" <<<"$stderr"
	[ "$(current_release)" = 2 ]
}

@test "a failing build rejects the push: branch unmoved, nothing published, last line FAILED" {
	release_version v1
	before=$(app_head)
	rel=$(main_rev)
	write_deploy_json 'echo compiling; exit 3'
	release_version v2
	rejected "$before"
	last_remote | grep -q 'FAILED: build failed; nothing was published: .*status 3'
	[ "$(main_rev)" = "$rel" ]
	[ "$(answer)" = "pong v1" ]
	# fixed, the next push carries both commits and is accepted
	write_deploy_json
	release_version v3
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "pong v3" ]
	[ "$(current_release)" = 2 ]
}

@test "a refused deploy.json rejects the push" {
	release_version v1
	before=$(app_head)
	rel=$(main_rev)
	echo '{"app": "pong", "build": ' >"$W/deploy.json"
	commit_all "broken deploy.json"
	push
	rejected "$before"
	last_remote | grep -q 'FAILED: nothing was built: .*deploy.json'
	[ "$(main_rev)" = "$rel" ]
}

@test "a failed health check rejects the push; the old release keeps serving" {
	release_version v1
	before=$(app_head)
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)"
	release_version v2
	rejected "$before"
	last_remote | grep -Eq 'FAILED: publish pong: pong v2 is not live everywhere: local: pong v2 failed: health check'
	[ "$(answer)" = "pong v1" ]
	# on_failure rollback (the default) put v1's images back as v3
	[ "$(current_release)" = 3 ]
	[ "$(manifest 3 | jq -r .rollback_of)" = 1 ]
}

@test "an unreachable host rejects the push" {
	release_version v1
	before=$(app_head)
	stop_agent TERM
	set_version v2
	commit_all "pong v2"
	push
	rejected "$before"
	last_remote | grep -q 'FAILED: publish pong: pong v2 is not live everywhere: local: unreachable'
}

@test "--post-receive: a failed deploy still moves the branch, and its last line is FAILED" {
	deploy hook install "$APPREPO" --post-receive
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	write_deploy_json 'exit 3'
	release_version v2
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(app_head)" = "$(git -C "$W" rev-parse HEAD)" ]
	last_remote | grep -q '^remote: -----> FAILED: build failed; nothing was published: '
	refute grep -q 'push rejected' <<<"$(last_remote)"
	[ "$(current_release)" = 1 ]
}

@test "two pushes racing: one deploys at a time, the branch and the live release agree, the repository is sound" {
	# a build slow enough that the pushes overlap
	write_deploy_json "sleep 2 && $(pong_build_cmd)"
	release_version v1
	git clone -q "$APPREPO" "$T/other"
	for side in "$W" "$T/other"; do
		git -C "$side" checkout -q main 2>/dev/null || git -C "$side" checkout -q -b main origin/main
		git -C "$side" pull -q origin main 2>/dev/null || true
	done
	set_version v2
	commit_all "pong v2 from W"
	echo "v3" >"$T/other/VERSION"
	git -C "$T/other" commit -qam "pong v3 from other"
	(cd "$W" && env -u DEPLOY_REPO UD_IT_MARK="$T" git push origin HEAD:main) >"$T/a.out" 2>&1 3>&- &
	a=$!
	(cd "$T/other" && env -u DEPLOY_REPO UD_IT_MARK="$T" git push origin HEAD:main) >"$T/b.out" 2>&1 3>&- &
	b=$!
	sa=0 sb=0
	wait "$a" || sa=$?
	wait "$b" || sb=$?
	cat "$T/a.out" "$T/b.out" >&2
	# exactly one accepted: the other was refused by the lock, or found
	# its branch moved (never deployed over the first)
	[ $((sa == 0)) -ne $((sb == 0)) ]
	if [ "$sa" -eq 0 ]; then won=$W lost=$T/b.out; else won=$T/other lost=$T/a.out; fi
	# declined by our hook (lock, or branch moved), or, had it come after
	# the first push had landed, refused by git itself (serialized)
	if grep -q 'pre-receive hook declined' "$lost"; then
		grep '^remote: ' "$lost" | tail -n 1 | grep -q -- '-----> FAILED: '
	else
		grep -q '\[rejected\].*(fetch first)' "$lost"
	fi
	# the branch holds the winner, and so does the live release
	[ "$(app_head)" = "$(git -C "$won" rev-parse HEAD)" ]
	[ "$(manifest "$(current_release)" | jq -r .source.commit)" = "$(app_head)" ]
	# releases 1..n without gaps, and both repositories are sound
	n=$(current_release)
	[ "$(dgit ls-tree --name-only main:apps/pong/releases/ | sort -n | tr '\n' ' ')" = "$(seq -s ' ' 1 "$n") " ]
	dgit fsck --no-progress
	git --git-dir="$APPREPO" fsck --no-progress
	# the loser, pulled and pushed again, is accepted
	if [ "$won" = "$W" ]; then side=$T/other; else side=$W; fi
	git -C "$side" pull -q --no-rebase --no-edit -X theirs origin main
	(cd "$side" && env -u DEPLOY_REPO UD_IT_MARK="$T" git push origin HEAD:main) >&2
	[ "$(app_head)" = "$(git -C "$side" rev-parse HEAD)" ]
	[ "$(manifest "$(current_release)" | jq -r .source.commit)" = "$(app_head)" ]
}

@test "an accepted push keeps the lock until git has moved its branch" {
	release_version v1
	old=$(app_head)
	set_version v2
	commit_all "pong v2"
	new=$(git -C "$W" rev-parse HEAD)
	push HEAD:refs/heads/staging # the objects, not main
	# Git moves the ref after the hook exits; here the hook's parent (in
	# git's place) stays until we move the ref by hand.
	bash -c "cd '$APPREPO' && echo '$old $new refs/heads/main' |
		env UD_IT_MARK='$T' '$DEPLOY_BIN' hook pre-receive >'$T/hook.out' 2>&1;
		echo \$? >'$T/hook.status'; exec sleep 120" 3>&- &
	parent=$!
	wait_until 300 test -s "$T/hook.status"
	cat "$T/hook.out" >&2
	[ "$(cat "$T/hook.status")" = 0 ]
	[ "$(answer)" = "pong v2" ]
	# not landed yet: a second push is refused, and deploys nothing
	rel=$(main_rev)
	run --separate-stderr bash -c "cd '$APPREPO' && echo '$old $new refs/heads/main' |
		env UD_IT_MARK='$T' '$DEPLOY_BIN' hook pre-receive"
	echo "$stderr" >&2
	[ "$status" -ne 0 ]
	grep -q 'another deploy of this repository is in progress; this push was rejected' <<<"$stderr"
	[ "$(tail -n 1 <<<"$stderr")" = "-----> FAILED: another deploy of this repository is in progress; this push was rejected and nothing moved (push again when it is done); push rejected" ]
	[ "$(main_rev)" = "$rel" ]
	# landed: the lock is free, and a push still based on the old
	# branch is refused before it builds
	git --git-dir="$APPREPO" update-ref refs/heads/main "$new" "$old"
	lock_free() { flock -n "$APPREPO/unideploy.lock" true; }
	wait_until 30 lock_free
	run --separate-stderr bash -c "cd '$APPREPO' && echo '$old $new refs/heads/main' |
		env UD_IT_MARK='$T' '$DEPLOY_BIN' hook pre-receive"
	echo "$stderr" >&2
	[ "$status" -ne 0 ]
	grep -q "refs/heads/main moved to ${new:0:7} while this push was on its way" <<<"$stderr"
	[ "$(main_rev)" = "$rel" ]
	kill "$parent"
	wait "$parent" || true
}
