#!/usr/bin/env bats
# The agent's descriptors (issue 15 item 4): it raises its soft open-files
# limit to the hard one, so a held burst on a summoned app is not refused
# with "Too many open files"; and instances inherit no descriptor but
# stdio. Real agent, real pong, a real client holding its connections.

load helpers

# The agent again, started the way a careless parent would: soft limit
# 1024 and a descriptor (9) open without close-on-exec.
restart_agent_limited() {
	stop_agent TERM
	ulimit -Sn 1024
	start_agent 9>"$T/inherited"
	ulimit -Sn "$(ulimit -Hn)"
}

@test "started with a soft limit of 1024, the agent serves 2000 held connections to a summoned app" {
	[ "$(ulimit -Hn)" -ge 8192 ] || skip "hard open-files limit $(ulimit -Hn) < 8192"
	deploy place "$APP" --hosts local --mode summon --listen "$LISTEN" \
		--idle-stop 60 --max-instances 1 --concurrency 10000
	restart_agent_limited
	release_version v1
	cat >"$T/hold.py" <<'PY'
import resource, selectors, socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
n = int(sys.argv[2])
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
deadline = time.monotonic() + 120
socks, errors = [], {}
def failed(why):
    errors[why] = errors.get(why, 0) + 1
# Every connection open at once (the first one summons the app) ...
for i in range(n):
    try:
        socks.append(socket.create_connection((host, int(port)), timeout=30))
    except OSError as e:
        failed(str(e))
# ... then each asks, and all stay open until every answer is in.
sel, got = selectors.DefaultSelector(), {}
for s in socks:
    try:
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    except OSError as e:
        failed(str(e))
        continue
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    got[s] = b""
ok, pending = 0, len(got)
while pending and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        s = key.fileobj
        try:
            data = s.recv(4096)
        except OSError as e:
            data = b""
            failed(str(e))
        got[s] += data
        if b"pong v1" in got[s]:
            ok += 1
        elif data:
            continue
        else:
            failed("closed without an answer")
        sel.unregister(s)
        pending -= 1
if pending:
    failed("no answer in 120 s (%d)" % pending)
print(ok, errors)
PY
	run python3 "$T/hold.py" "$LISTEN" 2000
	echo "$output" >&3
	[ "$status" -eq 0 ]
	[ "${output%% *}" -eq 2000 ]
	refute grep -q "Too many open files" "$T/agent.log"
	# the agent's soft limit is now its hard one
	read -r soft hard < <(awk '/^Max open files/ {print $4, $5}' "/proc/$AGENT_PID/limits")
	[ "$soft" = "$hard" ]
	grep -q "open files limit: raised from 1024" "$T/agent.log"
}

@test "an instance inherits no descriptor the agent's parent left open" {
	restart_agent_limited
	# the agent itself has it: the parent did leave it open
	[ "$(readlink "/proc/$AGENT_PID/fd/9")" = "$T/inherited" ]
	release_version v1
	[ "$(answer)" = "pong v1" ]
	pid=$(instance_pids)
	[ -n "$pid" ]
	ls -l "/proc/$pid/fd" >&3
	for fd in /proc/$pid/fd/*; do
		[ "$(readlink "$fd")" != "$T/inherited" ]
	done
	# nor any of the agent's own files under its state dir but the log
	for fd in /proc/$pid/fd/*; do
		case $(readlink "$fd") in
		"$T"/state/apps/*/logs/*.log | /dev/null | socket:* | pipe:*) ;;
		"$T"/*) echo "instance holds $(readlink "$fd")" >&2; false ;;
		esac
	done
}
