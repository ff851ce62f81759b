#!/usr/bin/env bash
# `make bench` (SPEC §8): each figure beside a baseline measured in the same
# run, medians over repetitions, one Markdown table per group, all written to
# bench/RESULTS.md. Nothing here is a pass/fail threshold.
#
#   1. push to live: `git push` of the pong sample until the new version
#      answers through the agent's listen address, against building pong by
#      hand with cc.
#   2. publish cost: committing a 32 MiB image into a deployment repository
#      with a history of releases, against `git add && git commit` of the same
#      file into a plain repository with the same history.
#   3. storage and transfer per release of a slowly changing 32 MiB image, per
#      image compression: what the deployment repository grows by (loose and
#      after git gc), what the agent's libgit2 fetch brings over, and what a
#      git CLI fetch receives.
#
# Knobs (environment): BENCH_REPS (pushes and publishes per figure, 5),
# BENCH_HISTORY (releases before the publish figure, 50), BENCH_RELEASES
# (releases per compression, 5), BENCH_COMPRESSIONS ("none gzip zstd xz"),
# BENCH_OUT (bench/RESULTS.md), BENCH_ONLY (groups to run, "push publish signing
# storage fanout summon boot microvm soak keepalive").
#
#   signing: `deploy publish` signed against unsigned, and the agent's
#      signature check per fetched commit (bench/sigcheck.c).
#   4. fanout (bench/fanout.sh): signalling 1, 4 and 16 hosts over SSH, each
#      in its own network namespace, and push-to-live over SSH against a host
#      polling every 11 minutes.
#   5. summon (bench/summon.sh): cold first response, warm proxy throughput
#      against a direct connection and systemd-socket-proxyd, idle footprint.
#   6. boot (bench/boot.sh): the fixture kernel's boot-to-ready under qemu.
#   7. microvm (bench/microvm.sh): the Linux microVM on an agent-managed tap
#      in a network namespace: sync-to-healthy against plain qemu on a tap,
#      the summoned first response, warm requests through the proxy against
#      direct to the guest's address (BENCH_REPS defaults to 3 there: each
#      figure is a TCG boot).
#   8. soak (bench/soak.sh): the agent's resident memory after 0, 1,000 and
#      10,000 syncs, against the same loop with the fetch in the agent's
#      own process as before issue 15 (SOAK_SYNCS shrinks the count).
#   9. keepalive (bench/keepalive.sh): one kept-alive HTTP client across
#      BENCH_SWAPS (100) pushes, the proxy in HTTP mode against plain TCP
#      mode: failed requests, stale answers, reconnections.
set -euo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build/rel}
REPS=${BENCH_REPS:-5}
HISTORY=${BENCH_HISTORY:-50}
RELEASES=${BENCH_RELEASES:-5}
COMPRESSIONS=${BENCH_COMPRESSIONS:-none gzip zstd xz}
OUT=${BENCH_OUT:-$top/bench/RESULTS.md}
deploy=$top/bin/deploy
agent=$top/bin/deploy-agent
tools=$top/build/bench

