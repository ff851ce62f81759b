#!/usr/bin/env bash
# bench/summon.sh: what summoning costs (issue 4), each figure beside its
# baseline measured in the same run:
#   1. cold first response: connect-to-first-byte through the agent with the
#      app at zero instances, minus the same binary's own start-to-first-
#      answer measured directly (median over REPS);
#   2. warm throughput and latency with wrk through the agent's proxy, a
#      direct connection, and systemd-socket-proxyd, all to one instance;
#      the proxies' CPU time per request; latency at one connection;
#   3. idle footprint of an agent with APPS summonable apps and no traffic
#      (RSS, descriptors, wake-ups per second over 10 s) beside an agent
#      with none.
# Knobs: REPS (10), APPS (1000), WRK_SECONDS (3), WRK_CONNS (16), ROUNDS (3).
# Run from the repository root after `make`. Prints one Markdown section.
set -euo pipefail

REPS=${REPS:-10}
APPS=${APPS:-1000}
WRK_SECONDS=${WRK_SECONDS:-3}
WRK_CONNS=${WRK_CONNS:-16}
ROUNDS=${ROUNDS:-3}
top=$(pwd)
deploy=$top/bin/deploy
agent=$top/bin/deploy-agent
T=$(mktemp -d /tmp/bench-summon.XXXXXX)
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

log() { echo "summon: $*" >&2; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export DEPLOY_CACHE_ROOT=$T/cache HOME=$T/home
mkdir -p "$HOME"

# --- a deployment repository with pong released, summoned ---
export DEPLOY_REPO=$T/deploy.git
port=$(free_port)
"$deploy" init "$DEPLOY_REPO" >/dev/null
"$deploy" host add local --agent "unix:$T/agent.sock" >/dev/null
"$deploy" place pong --hosts local --mode summon --listen "127.0.0.1:$port" \
	--idle-stop 1 --max-instances 1 --concurrency 1000 >/dev/null
git init -q -b main "$T/work"
cp templates/pong/pong.c templates/pong/deploy.json "$T/work/"
echo v1 >"$T/work/VERSION"
git -C "$T/work" add -A
git -C "$T/work" commit -qm pong
"$deploy" publish --source "$T/work" --no-signal >/dev/null 2>&1
cc -O2 -DVERSION='"v1"' -o "$T/pong" templates/pong/pong.c -lpthread

start_agent() { # CONFIG: starts it, sets AGENT_PID
	"$agent" --config "$1" run 2>>"$T/agent.log" &
	AGENT_PID=$!
	pids+=("$AGENT_PID")
	for _ in $(seq 300); do
		"$agent" --config "$1" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "agent did not start" >&2
	cat "$T/agent.log" >&2
	exit 1
}
stop_agent() {
	kill -TERM "$1"
	wait "$1" 2>/dev/null || true
}
conf() { # NAME STATE_DIR REPO
	jq -n --arg repo "$3" --arg state "$2" --arg ctl "unix:$T/$1.sock" \
		'{host: "local", repo: $repo, state_dir: $state, control: $ctl, poll_s: 3600}' >"$T/$1.json"
}
instances() { "$agent" --config "$T/agent.json" status --json | jq ".apps.pong.instances"; }

conf agent "$T/state" "$DEPLOY_REPO"
start_agent "$T/agent.json"
# The proxy runs in the agent proper: as root, the privileged parent's
# child (priv.c); the parent's own CPU is not the proxy's.
A1=$(pgrep -P "$AGENT_PID" -x deploy-agent || echo "$AGENT_PID")

# --- 1. cold first response ---
cat >"$T/probe.py" <<'PY'
import os, socket, subprocess, sys, time
mode, port = sys.argv[1], int(sys.argv[2])
req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
def first_byte(port, retry):
    while True:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(req)
            b = s.recv(1)
            if b:
                return
        except OSError:
            if not retry:
                raise
        finally:
            s.close()
if mode == "direct":
    env = {"PORT": str(port), "PATH": "/usr/bin:/bin"}
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.argv[3]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first_byte(port, True)
    t1 = time.perf_counter()
    p.kill(); p.wait()
else:
    t0 = time.perf_counter()
    first_byte(port, False)
    t1 = time.perf_counter()
print("%.3f" % ((t1 - t0) * 1000))
PY
log "cold first response, $REPS reps"
: >"$T/direct.ms"
: >"$T/summon.ms"
for _ in $(seq "$REPS"); do
	python3 "$T/probe.py" direct "$(free_port)" "$T/pong" >>"$T/direct.ms"
	for _ in $(seq 100); do [ "$(instances)" = 0 ] && break; sleep 0.1; done
	python3 "$T/probe.py" summon "$port" >>"$T/summon.ms"
done
direct_ms=$(median <"$T/direct.ms")
summon_ms=$(median <"$T/summon.ms")
overhead_ms=$(awk -v a="$summon_ms" -v b="$direct_ms" 'BEGIN {printf "%.2f", a - b}')
agent_p50=$("$agent" --config "$T/agent.json" status --json | jq -r '.apps.pong.cold_start_ms.p50')

# --- 2. warm: one instance kept up ---
log "warm throughput, $ROUNDS rounds of ${WRK_SECONDS}s per path"
"$deploy" place pong --hosts local --mode summon --listen "127.0.0.1:$port" \
	--idle-stop 3600 --max-instances 1 --concurrency 1000 >/dev/null
"$agent" --config "$T/agent.json" sync >/dev/null
curl -fsS "http://127.0.0.1:$port/" >/dev/null
ipid=
for p in /proc/[0-9]*; do
	case $(readlink "$p/exe" 2>/dev/null) in "$T/state/"*) ipid=${p#/proc/} ;; esac
done
iport=$(tr '\0' '\n' <"/proc/$ipid/environ" | sed -n 's/^PORT=//p')
sport=$(free_port)
systemd-socket-activate -l "127.0.0.1:$sport" /lib/systemd/systemd-socket-proxyd "127.0.0.1:$iport" 2>/dev/null &
ppid=$!
pids+=("$ppid")
sleep 0.3
hz=$(getconf CLK_TCK)
wrk_run() { # PID PORT CONNS [wrk options] -> "rps p50_ms p99_ms cpu_us_per_request"
	local pid=$1 port=$2 conns=$3 t0 t1
	shift 3
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	wrk -t1 -c"$conns" -d"${WRK_SECONDS}s" --latency "$@" "http://127.0.0.1:$port/" >"$T/wrk.out"
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	awk -v ticks=$((t1 - t0)) -v hz="$hz" \
	    'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
	     /^ +50%/ {p50 = ms($2)} /^ +99%/ {p99 = ms($2)} /^Requests\/sec/ {rps = $2} / requests in / {n = $1}
	     END {printf "%s %.3f %.3f %.2f\n", rps, p50, p99, (n > 0 ? ticks * 1e6 / hz / n : 0)}' "$T/wrk.out"
}
# Each path's CPU figure is that of the process in the middle: pong's own
# for direct, the whole agent (its proxy thread does the work) and
# systemd-socket-proxyd (exec'd in place of socket-activate).
path_args() { # PATH -> "PID PORT"
	case $1 in direct) echo "$ipid $iport" ;; agent) echo "$A1 $port" ;; proxyd) echo "$ppid $sport" ;; esac
}
for path in direct agent proxyd; do
	for k in close ka close.c1 ka.c1; do : >"$T/wrk.$path.$k"; done
