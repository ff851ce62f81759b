#!/usr/bin/env bash
# The Linux microVM (tests/fixtures/microvm, issue 10) on an agent-managed
# tap, each figure beside its baseline measured in the same run:
#
#   1. boot to healthy: `deploy-agent sync` of a new release (published with
#      --no-signal) until it returns with the instance healthy (health http
#      /health), the agent running in a private network namespace with its
#      own bridge and a tap per instance; against plain qemu started by hand
#      with the same kernel and initrd on a tap in a namespace of the same
#      kind, until the guest answers HTTP /health at its address;
#   2. summon: the first `curl` through the listen address with the app at
#      zero instances (the boot included), against the plain qemu
#      boot-to-answer of 1;
#   3. warm requests: wrk through the agent's proxy to the tap-networked
#      guest, against wrk straight to the guest's address (one run each).
#
# Knobs: BENCH_REPS (3: every figure of 1 and 2 is a TCG boot of ~5-12 s),
# BENCH_MICROVM_WRK_SECONDS (5), BENCH_MICROVM_WRK_CONNS (4), MICROVM_DIR
# (build/microvm: fetch-kernel.sh's directory, filled when not yet). Needs
# root (network namespaces, taps), qemu-system-x86_64, ip, wrk, curl, jq.
# Prints one Markdown section on stdout, progress on stderr.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${BENCH_REPS:-3}
WRK_SECONDS=${BENCH_MICROVM_WRK_SECONDS:-5}
WRK_CONNS=${BENCH_MICROVM_WRK_CONNS:-4}
MICROVM_DIR=${MICROVM_DIR:-$ROOT/build/microvm}
DEPLOY_BIN=$ROOT/bin/deploy
AGENT_BIN=$ROOT/bin/deploy-agent
QEMU=$(command -v qemu-system-x86_64 || true)

die() { echo "microvm.sh: $*" >&2; exit 1; }
log() { echo "microvm.sh: $*" >&2; }
for b in "$DEPLOY_BIN" "$AGENT_BIN"; do
	[ -x "$b" ] || die "$b is not built: run make"
done
[ -n "$QEMU" ] || die "qemu-system-x86_64 is not installed"
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, taps)"
for t in ip wrk curl jq python3; do
	command -v "$t" >/dev/null || die "$t is missing: sh ci/install-deps.sh bench"
done

# Two namespaces: the agent's (its bridge udbr0 on AGENT_SUBNET, its taps)
# and the baseline's (a bridge and one tap made here, as smoke.sh does).
NSA=udmvba$$
NSP=udmvbp$$
AGENT_SUBNET=10.213.11.0/24
PGW=10.213.12.1
PIP=10.213.12.2
LISTEN=127.0.0.1:18080
APP=micro

T=$(mktemp -d "${TMPDIR:-/tmp}/unideploy-microvm.XXXXXX")
AGENT_PID=
# The qemu processes of this run: their kernel is a file under $T.
qemu_pids() {
	local f p
	for f in $(grep -lz "^$T/" /proc/[0-9]*/cmdline 2>/dev/null); do
		p=${f%/cmdline}
		case $(readlink "$p/exe" 2>/dev/null) in */qemu-system-*) echo "${p#/proc/}" ;; esac
	done
}
cleanup() {
	local left _
	if [ -n "$AGENT_PID" ]; then
		kill -TERM "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	for _ in $(seq 50); do
		[ -z "$(qemu_pids)" ] && break
		sleep 0.2
	done
	left=$(qemu_pids)
	# shellcheck disable=SC2086
	[ -z "$left" ] || kill -KILL $left 2>/dev/null || true
	ip netns del "$NSA" 2>/dev/null || true
	ip netns del "$NSP" 2>/dev/null || true
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home DEPLOY_CACHE_ROOT=$T/cache
mkdir -p "$HOME"

# stats N...: "median min max" of the numbers ("- - -" if none).
stats() {
	if [ $# -eq 0 ]; then
		echo "- - -"
		return
	fi
	printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 }
		END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		      printf "%d %d %d\n", m, v[1], v[NR] }'
}
ratio() { if [ "$2" = - ] || [ "$1" = - ]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; fi; }

