#!/usr/bin/env bats
# Summoning (SPEC §5 summon mode, issue 4): an app placed with --mode summon
# runs no instance at rest, boots on its first connection (held, never
# refused), scales out under load up to max_instances, stops when idle,
# obeys the host's limits, and can be woken by a DNS query. Real agent,
# real pong processes, real clients (curl, dig, python sockets).

load helpers

# summon_setup PLACE_ARGS [AGENT_JQ]: place pong in summon mode with the
# given options, restart the agent with agent.json edited by AGENT_JQ.
summon_setup() {
	deploy place "$APP" --hosts local --mode summon --listen "$LISTEN" $1
	stop_agent TERM
	jq "${2:-.}" "$T/agent.json" >"$T/agent.json.new"
	mv "$T/agent.json.new" "$T/agent.json"
	start_agent
}

status_json() { agent_cli status --json; }
app_field() { status_json | jq -r ".apps.$APP.$1"; }
# For wait_until (its arguments are expanded once, before it polls):
field_is() { [ "$(app_field "$1")" = "$2" ]; }

# Count instance processes every 20 ms until $T/watch.stop; the highest
# count seen goes to $T/watch.max.
start_watch() {
	rm -f "$T/watch.stop"
	(
		max=0
		while [ ! -e "$T/watch.stop" ]; do
			n=$(instance_count)
			[ "$n" -le "$max" ] || max=$n
			echo "$max" >"$T/watch.max"
			it_sleep 0.02
		done
	) 3>&- &
	WATCH_PID=$!
}
stop_watch() { touch "$T/watch.stop"; wait "$WATCH_PID" || true; WATCH_MAX=$(cat "$T/watch.max"); }

@test "zero instances at rest; the first request is held and answered; idle stop to zero" {
	summon_setup "--idle-stop 2 --max-instances 2 --concurrency 10"
	release_version v1
	[ "$(instance_count)" -eq 0 ]
	[ "$(app_field state)" = summonable ]
	[ "$(app_field instances)" -eq 0 ]
	# the first connection boots an instance; it is answered, not refused
	t=$(curl -sS --max-time 20 -o "$T/body" -w '%{time_total}' "http://$LISTEN/")
	[ "$(cat "$T/body")" = "pong v1" ]
	echo "first request answered in ${t}s (boot included)" >&3
	# one wake, one boot (counted, not sampled from /proc: on a busy
	# machine the idle stop may already have come)
	[ "$(app_field wakes)" -eq 1 ]
	[ "$(app_field boots)" -eq 1 ]
	[ "$(app_field cold_start_ms.samples)" -eq 1 ]
	echo "cold start as the agent saw it: $(app_field cold_start_ms.p50) ms" >&3
	# a warm request (the instance may already have gone idle on a slow
	# machine, so no claim on which one answers)
	[ "$(answer)" = "pong v1" ]
	# idle for 2 s: stopped, back to zero
	wait_until 60 instances_are 0
	wait_until 60 field_is instances 0
	# and the next request wakes it again (the warm request above may
	# have woken it once more on a slow machine: count from here)
	wakes=$(app_field wakes)
	[ "$(answer)" = "pong v1" ]
	wakes=$((wakes + 1))
	[ "$(app_field wakes)" -eq "$wakes" ]
	run agent_cli status
	[ "$status" -eq 0 ]
	[[ "$output" == *"$wakes wakes"* ]]
	[[ "$output" == *"cold start p50"* ]]
	# deploy status: SPEC's keys as they were, the figures beside them
	run deploy status --json
	[ "$status" -eq 0 ]
	[ "$(jq -r .apps.pong.hosts.local.state <<<"$output")" = summonable ]
	[ "$(jq -r .apps.pong.hosts.local.wakes <<<"$output")" -eq "$wakes" ]
	[ "$(jq -r .apps.pong.hosts.local.cold_start_ms.samples <<<"$output")" -eq "$wakes" ]
	jq -e '.apps.pong.hosts.local.connections >= 0' <<<"$output"
	run deploy status
	[ "$status" -eq 0 ]
	grep -Eq '^APP +HOST +DESIRED +RUNNING +STATE +INSTANCES +CONNS +WAKES +COLD' <<<"$output"
	grep -Eq '^pong +local +v1 +v1 +summonable +[01] +[0-9]+ +'"$wakes"' +[0-9.]+/[0-9.]+ ms' <<<"$output"
}