T=$(mktemp -d "${TMPDIR:-/tmp}/unideploy-bench.XXXXXX")
agent_pid=
stop_agent() {
	[ -n "$agent_pid" ] || return 0
	kill -TERM "$agent_pid" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$agent_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$agent_pid" 2>/dev/null || true
	wait "$agent_pid" 2>/dev/null || true
	agent_pid=
}
cleanup() {
	stop_agent
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GIT_AUTHOR_NAME="Bench" GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME="Bench" GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_CONFIG_NOSYSTEM=1 HOME=$T/home DEPLOY_CACHE_ROOT=$T/cache
mkdir -p "$HOME"
unset DEPLOY_REPO DEPLOY_COMPRESSION

# shellcheck source=bench/pong_world.sh
. "$top/bench/pong_world.sh"
note() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

# Milliseconds since the epoch, without forking (bash 5's EPOCHREALTIME).
now_ms() {
	local t=${EPOCHREALTIME/./}
	echo $((10#$t / 1000))
}
# The median of the numbers on stdin, one per line.
median() {
	sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print a[(NR + 1) / 2]
		else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
secs() { awk -v ms="$1" 'BEGIN { printf "%.3f s", ms / 1000 }'; }
bytes() {
	awk -v b="$1" 'BEGIN {
		if (b >= 1048576) printf "%.2f MiB", b / 1048576
		else if (b >= 1024) printf "%.1f KiB", b / 1024
		else printf "%d B", b }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
size_of() { du -sb "$1" | cut -f1; }
# The seconds a pipeline stage took, from its "-----> NAME: done in X s".
stage_ms() {
	sed -n "s/^\(remote: \)\{0,1\}-----> $1: done in \([0-9.]*\) s.*/\2/p" "$2" |
		tail -n 1 | awk '{ printf "%d\n", $1 * 1000 }'
}

[ -x "$deploy" ] && { [ -x "$agent" ] || [ -n "${BENCH_ONLY:-}" ]; } || die "bin/deploy and bin/deploy-agent are not built: run make"
[ -f "$top/$BUILD/libunideploy.a" ] || die "$BUILD/libunideploy.a is not built: run make"
for t in hyperfine jq curl git; do
	command -v "$t" >/dev/null || die "$t is missing: sh ci/install-deps.sh bench"
done

note "Building the bench tools into $tools"
mkdir -p "$tools"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o "$tools/mkimage" \
	"$top/bench/mkimage.c"
# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -iquote "$top/lib" \
	$(pkg-config --cflags libgit2) -o "$tools/fetch" "$top/bench/fetch.c" \
	"$top/$BUILD/libunideploy.a" \
	$(pkg-config --libs libgit2 libcurl jansson libssh2 libarchive libcrypto) \
	-lpthread

# shellcheck disable=SC2046
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -iquote "$top/lib" \
	$(pkg-config --cflags libgit2) -o "$tools/sigcheck" "$top/bench/sigcheck.c" \
	"$top/$BUILD/libunideploy.a" \
	$(pkg-config --libs libgit2 libcurl jansson libssh2 libarchive libcrypto) \
	-lpthread

results=$T/results.md
: >"$results"
methods=$T/methods.md
: >"$methods"
emit() { printf '%s\n' "$@" | tee -a "$results"; }
method() { printf '%s\n' "$@" >>"$methods"; }

# ---------------------------------------------------------------------------
# 1. push to live
# ---------------------------------------------------------------------------
bench_push() {
	local d=$T/push port live push build lmb i body t0 t1 t2 pid rel
	note "1. push to live: $REPS pushes of the pong sample"
	pong_world "$d" || die "the agent did not start"

	git clone -q "$d/pong.git" "$d/work" 2>/dev/null
	cp "$top"/templates/pong/{pong.c,deploy.json} "$d/work/"
	# The first push boots the first release and fills the build cache;
	# it is not measured.
	(
		cd "$d/work"
		echo warmup >VERSION
		git add -A && git commit -qm warmup
		env -u DEPLOY_REPO git push -q origin HEAD:main >"$d/push.0" 2>&1
	) || { cat "$d/push.0" >&2; die "the warm-up push failed"; }

	: >"$d/live" ; : >"$d/push" ; : >"$d/build" ; : >"$d/lmb"
	for i in $(seq "$REPS"); do
		echo "b$i" >"$d/work/VERSION"
		git -C "$d/work" commit -qam "b$i"
		t0=$(now_ms)
		(cd "$d/work" && env -u DEPLOY_REPO git push origin HEAD:main) >"$d/push.$i" 2>&1 &
		pid=$!
		t1=
		while [ -z "$t1" ]; do
			body=$(curl -s --max-time 1 "http://127.0.0.1:$port/" || true)
			if [ "$body" = "pong b$i" ]; then
				t1=$(now_ms)
			elif [ $(($(now_ms) - t0)) -gt 120000 ]; then
				cat "$d/push.$i" >&2
				die "push $i did not go live within 120 s"
			else
				sleep 0.005
			fi
		done
		wait "$pid" || { cat "$d/push.$i" >&2; die "push $i failed"; }
		t2=$(now_ms)
		rel=$(git --git-dir="$d/deploy.git" show main:apps/pong/current)
		build=$(git --git-dir="$d/deploy.git" show \
			"main:apps/pong/releases/$rel/manifest.json" | jq .build.duration_ms)
		echo $((t1 - t0)) >>"$d/live"
		echo $((t2 - t0)) >>"$d/push"
		echo "$build" >>"$d/build"
		echo $((t1 - t0 - build)) >>"$d/lmb"
		note "   push $i: live after $((t1 - t0)) ms (build $build ms)"
	done
	stop_agent
	unset DEPLOY_REPO

	# Baseline: the same build.command by hand, /bin/sh in a copy of the
	# app's tree, as the pipeline runs it but without git, export or agent.
	mkdir -p "$d/hand"
	cp "$top/templates/pong/pong.c" "$d/hand/"
	echo bench >"$d/hand/VERSION"
	jq -r .build.command "$top/templates/pong/deploy.json" >"$d/hand/build.sh"
	(cd "$d/hand" && hyperfine -N --style none --warmup 1 --runs $((REPS * 2)) \
		--export-json "$d/cc.json" "sh build.sh" >/dev/null)
	local cc
	cc=$(jq '.results[0].median * 1000 | floor' "$d/cc.json")

	live=$(median <"$d/live"); push=$(median <"$d/push")
	build=$(median <"$d/build"); lmb=$(median <"$d/lmb")
	emit "" "## 1. Push to live (pong sample, trivial build)" "" \
		"| figure | median of $REPS | baseline: the build by hand | ratio to baseline |" \
		"|---|---|---|---|" \
		"| \`git push\` start → new version answers on the listen address | $(secs "$live") | $(secs "$cc") | $(ratio "$live" "$cc") |" \
		"| the same minus the build (manifest build.duration_ms) | $(secs "$lmb") | | |" \
		"| build in the pipeline (build.duration_ms) | $(secs "$build") | $(secs "$cc") | $(ratio "$build" "$cc") |" \
		"| \`git push\` start → push returns | $(secs "$push") | | |"
	method "- **Push to live**: a deployment repository, a bare app repository" \
		"  with the post-receive hook, and a local \`deploy-agent run\` (boot" \
		"  mode, health-gated) on one machine. After one unmeasured warm-up" \
		"  push, $REPS pushes each change VERSION; the clock starts before" \
		"  \`git push\` and stops when \`curl\` (polled every ~5 ms) on the" \
		"  listen address returns the new version string. Build time is the" \
		"  release manifest's \`build.duration_ms\`. Baseline: \`hyperfine\`," \
		"  median of $((REPS * 2)) runs of pong's build.command (\`cc -O2 ...\`)" \
		"  by hand with /bin/sh in a plain copy of the app's files."
}

# ---------------------------------------------------------------------------
# App repository whose build copies a prepared image ($BENCH_IMG), so the
# build stage costs one copy and a digest.
# ---------------------------------------------------------------------------
make_img_app() {
	local w=$1
	git init -q -b main "$w"
	cat >"$w/deploy.json" <<'JSON'
{
  "app": "img",
  "build": { "command": "mkdir -p dist && cp \"$BENCH_IMG\" dist/img" },
  "images": [ { "target": "unix", "arch": "x86_64", "path": "dist/img" } ],
  "run": { "port": 8080 },
  "health": { "tcp": true, "timeout_s": 10 }
}
JSON
	git -C "$w" add deploy.json
	git -C "$w" commit -qm "img app"
}
# publish_img REPO IMAGE COMPRESSION LOG: one release, timed (ms on stdout).
publish_img() {
	local t0 t1
	t0=$(now_ms)
	# the sandboxed build sees the image read-only (docs/builds.md)
	BENCH_IMG=$2 DEPLOY_BUILD_RO_PATHS=$2 DEPLOY_COMPRESSION=$3 "$deploy" publish --deploy-repo "$1" \
		--source "$T/app" --commit HEAD --no-signal >"$4" 2>&1 ||
		{ cat "$4" >&2; die "deploy publish failed"; }
	t1=$(now_ms)
	echo $((t1 - t0))
}

# ---------------------------------------------------------------------------
# 2. publish cost
# ---------------------------------------------------------------------------
bench_publish() {
	local d=$T/publish k full rel bld add t0 t1
	note "2. publish cost: 32 MiB into a repository with $HISTORY releases"
	mkdir -p "$d"
	"$deploy" init "$d/deploy.git" >/dev/null
	git init -q -b main "$d/plain"
	for k in $(seq "$HISTORY"); do
		"$tools/mkimage" "$d/small" "$k" 1
		publish_img "$d/deploy.git" "$d/small" none "$d/hist.log" >/dev/null
		cp "$d/small" "$d/plain/img"
		git -C "$d/plain" add img
		git -C "$d/plain" commit -qm "history $k"
	done

	: >"$d/full"; : >"$d/release"; : >"$d/build"; : >"$d/git"
	for k in $(seq "$REPS"); do
		"$tools/mkimage" "$d/big" "$k" 32
		full=$(publish_img "$d/deploy.git" "$d/big" none "$d/pub.$k")
		rel=$(stage_ms release "$d/pub.$k")
		bld=$(stage_ms build "$d/pub.$k")
		echo "$full" >>"$d/full"; echo "$rel" >>"$d/release"
		echo "$bld" >>"$d/build"
		cp "$d/big" "$d/plain/img"
		t0=$(now_ms)
		git -C "$d/plain" add img
		git -C "$d/plain" commit -qm "big $k"
		t1=$(now_ms)
		add=$((t1 - t0))
		echo "$add" >>"$d/git"
		note "   publish $k: $full ms (release stage $rel ms), git add+commit $add ms"
	done
	full=$(median <"$d/full"); rel=$(median <"$d/release")
	bld=$(median <"$d/build"); add=$(median <"$d/git")
	emit "" "## 2. Publish cost (32 MiB image, $HISTORY releases of history, compression none)" "" \
		"| figure | median of $REPS | baseline: \`git add && git commit\` | ratio to baseline |" \
		"|---|---|---|---|" \
		"| release stage (\`-----> release: done in\`) | $(secs "$rel") | $(secs "$add") | $(ratio "$rel" "$add") |" \
		"| \`deploy publish\` minus its build stage | $(secs $((full - bld))) | $(secs "$add") | $(ratio $((full - bld)) "$add") |" \
		"| \`deploy publish\`, whole command | $(secs "$full") | | |" \
		"| its build stage (copy + digest of the image) | $(secs "$bld") | | |"
	method "- **Publish cost**: a deployment repository given $HISTORY releases of a" \
		"  1 MiB image (\`deploy publish --no-signal\`), and a plain git" \
		"  repository given the same $HISTORY files as $HISTORY commits. Then" \
		"  $REPS times, alternating: \`deploy publish --no-signal\` of a fresh" \
		"  32 MiB image (build.command copies it into dist/), timed whole and" \
		"  by its printed stage durations (0.1 s resolution), and" \
		"  \`git add img && git commit\` of the same file in the plain" \
		"  repository. Medians."
}

# ---------------------------------------------------------------------------
# 3. storage and transfer per release, per compression
# ---------------------------------------------------------------------------
bench_storage() {
	local d=$T/storage c k r before after g1 gn lg lgn lt gf blob t0
	note "3. storage and transfer: $RELEASES releases per compression ($COMPRESSIONS)"
	mkdir -p "$d/img"
	for k in $(seq "$RELEASES"); do
		"$tools/mkimage" "$d/img/$k" "$k" 32
	done
	local hdr="| per release |" sep="|---|" rows=()
	rows[0]="| image as stored (blob size) |"
	rows[1]="| publish: release stage |"
	rows[2]="| repository growth, loose objects as written |"
	rows[3]="| repository after \`git gc\`, total ÷ releases |"
	rows[4]="| repository after \`git gc\`, growth per release after the first |"
	rows[5]="| fetched by the agent (libgit2 mirror growth), median |"
	rows[6]="| fetched by the agent, at release $RELEASES |"
	rows[7]="| agent fetch time, at release $RELEASES |"
	rows[8]="| fetched by \`git fetch\` (pack received), median |"
	for c in $COMPRESSIONS; do
		note "   compression $c"
		r=$d/$c
		mkdir -p "$r"
		"$deploy" init "$r/deploy.git" >/dev/null
		: >"$r/loose"; : >"$r/pub"; : >"$r/lg"; : >"$r/gf"
		for k in $(seq "$RELEASES"); do
			before=$(size_of "$r/deploy.git")
			publish_img "$r/deploy.git" "$d/img/$k" "$c" "$r/pub.$k" >/dev/null
			after=$(size_of "$r/deploy.git")
			echo $((after - before)) >>"$r/loose"
			stage_ms release "$r/pub.$k" >>"$r/pub"
			if [ "$k" = 1 ]; then
				# the mirrors start from release 1: later
				# fetches are the steady state
				"$tools/fetch" "$r/mirror.git" "$r/deploy.git"
				git clone -q --mirror "file://$r/deploy.git" "$r/cli.git"
				cp -a "$r/deploy.git" "$r/gc1.git"
				git -C "$r/gc1.git" -c gc.auto=0 gc -q
				g1=$(size_of "$r/gc1.git")
				rm -rf "$r/gc1.git"
			else
				before=$(size_of "$r/mirror.git")
				t0=$(now_ms)
				"$tools/fetch" "$r/mirror.git" "$r/deploy.git"
				lt=$(($(now_ms) - t0))
				after=$(size_of "$r/mirror.git")
				lgn=$((after - before))
				echo "$lgn" >>"$r/lg"
				rm -f "$r/pack"
				GIT_TRACE_PACKFILE=$r/pack git -C "$r/cli.git" \
					fetch -q "file://$r/deploy.git" \
					'+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
				size_of "$r/pack" >>"$r/gf"
			fi
		done
		blob=$(git --git-dir="$r/deploy.git" cat-file -s \
			"main:apps/img/releases/$RELEASES/$(git --git-dir="$r/deploy.git" \
				show "main:apps/img/releases/$RELEASES/manifest.json" |
				jq -r '.images[0].file')")
		cp -a "$r/deploy.git" "$r/gcn.git"
		git -C "$r/gcn.git" -c gc.auto=0 gc -q
		gn=$(size_of "$r/gcn.git")
		rm -rf "$r/gcn.git"
		hdr+=" $c |"
		sep+="---|"
		rows[0]+=" $(bytes "$blob") |"
		rows[1]+=" $(secs "$(median <"$r/pub")") |"
		rows[2]+=" $(bytes "$(median <"$r/loose")") |"
		rows[3]+=" $(bytes $((gn / RELEASES))) |"
		rows[4]+=" $(bytes $(((gn - g1) / (RELEASES - 1)))) |"
		lg=$(median <"$r/lg"); gf=$(median <"$r/gf")
		rows[5]+=" $(bytes "$lg") |"
		rows[6]+=" $(bytes "$lgn") |"
		rows[7]+=" $(secs "$lt") |"
		rows[8]+=" $(bytes "$gf") |"
		# for the conclusion: name, then bytes per release
		printf '%s %s %s %s %s %s %s %s\n' "$c" "$blob" \
			"$(median <"$r/loose")" "$((gn / RELEASES))" \
			"$(((gn - g1) / (RELEASES - 1)))" "$lg" "$gf" \
			"$(median <"$r/pub")" >>"$d/summary"
		rm -rf "$r"
	done
	emit "" "## 3. Storage and transfer per release (32 MiB image, a few KiB changed per release, $RELEASES releases)" "" \
		"$hdr" "$sep" "${rows[@]}"
	method "- **Storage and transfer**: \`bench/mkimage.c\` writes a deterministic" \
		"  32 MiB kernel-like image (code-like bytes, symbol tables, zero" \
		"  padding, a random section); release k rewrites 4 runs of 1 KiB at" \
		"  offsets of its own on top of release k-1. Per compression, a fresh" \
		"  deployment repository gets $RELEASES releases by" \
		"  \`DEPLOY_COMPRESSION=c deploy publish --no-signal\`. Loose growth:" \
		"  \`du -sb\` of the bare repository before and after each publish" \
		"  (median). After gc: plain \`git gc\` on a copy after release 1 and" \
		"  after release $RELEASES. Agent fetch: \`build/bench/fetch\` (bench/fetch.c)" \
		"  calls the agent's own \`ud_deployrepo_fetch\` into a mirror made at" \
		"  release 1; the figure is the mirror's \`du -sb\` growth per later" \
		"  release (median). git CLI: \`git fetch\` over file:// into a" \
		"  \`git clone --mirror\` made at release 1; the figure is the pack it" \
		"  received (\`GIT_TRACE_PACKFILE\`), median over later releases."
	STORAGE_SUMMARY=$d/summary
}

make_img_app "$T/app"
# What table 3 favours, from its own numbers: the compression that keeps
# the least per release in a packed repository plus what a host receives
# (ties: the faster publish). Lines of $1: name blob loose gc_avg
# gc_marginal agent_fetch git_fetch publish_ms.
conclude() {
	local best
	best=$(awk '{ print $5 + $7, $8, $1 }' "$1" | sort -g -k1,1 -k2,2 |
		head -n 1 | cut -d' ' -f3)
	echo
	echo "## What the numbers favour"
	echo
	echo "Default compression favoured by this run: **$best** (the least bytes"
	echo "per release kept by a packed deployment repository plus received by"
	echo "a \`git fetch\`; ties go to the faster publish)."
	echo
	awk '
	function sz(b) {
		if (b < 1048576)
			return sprintf("%.1f KiB", b / 1024)
		return sprintf("%.2f MiB", b / 1048576)
	}
	function line(col, secs,   i, s) {
		s = ""
		for (i = 1; i <= NR; i++)
			s = s (i > 1 ? ", " : "") name[i] " " \
				(secs ? sprintf("%.1f s", v[i, col] / 1000) : sz(v[i, col]))
		return s
	}
	{ name[NR] = $1; for (c = 2; c <= NF; c++) v[NR, c] = $c }
	END {
		print "- Packed (`git gc`), each further release costs: " line(5) "."
		print "- Loose, as the pipeline writes it: " line(3) ". git deflates"
		print "  every object it stores, so compressing the image beforehand"
		print "  saves little more here."
		print "- Received by `git fetch` per release: " line(7) "."
		print "- Release stage of a publish: " line(8, 1) "."
	}' "$1"
	cat <<'EOF'

Why: consecutive builds of an image differ in a few places. Uncompressed,
git's delta compression (run by `git gc`) stores each new release as a
delta of a few KiB against the previous one. Compressed, a small edit
changes the stream from the edit onward (gzip, xz) or at least the blocks
around it (zstd), so deltas find little and every release costs its whole
compressed size for ever: a fresh bzip2 image per release is how the old
approach's repository grew to ~900 MB.

An agent whose deployment repository is on the same machine fetches almost
nothing: its mirror borrows the repository's objects (objects/info/alternates,
as `git clone --shared`), so a sync moves refs only. (libgit2 1.5's local
transport would otherwise re-send the whole history on every fetch.) A host
that fetches over the network is what the `git fetch` row shows: no gain
from deltas today, whatever the compression, because git looks for the base
of a fetched object's delta only at the same path in the commits the
receiver already has, and each release lives under a new path
(`apps/<app>/releases/<n>/`), so a host receives the whole deflated image
per release.

The deployment repository is written by libgit2, which never packs on its
own: the packed figures hold once something runs `git gc` on it.
EOF
}

# The groups of later issues live in their own scripts, each printing one
# Markdown section (its table, then how it was measured).
section() { # $1: script under bench/
	local out=$T/section.md
	if "$top/bench/$1" >"$out"; then
		{ echo; cat "$out"; } >>"$results"
	else
		note "bench/$1 failed; its section is left out"
		{ echo; echo "## bench/$1"; echo; echo "Failed in this run (see the log)."; } >>"$results"
	fi
}
# A host's sshd runs the forced command through the deploy user's shell;
# this machine's root ~/.bashrc starts pyenv (0.1 CPU-s a command), which a
# deploy account would not: the fan-out is measured with it bound empty,
# and its cost shows in its own row.
# ---------------------------------------------------------------------------
# signing: what signing costs a publish, and an agent per fetched commit
# ---------------------------------------------------------------------------
bench_signing() {
	local d=$T/signing k plain signed commits us
	note "signing: $REPS publishes signed and unsigned, and the agent's check"
	mkdir -p "$d"
	ssh-keygen -q -t ed25519 -N '' -C bench -f "$d/key"
	echo "bench@example $(cat "$d/key.pub")" >"$d/allowed"
	(unset DEPLOY_SIGNING_KEY DEPLOY_SSH_KEY; "$deploy" init "$d/plain.git" >/dev/null)
	DEPLOY_SIGNING_KEY=$(cat "$d/key") "$deploy" init "$d/signed.git" >/dev/null
	: >"$d/plain"; : >"$d/signed"
	for k in $(seq "$REPS"); do
		"$tools/mkimage" "$d/img" "$k" 1
		(unset DEPLOY_SIGNING_KEY DEPLOY_SSH_KEY
		 publish_img "$d/plain.git" "$d/img" none "$d/p.$k") >>"$d/plain"
		DEPLOY_SIGNING_KEY=$(cat "$d/key") \
			publish_img "$d/signed.git" "$d/img" none "$d/s.$k" >>"$d/signed"
	done
	plain=$(median <"$d/plain"); signed=$(median <"$d/signed")
	read -r commits us < <("$tools/sigcheck" "$d/signed.git" "$d/allowed" 21)
	emit "" "## Signed releases" "" \
		"| figure | measured | baseline | ratio to baseline |" \
		"|---|---|---|---|" \
		"| \`deploy publish\` of a 1 MiB image, signed (median of $REPS) | $(secs "$signed") | unsigned: $(secs "$plain") | $(ratio "$signed" "$plain") |" \
		"| agent's signature check, per fetched commit ($commits commits, median of 21 walks) | $us µs | | |"
	method "- **Signed releases**: two deployment repositories made by \`deploy init\`," \
		"  one with \`DEPLOY_SIGNING_KEY\` (ed25519) and one without any key;" \
		"  $REPS times, alternating, \`deploy publish --no-signal\` of the same" \
		"  fresh 1 MiB image into each. Medians. The check is" \
		"  \`ud_deployrepo_verify_signed\` (what a sync with allowed_signers runs)" \
		"  over the signed repository's whole history (bench/sigcheck.c), its" \
		"  median time over 21 walks divided by the number of commits."
}

bench_fanout() { BENCH_LOGIN_RC=${BENCH_LOGIN_RC:-empty} section fanout.sh; }
bench_summon() { section summon.sh; }
bench_boot() { section boot.sh; }
bench_microvm() { section microvm.sh; }
bench_soak() { SYNCS=${SOAK_SYNCS:-10000} section soak.sh; }
bench_keepalive() { SWAPS=${BENCH_SWAPS:-100} section keepalive.sh; }

for group in ${BENCH_ONLY:-push publish signing storage fanout summon boot microvm soak keepalive}; do
	"bench_$group"
done

# ---------------------------------------------------------------------------
# RESULTS.md
# ---------------------------------------------------------------------------
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
{
	echo "# unideploy benchmark results"
	echo
	echo "Written by \`make bench\` (bench/run.sh); every figure is beside its"
	echo "baseline measured in the same run. Numbers, not thresholds."
	echo
	echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "- machine: $(nproc) CPUs (${cpu:-unknown}), $mem RAM, kernel $(uname -r)"
	echo "- git $(git --version | awk '{ print $3 }'), libgit2 $(pkg-config --modversion libgit2), commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	cat "$results"
	echo
	echo "## How each figure was measured"
	echo
	cat "$methods"
	[ -z "${STORAGE_SUMMARY:-}" ] || conclude "$STORAGE_SUMMARY"
} >"$OUT"
note "Wrote $OUT"