done
for _ in $(seq "$ROUNDS"); do
	for path in direct agent proxyd; do
		# shellcheck disable=SC2046
		wrk_run $(path_args $path) "$WRK_CONNS" -H "Connection: close" >>"$T/wrk.$path.close"
	done
	for path in direct agent proxyd; do
		# shellcheck disable=SC2046
		wrk_run $(path_args $path) "$WRK_CONNS" >>"$T/wrk.$path.ka"
	done
	for path in direct agent proxyd; do
		# shellcheck disable=SC2046
		wrk_run $(path_args $path) 1 -H "Connection: close" >>"$T/wrk.$path.close.c1"
		# shellcheck disable=SC2046
		wrk_run $(path_args $path) 1 >>"$T/wrk.$path.ka.c1"
	done
done
col() { awk -v c="$2" '{print $c}' "$T/wrk.$1" | median; }
for path in direct agent proxyd; do
	eval "rps_$path=\$(col $path.close 1) p50_$path=\$(col $path.close 2) p99_$path=\$(col $path.close 3) cpu_$path=\$(col $path.close 4)"
	eval "karps_$path=\$(col $path.ka 1) kap50_$path=\$(col $path.ka 2) kacpu_$path=\$(col $path.ka 4)"
	eval "c1p50_$path=\$(col $path.close.c1 2) c1p99_$path=\$(col $path.close.c1 3)"
	eval "kc1p50_$path=\$(col $path.ka.c1 2) kc1p99_$path=\$(col $path.ka.c1 3) kc1rps_$path=\$(col $path.ka.c1 1)"
