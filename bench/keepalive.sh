#!/usr/bin/env bash
# bench/keepalive.sh: do swaps move kept-alive clients (issue 15, item 6)?
# One HTTP client keeps one connection to the agent's listen address open
# (tests/integration/keepalive.py: GET / back to back, every 10th request
# a 200 ms GET /slow) while the pong sample is pushed SWAPS times, each push
# right after the last returned. For pong checked over HTTP the agent's
# proxy runs in HTTP mode; the baseline is the same run with pong checked
# over TCP ("health": {"tcp": true}), which keeps the proxy in plain TCP
# mode, as every app was before. Knobs: SWAPS (100).
# Run from the repository root after `make`. Prints one Markdown section.
set -euo pipefail

SWAPS=${SWAPS:-100}
top=$(pwd)
deploy=$top/bin/deploy
agent=$top/bin/deploy-agent
client=$top/tests/integration/keepalive.py
T=$(mktemp -d /tmp/bench-keepalive.XXXXXX)
agent_pid=
client_pid=

stop_agent() {
	[ -n "$agent_pid" ] || return 0
	kill -TERM "$agent_pid" 2>/dev/null || true
	wait "$agent_pid" 2>/dev/null || true
	agent_pid=
}
cleanup() {
	[ -z "$client_pid" ] || { touch "$T/stop"; wait "$client_pid" 2>/dev/null || true; }
	stop_agent
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

# shellcheck source=bench/pong_world.sh
. "$top/bench/pong_world.sh"

log() { echo "keepalive: $*" >&2; }

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export HOME=$T/home DEPLOY_CACHE_ROOT=$T/cache
mkdir -p "$HOME"

# run MODE HEALTH_JSON: a fresh world, SWAPS pushes under the client; prints
# keepalive.py check's line followed by " seconds=S".
run() {
	local mode=$1 health=$2 d=$T/$1 port i t0 t1
	pong_world "$d"
	git clone -q "$d/pong.git" "$d/work" 2>/dev/null
	cp "$top/templates/pong/pong.c" "$d/work/"
	jq --argjson h "$health" '.health = $h' "$top/templates/pong/deploy.json" \
		>"$d/work/deploy.json"
	push() {
		echo "$1" >"$d/work/VERSION"
		git -C "$d/work" add -A
		git -C "$d/work" commit -qm "$1"
		(cd "$d/work" && env -u DEPLOY_REPO git push -q origin HEAD:main) \
			>"$d/push.log" 2>&1 || { cat "$d/push.log" >&2; return 1; }
	}
	push v0
	[ "$(curl -s --max-time 10 "http://127.0.0.1:$port/")" = "pong v0" ] ||
		{ tail -n 20 "$d/agent.log" >&2; log "$mode: v0 does not answer"; return 1; }
	rm -f "$T/stop"
	: >"$d/swaps"
	python3 "$client" run "127.0.0.1:$port" "$d/client.log" "$T/stop" &
	client_pid=$!
	t0=$EPOCHREALTIME
	for i in $(seq "$SWAPS"); do
		push "v$i"
		echo "$(date +%s.%N) v$i" >>"$d/swaps"
		[ $((i % 10)) -ne 0 ] || log "$mode: $i swaps"
	done
	t1=$EPOCHREALTIME
	touch "$T/stop"
	wait "$client_pid"
	client_pid=
	stop_agent
	echo "$(python3 "$client" check "$d/client.log" "$d/swaps" 2>/dev/null)" \
		"seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
}

field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }

log "HTTP mode: $SWAPS swaps"
http=$(run http '{"http": "/health", "timeout_s": 10}')
log "$http"
log "baseline, plain TCP mode: $SWAPS swaps"
tcp=$(run tcp '{"tcp": true, "timeout_s": 10}')
log "$tcp"

row() { # label key
	echo "| $1 | $(field "$2" "$http") | $(field "$2" "$tcp") |"
}
cat <<EOF2
## Swaps under a kept-alive client ($SWAPS swaps, bench/keepalive.sh)

| figure | HTTP mode (pong checked over \`http\`) | baseline: plain TCP mode (pong checked over \`tcp\`) |
|---|---|---|
$(row "requests on the client's connection(s)" requests)
$(row "failed requests" failed)
$(row "stale answers (GET / begun after a swap finished, answered by an older release)" stale)
$(row "connections the client had to open" connections)
$(row "releases of the $SWAPS that answered the client at all" seen)
$(row "seconds for the $SWAPS pushes" seconds)

One python3 \`http.client\` connection (tests/integration/keepalive.py)
sends GET / back to back, every 10th request a GET /slow?ms=200 so that
requests are in flight when the proxy switches; pong is pushed $SWAPS
times, each push right after the last returned (the push returns once the
agent has switched its listen address to the new instance). A request
that errs or breaks its connection counts as failed, and the client
reconnects. In plain TCP mode a kept-alive connection stays on the
instance it was opened to until that instance's drain deadline (30 s)
closes it; in HTTP mode the proxy sends each next request to the current
release and lets go of the old instance between answers.
EOF2