sh "$ROOT/tests/fixtures/microvm/fetch-kernel.sh" "$MICROVM_DIR" >&2

# ---------------------------------------------------------------------------
# Baseline: plain qemu, by hand, on a tap in its own namespace.
# ---------------------------------------------------------------------------
log "plain qemu baseline: building the image, its namespace and tap"
mkdir -p "$T/plain/microvm"
cp "$ROOT"/tests/fixtures/microvm/build.sh "$ROOT"/tests/fixtures/microvm/init "$T/plain/microvm/"
(cd "$T/plain" && MICROVM_DIR=$MICROVM_DIR sh microvm/build.sh dist baseline) >&2
ip netns add "$NSP"
ip -n "$NSP" link set lo up
ip -n "$NSP" link add br0 type bridge
ip -n "$NSP" addr add "$PGW/24" dev br0
ip -n "$NSP" link set br0 up
ip -n "$NSP" tuntap add dev tap0 mode tap
ip -n "$NSP" link set tap0 master br0
ip -n "$NSP" link set tap0 up

# The command line templates/backends/qemu.args gives (x86_64, TCG, 128 MB,
# the tap on virtio-net-pci), minus -qmp: python in the namespace starts
# qemu and polls GET /health at the guest's address every 20 ms (0.5 s
# timeout per try); prints the ms from exec to the first 200 ("-" if none
# in 120 s). qemu is killed.
cat >"$T/plain.py" <<'PY'
import http.client, subprocess, sys, time
qemu, kernel, initrd, ip, gw, log = sys.argv[1:]
args = [qemu, "-kernel", kernel, "-initrd", initrd, "-m", "128", "-nodefaults",
        "-no-user-config", "-display", "none", "-accel", "tcg", "-serial", "stdio",
        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device", "virtio-net-pci,netdev=n0,mac=02:00:0a:d5:0c:02",
        "-append", "console=ttyS0 quiet ud.ip=%s ud.gw=%s ud.mask=255.255.255.0" % (ip, gw)]
out = "-"
with open(log, "ab") as f:
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)
    try:
        while time.monotonic() - t0 < 120 and p.poll() is None:
            c = http.client.HTTPConnection(ip, 8080, timeout=0.5)
            try:
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    out = "%d" % round((time.monotonic() - t0) * 1000)
                    break
            except OSError:
                pass
            finally:
                c.close()
            time.sleep(0.02)
    finally:
        p.kill()
        p.wait()
print(out)
PY
plain_boot() {
	ip netns exec "$NSP" python3 "$T/plain.py" "$QEMU" "$T/plain/dist/vmlinuz" \
		"$T/plain/dist/initrd.cpio.gz" "$PIP" "$PGW" "$T/plain/console.log"
}

# ---------------------------------------------------------------------------
# The agent, in its namespace, with its own VM network.
# ---------------------------------------------------------------------------
log "agent: its namespace, repository and app"
ip netns add "$NSA"
ip -n "$NSA" link set lo up
DREPO=$T/deploy.git W=$T/app
export DEPLOY_REPO=$DREPO
"$DEPLOY_BIN" init "$DREPO" >/dev/null
"$DEPLOY_BIN" host add local --agent "unix:$T/agent.sock" >/dev/null
"$DEPLOY_BIN" place "$APP" --hosts local --target qemu --listen "$LISTEN" >/dev/null
jq -n --arg repo "$DREPO" --arg state "$T/state" --arg ctl "unix:$T/agent.sock" \
	--arg subnet "$AGENT_SUBNET" \
	'{host: "local", repo: $repo, state_dir: $state, control: $ctl, poll_s: 0,
	  network: {bridge: "udbr0", subnet: $subnet}}' >"$T/agent.json"
ip netns exec "$NSA" "$AGENT_BIN" --config "$T/agent.json" run >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do
	"$AGENT_BIN" --config "$T/agent.json" status >/dev/null 2>&1 && break
	sleep 0.1
done
"$AGENT_BIN" --config "$T/agent.json" status >/dev/null 2>&1 ||
	{ cat "$T/agent.log" >&2; die "the agent did not start"; }
agentctl() { "$AGENT_BIN" --config "$T/agent.json" "$@"; }

