#!/usr/bin/env bats
# Swaps move kept-alive HTTP clients (issue 15, item 6; docs/proxy.md): pong
# is checked over HTTP, so the agent's proxy follows its requests and sends
# the next request of a kept-alive connection to the new release, while a
# request in flight finishes on the old one.

load helpers

# The client stops when $T/ka.stop exists, also when the test failed.
teardown() {
	if [ -n "${ka_pid:-}" ]; then
		touch "$T/ka.stop"
		wait_until 40 sh -c "! kill -0 $ka_pid 2>/dev/null" ||
			kill "$ka_pid" 2>/dev/null || true
		wait "$ka_pid" 2>/dev/null || true
	fi
	teardown_world
}

KA=$ROOT/tests/integration/keepalive.py

# At least N answers "pong V" in the client's log.
answered() {
	local n
	n=$(grep -c " / pong $2\$" "$T/ka.log" 2>/dev/null) || true
	[ "${n:-0}" -ge "$1" ]
}

@test "a kept-alive client across 5 swaps: no stale answer after a swap, no failed request, one connection" {
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "pong v1" ]
	# what HTTP mode cannot follow still gets through (plain TCP)
	[ "$($NS_EXEC curl -s --http1.0 --max-time 10 "http://$LISTEN/")" = "pong v1" ]

	: >"$T/swaps"
	$NS_EXEC python3 "$KA" run "$LISTEN" "$T/ka.log" "$T/ka.stop" 3>&- &
	ka_pid=$!
	wait_until 30 answered 5 v1
	for v in v2 v3 v4 v5 v6; do
		release_version "$v"
		[ "$PUSH_STATUS" -eq 0 ]
		# the swap is done: from now on every GET / must answer $v
		echo "$(date +%s.%N) $v" >>"$T/swaps"
		wait_until 30 answered 5 "$v"
	done
	touch "$T/ka.stop"
	wait "$ka_pid"
	ka_pid=

	result=$(python3 "$KA" check "$T/ka.log" "$T/swaps")
	echo "$result" >&2
	grep -v " 200 " "$T/ka.log" >&2 || true
	[[ $result =~ ^requests=([0-9]+)\ failed=0\ connections=1\ stale=0\ seen=5$ ]]
	[ "${BASH_REMATCH[1]}" -gt 0 ]
	# every old instance drained and stopped; one serves v6
	wait_until 30 instances_are 1
	[ "$(answer)" = "pong v6" ]
}