done
stop_agent "$A1"

# --- 3. idle footprint ---
log "idle footprint: $APPS summonable apps"
git clone -q "$DEPLOY_REPO" "$T/many"
(
	cd "$T/many"
	base=$(jq -r '.apps.pong.listen' fleet.json | sed 's/.*://')
	python3 - "$APPS" <<'PY'
import json, os, shutil, sys
n = int(sys.argv[1])
fleet = json.load(open("fleet.json"))
src = "apps/pong"
rel = sorted(os.listdir(src + "/releases"), key=int)[-1]
# Ports from 30000 up, skipping any in use.
import socket
port = 30000
for i in range(n):
    name = "a%04d" % i
    while True:
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port)); s.close(); break
        except OSError:
            port += 1
    d = "apps/%s/releases/%s" % (name, rel)
    shutil.copytree(src + "/releases/" + rel, d)
    m = json.load(open(d + "/manifest.json"))
    m["app"] = name
    json.dump(m, open(d + "/manifest.json", "w"), indent=2)
    open("apps/%s/current" % name, "w").write(rel + "\n")
    p = dict(fleet["apps"]["pong"])
    p["listen"] = "127.0.0.1:%d" % port
    p["idle_stop_s"] = 300
    fleet["apps"][name] = p
    port += 1