@test "a burst of slow concurrent requests scales out and never past max_instances" {
	# idle stop 5 s: on a busy machine the eight clients may start over
	# seconds, and an instance stopped between them would boot again
	summon_setup "--idle-stop 5 --max-instances 3 --concurrency 1"
	# each instance takes 300 ms to boot: repeated demand must not over-boot
	write_deploy_json "$(pong_build_cmd -DSTARTUP_DELAY_MS=300)"
	release_version v1
	[ "$(instance_count)" -eq 0 ]
	start_watch
	# one process opens all eight connections at once: eight curl
	# processes would start seconds apart on a loaded machine, one after
	# the other finished, and nothing would need to scale out
	python3 - "${LISTEN%:*}" "${LISTEN##*:}" "$T/burst" <<'EOF' 3>&-
import socket, sys, threading
host, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
socks = [socket.create_connection((host, port), timeout=60) for _ in range(8)]
def ask(i, s):
    code = "000"
    try:
        s.sendall(b"GET /slow?ms=1500 HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        code = data.split(b" ", 2)[1].decode()
    except Exception as e:
        sys.stderr.write("client %d: %s\n" % (i, e))
    with open("%s.%d.code" % (out, i + 1), "w") as f:
        f.write(code)
ts = [threading.Thread(target=ask, args=(i, s)) for i, s in enumerate(socks)]
for t in ts: t.start()
for t in ts: t.join()
EOF
	stop_watch
	for i in $(seq 8); do [ "$(cat "$T/burst.$i.code")" = 200 ]; done
	echo "at most $WATCH_MAX instances ran" >&3
	[ "$WATCH_MAX" -ge 2 ]
	[ "$WATCH_MAX" -le 3 ]
	[ "$(app_field boots)" -le 3 ]
	[ "$(app_field instances)" -le 3 ]
	# the surplus stops when idle, then the last one too
	wait_until 60 instances_are 0
}

@test "host cap on instances: scale-out is refused, the running instance keeps serving" {
	summon_setup "--idle-stop 30 --max-instances 3 --concurrency 1" '.limits = {max_instances: 1}'
	release_version v1
	[ "$(answer)" = "pong v1" ]
	[ "$(instance_count)" -eq 1 ]
	# one slow request fills the instance; more would scale out, but the cap
	curl -s --max-time 60 "http://$LISTEN/slow?ms=15000" >"$T/slow" 3>&- &
	slow=$!
	# the slow request holds the instance (however slowly curl started)
	wait_until 60 connections_at_least 1
	[ "$(answer)" = "pong v1" ]
	[ "$(answer)" = "pong v1" ]
	wait "$slow"
	[ "$(instance_count)" -eq 1 ]
	[ "$(app_field refused)" -ge 1 ]
	grep -q "limits.max_instances" "$T/agent.log"
}

@test "host cap on memory: a boot past it closes the held connection instead of hanging" {
	summon_setup "--idle-stop 30" '.limits = {max_memory_mb: 32}'
	release_version v1
	run curl -sS --max-time 20 "http://$LISTEN/"
	[ "$status" -ne 0 ]
	[ "$status" -ne 28 ] # closed, not timed out
	[ "$(instance_count)" -eq 0 ]
	grep -q "limits.max_memory_mb" "$T/agent.log"
	[ "$(app_field refused)" -ge 1 ]
}

@test "a DNS query for <app>.<zone> boots the app; unknown names get NXDOMAIN" {
	dport=$(free_port)
	summon_setup "--idle-stop 30" ".dns = {listen: \"127.0.0.1:$dport\", zone: \"apps.example.\"}"
	release_version v1
	[ "$(instance_count)" -eq 0 ]
	run dig +time=2 +tries=1 @127.0.0.1 -p "$dport" pong.apps.example. A
	[ "$status" -eq 0 ]
	[[ "$output" == *"status: NOERROR"* ]]
	[[ "$output" == *"flags: qr aa"* ]]
	grep -Eq '^pong\.apps\.example\.[[:space:]]+0[[:space:]]+IN[[:space:]]+A[[:space:]]+127\.0\.0\.1' <<<"$output"
	# no HTTP request yet: the query alone booted it
	wait_until 60 instances_are 1
	[ "$(answer)" = "pong v1" ]
	run dig +time=2 +tries=1 @127.0.0.1 -p "$dport" NoPe.apps.example. A
	[[ "$output" == *"status: NXDOMAIN"* ]]
	[[ "$output" == *"NoPe.apps.example."* ]]
	run dig +time=2 +tries=1 @127.0.0.1 -p "$dport" pong.apps.example. AAAA
	[[ "$output" == *"status: NOERROR"* ]]
	[[ "$output" == *"ANSWER: 0"* ]]
	[ "$(instance_count)" -eq 1 ]
}

@test "an instance crashing mid-connection closes it; the next request boots a fresh one" {
	summon_setup "--idle-stop 30"
	release_version v1
	[ "$(answer)" = "pong v1" ]
	old=$(instance_pids)
	# a request in flight when the instance dies: closed, not hung
	curl -s --max-time 60 "http://$LISTEN/slow?ms=30000" >/dev/null 3>&- &
	client=$!
	# in flight: the proxy holds it open to the instance
	wait_until 60 connections_at_least 1
	kill -KILL "$old"
	rc=0
	wait "$client" || rc=$?
	[ "$rc" -ne 0 ]
	[ "$rc" -ne 28 ] # closed, not timed out
	wait_until 60 gone "$old"
	wait_until 60 instances_are 0
	[ "$(answer)" = "pong v1" ]
	new=$(instance_pids)
	[ -n "$new" ]
	[ "$new" != "$old" ]
	# GET /crash: the app exits by itself; the next request is answered
	curl -s --max-time 5 "http://$LISTEN/crash" || true
	wait_until 60 gone "$new"
	[ "$(answer)" = "pong v1" ]
}

@test "a client that sends half a request and stalls does not block others; half-close works" {
	summon_setup "--idle-stop 30 --concurrency 100"
	release_version v1
	[ "$(answer)" = "pong v1" ]
	port=${LISTEN##*:}
	# a stalled client: half a request line, then nothing for a minute (killed below)
	python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET / HT")
time.sleep(60)
' "$port" 3>&- &
	staller=$!
	# the staller is connected before the others ask
	wait_until 60 connections_at_least 1
	for i in 1 2 3 4 5; do [ "$(answer)" = "pong v1" ]; done
	# half-close: the request, then SHUT_WR; the answer still comes back
	run python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(5)
s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
s.shutdown(socket.SHUT_WR)
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write(data.decode().split("\r\n\r\n", 1)[1])
' "$port"
	[ "$status" -eq 0 ]
	[ "$output" = "pong v1" ]
	kill "$staller" 2>/dev/null || true
	wait "$staller" 2>/dev/null || true
}

@test "a new release of a summoned app serves from its next boot; the old instance stops" {
	summon_setup "--idle-stop 30"
	release_version v1
	[ "$(answer)" = "pong v1" ]
	old=$(instance_pids)
	release_version v2
	wait_until 60 answer_is "pong v2"
	wait_until 60 gone "$old"
	[ "$(instance_count)" -le 1 ]
}