git init -q -b main "$W"
sh "$ROOT/tests/fixtures/microvm/app.sh" "$W" "$MICROVM_DIR"

# release V: publish version V without signalling, then time the sync.
release() {
	local t0 t1
	echo "$1" >"$W/VERSION"
	git -C "$W" add -A
	git -C "$W" commit -qm "micro $1"
	"$DEPLOY_BIN" publish --source "$W" --no-signal >"$T/publish.log" 2>&1 ||
		{ cat "$T/publish.log" >&2; die "deploy publish $1 failed"; }
	t0=$(date +%s%N)
	agentctl sync "$APP" >"$T/sync.log" 2>&1 ||
		{ cat "$T/sync.log" >&2; tail -n 30 "$T/agent.log" >&2; die "sync of $1 failed"; }
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
address() { jq -r ".apps.$APP.instances[].address // empty" "$T/state/state.json" | head -n 1; }
instances() { agentctl status --json | jq ".apps.$APP.instances | length"; }

# The first sync also runs the agent's one-time KVM/TCG probe: left out.
first=$(release warmup)
log "  first sync (with the accelerator probe): $first ms"
accel=$(sed -n 's/.*qemu start-up.*using \([a-z]*\).*/\1/p' "$T/agent.log" | tail -n1)
accel=${accel:-tcg}
# Interleaved, one plain boot then one release per round, so that the
# load of a shared machine weighs on both alike.
log "boot to healthy: $REPS rounds of a plain qemu boot and an agent release"
plain=() agent=()
for ((i = 1; i <= REPS; i++)); do
	ms=$(plain_boot)
	log "  plain qemu until /health answers: $ms ms"
	[ "$ms" = - ] || plain+=("$ms")
	ms=$(release "v$i")
	log "  agent sync to healthy: $ms ms"
	agent+=("$ms")
done
[ ${#plain[@]} -gt 0 ] || { tail -n 30 "$T/plain/console.log" >&2; die "plain qemu never answered"; }
got=$(ip netns exec "$NSA" curl -s --max-time 10 "http://$LISTEN/")
[ "$got" = "pong v$REPS" ] || die "the listen address answered '$got', not 'pong v$REPS'"

# ---------------------------------------------------------------------------
# 3. warm requests, the last release up: through the proxy, and direct.
# ---------------------------------------------------------------------------
addr=$(address)
[ -n "$addr" ] || die "no address recorded for the instance"
log "warm requests: wrk -c$WRK_CONNS ${WRK_SECONDS}s, through $LISTEN and direct to $addr:8080"
# wrk_run URL -> "rps p50_ms p99_ms errors"
wrk_run() {
	ip netns exec "$NSA" wrk -t1 -c"$WRK_CONNS" -d"${WRK_SECONDS}s" --latency \
		-H "Connection: close" "$1" >"$T/wrk.out"
	awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
	     /^ +50%/ {p50 = ms($2)} /^ +99%/ {p99 = ms($2)} /^Requests\/sec/ {rps = $2}
	     /Socket errors/ {gsub(/,/, ""); e += $4 + $6 + $8 + $10} /Non-2xx/ {e += $NF}
	     END {printf "%s %.3f %.3f %d\n", rps, p50, p99, e}' "$T/wrk.out"
}
read -r drps dp50 dp99 derr <<<"$(wrk_run "http://$addr:8080/")"
read -r arps ap50 ap99 aerr <<<"$(wrk_run "http://$LISTEN/")"
log "  direct: $drps req/s, p50 $dp50 ms; agent: $arps req/s, p50 $ap50 ms"

# ---------------------------------------------------------------------------
# 2. summon: cold first response through the listen address.
# ---------------------------------------------------------------------------
log "summon: $REPS cold first responses"
"$DEPLOY_BIN" place "$APP" --hosts local --target qemu --listen "$LISTEN" \
	--mode summon --idle-stop 1 --max-instances 1 >/dev/null
agentctl sync >/dev/null
zero() {
	local _
	for _ in $(seq 300); do
		[ "$(instances)" = 0 ] && [ -z "$(qemu_pids)" ] && return 0
		sleep 0.2
	done
	die "the summoned app did not go back to zero instances within 60 s"
}
summon=()
for ((i = 1; i <= REPS; i++)); do
	zero
	out=$(ip netns exec "$NSA" curl -s --max-time 200 -w '\n%{time_total}' "http://$LISTEN/")
	body=$(head -n 1 <<<"$out")
	[ "$body" = "pong v$REPS" ] || die "summoned request answered '$body'"
	ms=$(tail -n 1 <<<"$out" | awk '{ printf "%d\n", $1 * 1000 }')
	log "  summoned first response: $ms ms"
	summon+=("$ms")
done
agent_p50=$(agentctl status --json | jq -r ".apps.$APP.cold_start_ms.p50 // \"-\"")

read -r pm plo phi <<<"$(stats "${plain[@]}")"
read -r am alo ahi <<<"$(stats "${agent[@]}")"
read -r sm slo shi <<<"$(stats "${summon[@]}")"
kernel=$(cat "$MICROVM_DIR/kernel-release" 2>/dev/null || echo unknown)

echo "## MicroVM on an agent-managed tap (bench/microvm.sh)"
echo
echo "| figure | median | spread (min-max) | baseline | baseline median | ratio |"
echo "|---|---|---|---|---|---|"
echo "| plain qemu ($accel) by hand on a tap, exec until GET /health answers | $pm ms | $plo-$phi ms | - | - | - |"
echo "| agent: \`deploy-agent sync\` of a new release until healthy ($accel) | $am ms | $alo-$ahi ms | plain qemu until /health | $pm ms | $(ratio "$am" "$pm") |"
echo "| agent overhead (difference of medians) | $((am - pm)) ms | - | - | - | - |"
echo "| summon: first \`curl\` through the listen address, from zero (boot included) | $sm ms | $slo-$shi ms | plain qemu until /health | $pm ms | $(ratio "$sm" "$pm") |"
echo "| summon: cold start as the agent reports it (p50) | $agent_p50 ms | - | - | - | - |"
echo "| warm requests/s through the agent's proxy (errors) | $arps ($aerr) | - | direct to the guest's address (errors) | $drps ($derr) | $(ratio "$arps" "$drps") |"
echo "| warm latency p50 / p99 through the agent's proxy | $ap50 / $ap99 ms | - | direct | $dp50 / $dp99 ms | p50 $(ratio "$ap50" "$dp50") |"
echo
echo "The guest: tests/fixtures/microvm (Debian's cloud kernel $kernel, a busybox"
echo "initramfs whose /init takes ud.ip/ud.gw/ud.mask from the kernel command line and"
echo "serves HTTP with busybox httpd on port 8080), qemu $accel, 128 MB, virtio-net-pci"
echo "on a tap. Medians over $REPS runs each (BENCH_REPS), plain boots and agent releases"
echo "interleaved. Plain qemu: the command line"
echo "templates/backends/qemu.args gives, minus -qmp, started by a Python client inside"
echo "a network namespace holding a bridge and the tap, timed from exec until GET"
echo "/health at the guest's address returns 200 (polled every 20 ms). Agent:"
echo "\`deploy-agent run\` inside a private network namespace with \`network: {bridge,"
echo "subnet}\` (it makes the bridge, a tap and an address per instance); a release"
echo "published with \`deploy publish --no-signal\`, then \`deploy-agent sync\` timed"
echo "until it returns, which is after the HTTP health check passed at the guest's"
echo "address and the previous VM was replaced. The first sync (${first} ms) ran the"
echo "agent's one-time accelerator probe and is left out. Summon: the app placed with"
echo "\`--mode summon --idle-stop 1\`; each run waits until the agent reports zero"
echo "instances and no qemu is left, then \`curl\` (in the namespace) GETs / through"
echo "the listen address; the figure is curl's time_total, so it holds the whole boot."
echo "Warm: wrk -t1 -c$WRK_CONNS, ${WRK_SECONDS}s, GET / with Connection: close (busybox"
echo "httpd does not keep connections alive), one run through the listen address and"
echo "one straight to the guest's address, both from inside the agent's namespace, to"
echo "the same instance in boot mode. Under TCG the guest's emulated CPU is the"
echo "bottleneck of both paths, so the ratio shows what the proxy adds on top of a"
echo "slow server rather than the proxy's own ceiling (bench/summon.sh measures that)."