del fleet["apps"]["pong"]
shutil.rmtree(src)
json.dump(fleet, open("fleet.json", "w"), indent=2)
PY
	git add -A
	git commit -qm "$APPS summonable apps"
	git push -q origin HEAD:main
)
git init -q --bare -b main "$T/empty.git"
(
	cd "$T/many"
	git checkout -q -b empty
	git rm -rq apps
	jq '.apps = {}' fleet.json >f && mv f fleet.json
	git add -A
	git commit -qm "no app"
	git push -q "$T/empty.git" HEAD:main
)
footprint() { # CONFIG WANT_APPS -> "rss_kib fds wakeups_per_s"
	local pid sum0 sum1
	start_agent "$1"
	pid=$AGENT_PID
	for _ in $(seq 600); do
		[ "$("$agent" --config "$1" status --json | jq '[.apps[] | select(.state == "summonable")] | length')" -ge "$2" ] && break
		sleep 0.2
	done
	sleep 1
	# Started as root the agent is two processes (the privileged parent,
	# $pid, and the agent proper, its child): both are counted.
	local procs="$pid $(pgrep -P "$pid" -x deploy-agent || true)" p
	ctx() { for p in $procs; do cat /proc/"$p"/task/*/status; done | awk '/ctxt_switches/ {s += $2} END {print s}'; }
	sum0=$(ctx)
	sleep 10
	sum1=$(ctx)
	echo "$(for p in $procs; do cat /proc/"$p"/status; done | awk '/VmRSS/ {s += $2} END {print s}') $(for p in $procs; do ls /proc/"$p"/fd; done | wc -l) $(awk -v a="$sum0" -v b="$sum1" 'BEGIN {printf "%.1f", (b - a) / 10}')"
	stop_agent "$pid"
}
conf many "$T/state-many" "$DEPLOY_REPO"
conf none "$T/state-none" "$T/empty.git"
read -r rss_many fd_many wk_many < <(footprint "$T/many.json" "$APPS")
read -r rss_none fd_none wk_none < <(footprint "$T/none.json" 0)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
cat <<EOF
## Summoning (bench/summon.sh)

| figure | measured | baseline | ratio |
|---|---|---|---|
| cold first response, connect to first byte (median of $REPS) | $summon_ms ms | $direct_ms ms (the binary's own start to first answer) | overhead **$overhead_ms ms** |
| cold start as the agent reports it (first held connection to ready, p50) | $agent_p50 ms | | |
| warm requests/s through the agent's proxy | $rps_agent | $rps_direct direct | $(ratio "$rps_agent" "$rps_direct") |
| warm requests/s through systemd-socket-proxyd | $rps_proxyd | $rps_direct direct | $(ratio "$rps_proxyd" "$rps_direct") |
| agent vs systemd-socket-proxyd, requests/s | $rps_agent | $rps_proxyd | $(ratio "$rps_agent" "$rps_proxyd") |
| warm requests/s, keep-alive: agent | $karps_agent | $karps_direct direct | $(ratio "$karps_agent" "$karps_direct") |
| warm requests/s, keep-alive: systemd-socket-proxyd | $karps_proxyd | $karps_direct direct | $(ratio "$karps_proxyd" "$karps_direct") |
| warm latency p50, keep-alive: agent / socket-proxyd | $kap50_agent / $kap50_proxyd ms | $kap50_direct ms direct | |
| warm latency p50 / p99: agent | $p50_agent / $p99_agent ms | $p50_direct / $p99_direct ms direct | |
| warm latency p50 / p99: systemd-socket-proxyd | $p50_proxyd / $p99_proxyd ms | $p50_direct / $p99_direct ms direct | |
| proxy CPU per request, Connection: close: agent | $cpu_agent µs | $cpu_proxyd µs systemd-socket-proxyd | $(ratio "$cpu_agent" "$cpu_proxyd") |
| proxy CPU per request, keep-alive: agent | $kacpu_agent µs | $kacpu_proxyd µs systemd-socket-proxyd | $(ratio "$kacpu_agent" "$kacpu_proxyd") |
| pong's own CPU per request, close / keep-alive (direct, for scale) | $cpu_direct / $kacpu_direct µs | | |
| one connection (-c1), keep-alive, p50 / p99: agent | $kc1p50_agent / $kc1p99_agent ms | $kc1p50_direct / $kc1p99_direct ms direct | p50 $(ratio "$kc1p50_agent" "$kc1p50_direct") |
| one connection (-c1), keep-alive, p50 / p99: systemd-socket-proxyd | $kc1p50_proxyd / $kc1p99_proxyd ms | $kc1p50_direct / $kc1p99_direct ms direct | p50 $(ratio "$kc1p50_proxyd" "$kc1p50_direct") |
| one connection (-c1), keep-alive, requests/s: agent / socket-proxyd | $kc1rps_agent / $kc1rps_proxyd | $kc1rps_direct direct | $(ratio "$kc1rps_agent" "$kc1rps_direct") / $(ratio "$kc1rps_proxyd" "$kc1rps_direct") |
| one connection (-c1), Connection: close, p50 / p99: agent | $c1p50_agent / $c1p99_agent ms | $c1p50_direct / $c1p99_direct ms direct | p50 $(ratio "$c1p50_agent" "$c1p50_direct") |
| one connection (-c1), Connection: close, p50 / p99: systemd-socket-proxyd | $c1p50_proxyd / $c1p99_proxyd ms | $c1p50_direct / $c1p99_direct ms direct | p50 $(ratio "$c1p50_proxyd" "$c1p50_direct") |
| idle agent with $APPS summonable apps: RSS | $rss_many KiB | $rss_none KiB with no app | $(ratio "$rss_many" "$rss_none") |
| idle: open descriptors | $fd_many | $fd_none | |
| idle: wake-ups per second (context switches, all threads, over 10 s) | $wk_many | $wk_none | |

Cold: a Python client connects to the summoned app's listen address with
zero instances running and times connect to first response byte; the
baseline starts the same pong binary directly and polls it until it answers
(the same client code). Overhead = difference of the medians over $REPS
runs (each run waits for the idle stop, 1 s). Warm: wrk -t1
-c$WRK_CONNS, ${WRK_SECONDS}s, GET / with Connection: close (a new connection
per request: the proxy's accept and connect included) and with keep-alive
(pong sends header and body in one segment), $ROUNDS interleaved rounds,
medians, all three paths to the same instance. On this machine wrk, pong
and the proxy share 2 CPUs, so the throughput ratio against direct mostly
measures CPU sharing: a proxied path adds a third busy process, and cannot
approach 1.0x here whatever the proxy does. Two figures do not depend on
that contention. CPU per request: the proxy process's utime+stime delta
(/proc/<pid>/stat, the agent's whole process; systemd-socket-proxyd's)
over a run, divided by the requests wrk completed in it; it is mostly
kernel time (loopback TCP: a send runs the receiving side's protocol work
too), so it is set beside pong's own. One connection (-c1): a single
request in flight, so no process waits for a CPU and the difference from
direct is the proxy's added latency (two more loopback hops and its
wake-up). Idle: the agent's whole process (every thread) read from /proc
after it registered every app, over 10 s with no traffic. This machine is
shared with other work: compare ratios within one run.
EOF
