#!/usr/bin/env bats
# The image is checked before every start (issue 15 item 3), not only when a
# sync unpacks it: an image rewritten in state_dir/images afterwards is
# refused by the next crash restart or summon, reported, and unpacked again
# from the deployment repository so the start after works. Real agent, real
# pong processes.

load helpers

# A program as long as the image that leaves $T/tampered-ran and never
# serves: the check must catch it by its digest, not its size.
evil_like() {
	printf '#!/bin/sh\ntouch %s/tampered-ran\nexec sleep 600\n' "$T" >"$2"
	truncate -s "$(stat -c %s "$1")" "$2"
	chmod 755 "$2"
}

image_file() { echo "$T/state/images/$(manifest 1 | jq -r '.images[0].sha256')"; }
image_ok() { [ "$(sha256sum "$(image_file)" | cut -d' ' -f1)" = "$(manifest 1 | jq -r '.images[0].sha256')" ]; }
log_has() { grep -q "$1" "$T/agent.log"; }
app_error() { agent_cli status --json | jq -r ".apps.$APP.error"; }
error_has() { [[ "$(app_error)" == *"$1"* ]]; }

@test "a crashed instance is not restarted from an image rewritten since the sync; the image comes back" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	old=$(instance_pids)
	img=$(image_file)
	# Rewritten while the instance runs (renamed over it: the running
	# file is busy), its time stamp set back.
	evil_like "$img" "$T/evil"
	touch -r "$img" "$T/evil"
	mv "$T/evil" "$img"
	kill -KILL "$old"
	wait_until 60 log_has "changed after it was checked"
	# (the refusal's line follows the unpack: wait for it too)
	wait_until 60 log_has "restarting instance .*image .* no longer matches its sha256: not started (unpacked again"
	# the next try boots the right bytes
	wait_until 60 answer_is "pong v1"
	[ ! -e "$T/tampered-ran" ]
	image_ok
	for pid in $(instance_pids); do
		[ "$pid" != "$old" ]
		[ "$(sha256sum "/proc/$pid/exe" | cut -d' ' -f1)" = "$(manifest 1 | jq -r '.images[0].sha256')" ]
	done
	# back, the error it reported meanwhile is gone
	[ "$(app_error)" = null ]
}

@test "a summoned app is not booted from an image rewritten in place; the next request boots it right" {
	deploy place "$APP" --hosts local --mode summon --listen "$LISTEN" --idle-stop 1
	agent_cli sync >/dev/null || true
	release_version v1
	[ "$(answer)" = "pong v1" ]
	wait_until 60 instances_are 0
	img=$(image_file)
	# Same inode, same size, same mtime: only its ctime and bytes differ.
	evil_like "$img" "$T/evil"
	touch -r "$img" "$T/stamp"
	cat "$T/evil" >"$img"
	touch -r "$T/stamp" "$img"
	run curl -sS --max-time 30 "http://$LISTEN/"
	[ "$status" -ne 0 ]
	[ "$status" -ne 28 ] # closed, not held until a timeout
	wait_until 60 error_has "no longer matches its sha256: not started"
	log_has "changed after it was checked"
	[ ! -e "$T/tampered-ran" ]
	image_ok
	[ "$(answer)" = "pong v1" ]
	[ ! -e "$T/tampered-ran" ]
	[ "$(app_error)" = null ]
}

@test "an unchanged image costs a stat per start; a changed one is read again" {
	deploy place "$APP" --hosts local --mode summon --listen "$LISTEN" --idle-stop 1
	agent_cli sync >/dev/null || true
	release_version v1
	[ "$(answer)" = "pong v1" ]
	wait_until 60 instances_are 0
	# checked when unpacked: the next boot does not read it again
	[ "$(answer)" = "pong v1" ]
	refute log_has "sha256 read again"
	wait_until 60 instances_are 0
	# chmod changes its ctime only: read again, right, started
	chmod 755 "$(image_file)"
	[ "$(answer)" = "pong v1" ]
	[ "$(grep -c "sha256 read again (its file changed" "$T/agent.log")" -eq 1 ]
	refute log_has "changed after it was checked"
	[ "$(app_error)" = null ]
}
