#!/usr/bin/env bash
# Boot-to-ready of the fixture kernel (tests/fixtures/kernel) under qemu:
#
#   1. plain qemu started by hand until "READY" on its serial console, with
#      TCG and, when /dev/kvm opens, with KVM (TCG is the baseline);
#   2. the agent: `deploy-agent sync` of a new release (published with
#      --no-signal) until it returns with the instance healthy, against
#      plain qemu with the accelerator the agent chose: the difference is
#      the agent's own overhead (fetch, digest check, unpack, spawn, health
#      polling, proxy switch, stopping the old VM).
#
# Knobs: BENCH_REPS (5). Needs qemu-system-x86_64 and `make`. Prints one
# Markdown section on stdout, progress on stderr.
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPS=${BENCH_REPS:-5}
DEPLOY_BIN=$ROOT/bin/deploy
AGENT_BIN=$ROOT/bin/deploy-agent
QEMU=$(command -v qemu-system-x86_64 || true)

for b in "$DEPLOY_BIN" "$AGENT_BIN"; do
	[ -x "$b" ] || { echo "boot.sh: $b is not built: run make" >&2; exit 1; }
done
[ -n "$QEMU" ] || { echo "boot.sh: qemu-system-x86_64 is not installed" >&2; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/unideploy-boot.XXXXXX")
AGENT_PID=
cleanup() {
	if [ -n "$AGENT_PID" ]; then
		kill "$AGENT_PID" 2>/dev/null || true
		wait "$AGENT_PID" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home DEPLOY_CACHE_ROOT=$T/cache
mkdir -p "$HOME"

sh "$ROOT/tests/fixtures/kernel/build.sh" "$T/kernel.elf" bench

# boot_ms ACCEL: one plain qemu boot until READY, in ms ("-" if it never
# came within 20 s). Python for the clock and the pipe; qemu is killed.
boot_ms() {
	python3 - "$QEMU" "$T/kernel.elf" "$1" <<'EOF'
import os, select, subprocess, sys, time
qemu, kernel, accel = sys.argv[1:]
t0 = time.monotonic()
p = subprocess.Popen([qemu, "-kernel", kernel, "-m", "32", "-nodefaults",
                      "-no-user-config", "-display", "none", "-accel", accel,
                      "-serial", "stdio"],
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
seen, out = b"", "-"
while time.monotonic() - t0 < 20:
    r, _, _ = select.select([p.stdout], [], [], 0.5)
    if r:
        chunk = os.read(p.stdout.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        if b"READY" in seen:
            out = "%d" % round((time.monotonic() - t0) * 1000)
            break
p.kill()
p.wait()
print(out)
EOF
}

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

# measure ACCEL: REPS plain boots; prints the successful times.
measure() {
	local i ms
	for ((i = 0; i < REPS; i++)); do
		ms=$(boot_ms "$1")
		echo "  plain qemu $1: $ms ms" >&2
		[ "$ms" = - ] || echo "$ms"
	done
}

kvm_usable() { [ -r /dev/kvm ] && [ -w /dev/kvm ]; }

echo "boot.sh: plain qemu, TCG" >&2
mapfile -t tcg < <(measure tcg)
kvm=()
if kvm_usable; then
	echo "boot.sh: plain qemu, KVM" >&2
	mapfile -t kvm < <(measure kvm)
fi

# The agent: a deployment repository, a local agent, the fixture app.
echo "boot.sh: agent" >&2
DREPO=$T/deploy.git W=$T/app
export DEPLOY_REPO=$DREPO
"$DEPLOY_BIN" init "$DREPO" >/dev/null
"$DEPLOY_BIN" host add local --agent "unix:$T/agent.sock" >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$DEPLOY_BIN" place fixture --hosts local --target qemu \
	--listen "127.0.0.1:$port" >/dev/null
jq -n --arg repo "$DREPO" --arg state "$T/state" --arg ctl "unix:$T/agent.sock" \
	'{host: "local", repo: $repo, state_dir: $state, control: $ctl, poll_s: 0}' >"$T/agent.json"
"$AGENT_BIN" --config "$T/agent.json" run >>"$T/agent.log" 2>&1 &
AGENT_PID=$!
for _ in $(seq 100); do
	"$AGENT_BIN" --config "$T/agent.json" status >/dev/null 2>&1 && break
	sleep 0.1
done
git init -q -b main "$W"
mkdir -p "$W/kernel"
cp "$ROOT"/tests/fixtures/kernel/* "$W/kernel/"
jq -n '{app: "fixture",
	build: {command: "sh kernel/build.sh dist/kernel.elf \"$(cat VERSION)\""},
	images: [{target: "qemu", arch: "x86_64", path: "dist/kernel.elf"}],
	run: {port: 80, memory_mb: 32, env: {UNIDEPLOY_PORT_VIA: "serial"}},
	health: {serial: "READY", timeout_s: 30}}' >"$W/deploy.json"

# release V: publish version V without signalling, then time the sync.
release() {
	local t0 t1
	echo "$1" >"$W/VERSION"
	git -C "$W" add -A
	git -C "$W" commit -qm "fixture $1"
	"$DEPLOY_BIN" publish --source "$W" --no-signal >/dev/null 2>&1
	t0=$(date +%s%N)
	"$AGENT_BIN" --config "$T/agent.json" sync fixture >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}

# The first sync also runs the agent's one-time KVM/TCG probe: left out.
first=$(release warmup)
echo "  first sync (with the accelerator probe): $first ms" >&2
accel=$(sed -n 's/.*qemu start-up.*using \([a-z]*\).*/\1/p' "$T/agent.log" | tail -n1)
probe=$(sed -n 's/.*qemu start-up to the first console byte: \(.*\): using.*/\1/p' "$T/agent.log" | tail -n1)
accel=${accel:-tcg}
agent=()
for ((i = 1; i <= REPS; i++)); do
	ms=$(release "v$i")
	echo "  agent sync to ready: $ms ms" >&2
	agent+=("$ms")
done
if [ "$accel" = kvm ]; then base=("${kvm[@]}"); else base=("${tcg[@]}"); fi

read -r tm tlo thi <<<"$(stats "${tcg[@]}")"
read -r km klo khi <<<"$(stats "${kvm[@]}")"
read -r am alo ahi <<<"$(stats "${agent[@]}")"
read -r bm _ _ <<<"$(stats "${base[@]}")"
ratio() { if [ "$2" = - ] || [ "$1" = - ]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; fi; }

echo "## Boot to ready: the fixture kernel under qemu"
echo
echo "| figure | median | spread (min-max) | baseline | baseline median | ratio |"
echo "|---|---|---|---|---|---|"
echo "| plain qemu, TCG, until READY | $tm ms | $tlo-$thi ms | - | - | - |"
if kvm_usable; then
	if [ ${#kvm[@]} -eq 0 ]; then
		echo "| plain qemu, KVM, until READY | never (20 s) | - | plain qemu, TCG | $tm ms | - |"
	else
		echo "| plain qemu, KVM, until READY | $km ms | $klo-$khi ms | plain qemu, TCG | $tm ms | $(ratio "$km" "$tm") |"
	fi
else
	echo "| plain qemu, KVM | no usable /dev/kvm | - | - | - | - |"
fi
echo "| agent: \`deploy-agent sync\` of a new release until healthy ($accel) | $am ms | $alo-$ahi ms | plain qemu, $accel | $bm ms | $(ratio "$am" "$bm") |"
echo "| agent overhead (difference of medians) | $((am - bm)) ms | - | - | - | - |"
echo
echo "Medians over $REPS runs each (BENCH_REPS). Plain qemu: \`qemu-system-x86_64 -kernel"
echo "fixture -m 32 -nodefaults -display none -serial stdio -accel A\` from exec until"
echo "\"READY\" arrives on the pipe. Agent: a release published with \`deploy publish"
echo "--no-signal\`, then \`deploy-agent sync\` timed until it returns, which is after"
echo "the serial health check saw READY in the console log and the previous VM was"
echo "replaced (it is stopped in the background). The first sync (${first} ms) ran the"
echo "agent's one-time accelerator probe (${probe:-not run}) and is left out."
