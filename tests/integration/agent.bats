#!/usr/bin/env bats
# The agent's side: health gating, crash restarts, surviving kill -9, digest
# checks (SPEC §5).

load helpers

has_instance_besides() {
	local p
	for p in $(instance_pids); do
		[ "$p" != "$1" ] && return 0
	done
	return 1
}

@test "a release failing its health check never takes traffic; old keeps serving; pusher told; rollback published" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	v1_pid=$(instance_pids)
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)"
	set_version v2
	commit_all "pong v2, unhealthy"
	start_load 2
	push
	stop_load
	# no client ever saw the unhealthy release, none failed
	[ "$LOAD_FAILED" -eq 0 ]
	[ "$LOAD_OK" -gt 0 ]
	for f in "$T"/load.*.bodies; do refute grep -qvx 'pong v1' "$f"; done
	[ "$(answer)" = "pong v1" ]
	# the pusher was told: the host failed, on health, and a rollback followed
	grep -Eiq '^remote: .*local.*(fail|unhealthy)' <<<"$PUSH_OUT"
	grep -Eiq '^remote: .*health' <<<"$PUSH_OUT"
	grep -Eiq '^remote: .*roll(ed )?back' <<<"$PUSH_OUT"
	# release 2 exists, release 3 restores 1 and is current
	manifest 2 >/dev/null
	[ "$(manifest 3 | jq -r .rollback_of)" = 1 ]
	[ "$(current_release)" = 3 ]
	[ "$(tags)" = "pong/v1 pong/v2 pong/v3 " ]
	# the rollback's image is release 1's blob
	f1=$(manifest 1 | jq -r '.images[0].file')
	f3=$(manifest 3 | jq -r '.images[0].file')
	[ "$(dgit rev-parse "main:apps/pong/releases/1/$f1")" = "$(dgit rev-parse "main:apps/pong/releases/3/$f3")" ]
	# the unhealthy instance is gone; one instance serves
	wait_until 60 instances_are 1
	[ "$(answer)" = "pong v1" ]
	[ "$(answer /health)" = ok ]
	echo "v1 instance was $v1_pid, now $(instance_pids)" >&2
}

@test "with on_failure keep, a failing release is reported and no rollback is published" {
	release_version v1
	write_deploy_json "$(pong_build_cmd -DHEALTH_STATUS=503)" '.health.on_failure = "keep"'
	release_version v2
	grep -Eiq '^remote: .*health' <<<"$PUSH_OUT"
	[ "$(current_release)" = 2 ]
	[ "$(tags)" = "pong/v1 pong/v2 " ]
	[ "$(answer)" = "pong v1" ]
}

@test "an instance that crashes (GET /crash) is restarted and answers again" {
	release_version v1
	old=$(instance_pids)
	[ -n "$old" ]
	curl -s --max-time 5 "http://$LISTEN/crash" || true
	# the crashed process is gone ...
	wait_until 60 gone "$old"
	# ... and a new one serves (backoff may delay the first restart a little)
	wait_until 60 answer_is "pong v1"
	new=$(instance_pids)
	[ "$(echo "$new" | wc -w)" -eq 1 ]
	[ "$new" != "$old" ]
}

@test "agent killed with -9 during a swap, then restarted: exactly one instance serving, no orphan" {
	release_version v1
	v1_pid=$(instance_pids)
	# v2 listens only once $T/gate exists: the swap stays open until the
	# test lets it finish, however busy the machine is
	write_deploy_json "$(pong_build_cmd "-DSTARTUP_GATE='\"$T/gate\"'")"
	set_version v2
	commit_all "pong v2"
	push 3>&- &
	pusher=$!
	# the moment the v2 instance exists, the swap is under way: kill the agent
	wait_until 120 has_instance_besides "$v1_pid"
	# still booting: v1 serves
	[ "$(answer)" = "pong v1" ]
	kill -KILL "$AGENT_PID"
	wait "$AGENT_PID" || true
	AGENT_PID=
	wait "$pusher" || true
	# a fresh agent takes over; v2 may come up now
	touch "$T/gate"
	start_agent
	agent_cli sync
	[ "$(current_release)" = 2 ]
	wait_until 60 answer_is "pong v2"
	# the v1 instance did not survive as an orphan, nor did the v2 one
	# the killed agent had started: one instance is left
	wait_until 60 gone "$v1_pid"
	wait_until 60 instances_are 1
	# and a second sync changes nothing
	pid=$(instance_pids)
	agent_cli sync
	[ "$(instance_pids)" = "$pid" ]
	[ "$(answer)" = "pong v2" ]
}

@test "agent killed with -9 while serving, then restarted: keeps one instance, still serving" {
	release_version v1
	stop_agent KILL
	start_agent
	agent_cli sync
	wait_until 60 answer_is "pong v1"
	[ "$(instance_count)" -eq 1 ]
	# status knows the instance it re-adopted or replaced
	agent_cli status --json | jq -e '.apps.pong.release == 1 and .apps.pong.instances == 1'
}

@test "an image whose digest does not match its manifest is refused, never booted" {
	release_version v1
	# forge release 2: release 1's image under a manifest with another sha256
	clone=$T/forge
	git clone -q "$DREPO" "$clone"
	cp -r "$clone/apps/pong/releases/1" "$clone/apps/pong/releases/2"
	jq '.release = 2 | .images[0].sha256 = ("0" * 64)' "$clone/apps/pong/releases/1/manifest.json" \
		>"$clone/apps/pong/releases/2/manifest.json"
	echo 2 >"$clone/apps/pong/current"
	git -C "$clone" add -A
	git -C "$clone" commit -q -m "forged release 2"
	git -C "$clone" push -q origin HEAD:main
	pid=$(instance_pids)
	run deploy signal pong
	echo "$output" >&2
	[ "$status" -eq 3 ]
	grep -Eiq 'sha256|digest' <<<"$output"
	grep -q local <<<"$output"
	[ "$(answer)" = "pong v1" ]
	[ "$(instance_pids)" = "$pid" ]
}

@test "garbage sent through the listen address gets 400 and the instance keeps serving" {
	release_version v1
	pid=$(instance_pids)
	run python3 - "${LISTEN%:*}" "${LISTEN##*:}" <<'EOF'
import os, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
def ask(data):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    out = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        out += d
    s.close()
    return out.split(b"\r\n", 1)[0].decode("latin-1")
print(ask(b"garbage\r\n\r\n"))
print(ask(os.urandom(20000)))
print(ask(b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"))
print(ask(b"GET /slow?ms=nope HTTP/1.1\r\n\r\n"))
EOF
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(grep -c '^HTTP/1.1 400 ' <<<"$output")" -eq 4 ]
	[ "$(answer)" = "pong v1" ]
	[ "$(instance_pids)" = "$pid" ]
}

@test "a damaged or half-written image in the agent's state is never booted" {
	release_version v1
	wait_until 60 answer_is "pong v1"
	sha=$(manifest 1 | jq -r '.images[0].sha256')
	img=$T/state/images/$sha
	[ -f "$img" ]
	stop_agent TERM
	# What a crash or a bad disk could leave: the final name with half its
	# bytes, and a temp file the agent never renamed.
	head -c 4096 "$img" >"$img.half" && mv "$img.half" "$img"
	head -c 4096 "$BIN/deploy" >"$T/state/images/.tmp-$sha-1-1"
	chmod 755 "$img" "$T/state/images/.tmp-$sha-1-1"
	start_agent
	agent_cli sync
	wait_until 60 answer_is "pong v1"
	grep -q "does not match its name" "$T/agent.log"
	# Every running instance is the whole, verified image.
	for pid in $(instance_pids); do
		[ "$(sha256sum "/proc/$pid/exe" | cut -d' ' -f1)" = "$sha" ]
	done
	[ "$(sha256sum "$img" | cut -d' ' -f1)" = "$sha" ]
}

@test "with agent.json user, instances run as that user with no_new_privs, in a run directory of their own" {
	instance_user
	stop_agent
	jq '.user = "udinst"' "$T/agent.json" >"$T/agent.json.new"
	mv "$T/agent.json.new" "$T/agent.json"
	start_agent
	grep -q 'instances run as user udinst' "$T/agent.log"
	release_version v1
	[ "$(answer)" = "pong v1" ]
	pid=$(instance_pids)
	[ "$(stat -c %U "/proc/$pid")" = udinst ]
	grep -Eq '^NoNewPrivs:[[:space:]]+1$' "/proc/$pid/status"
	[ "$(stat -c %U "$T/state/apps/pong/run")" = udinst ]
	# the agent's own files stay its own
	[ "$(stat -c %U:%a "$T/state/state.json")" = root:600 ]
	[ "$(stat -c %U "$T/state/apps/pong/logs")" = root ]
	# a restart after a crash runs as the user too
	curl -s --max-time 5 "http://$LISTEN/crash" || true
	wait_until 60 gone "$pid"
	wait_until 60 answer_is "pong v1"
	[ "$(stat -c %U "/proc/$(instance_pids)")" = udinst ]
}

@test "started as root the agent splits: a root parent spawns the instances; either half dying is handled, TERM still stops in order" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	child=$(pgrep -P "$AGENT_PID" -x deploy-agent)
	[ -n "$child" ]
	[ "$(ps -o user= -p "$AGENT_PID" | tr -d ' ')" = root ]
	grep -q "privileged parent pid $AGENT_PID, agent pid $child" "$T/agent.log"
	# the instance was spawned by the privileged parent, not the agent
	pid=$(instance_pids)
	[ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = "$AGENT_PID" ]

	# the agent's half dies: the parent exits non-zero, the instance stays
	kill -KILL "$child"
	st=0
	wait "$AGENT_PID" || st=$?
	AGENT_PID=
	[ "$st" -ne 0 ]
	kill -0 "$pid"
	grep -q "died of signal 9; its instances stay" "$T/agent.log"
	start_agent
	agent_cli sync >/dev/null
	[ "$(instance_pids)" = "$pid" ]
	[ "$(answer)" = "pong v1" ]

	# the parent dies: its agent notices and exits, the instance stays,
	# and the next agent adopts it
	child=$(pgrep -P "$AGENT_PID" -x deploy-agent)
	kill -KILL "$AGENT_PID"
	wait "$AGENT_PID" || true
	AGENT_PID=
	wait_until 10 gone "$child"
	grep -q "the privileged parent is gone" "$T/agent.log"
	kill -0 "$pid"
	start_agent
	agent_cli sync >/dev/null
	[ "$(instance_pids)" = "$pid" ]
	[ "$(answer)" = "pong v1" ]

	# TERM to the main pid: the orderly shutdown stops the instance
	child=$(pgrep -P "$AGENT_PID" -x deploy-agent)
	kill -TERM "$AGENT_PID"
	st=0
	wait "$AGENT_PID" || st=$?
	AGENT_PID=
	[ "$st" -eq 0 ]
	wait_until 10 gone "$pid"
	wait_until 10 gone "$child"
	tail -n 3 "$T/agent.log" | grep -q "stopped"
}

@test "an agent.json user that does not exist is refused by check and run, naming it" {
	jq '.user = "nosuchuserud"' "$T/agent.json" >"$T/bad.json"
	run "$AGENT_BIN" --config "$T/bad.json" check
	[ "$status" -ne 0 ]
	[[ "$output" == *"user nosuchuserud does not exist on this host"* ]]
	jq '.state_dir = "'"$T"'/state2" | .control = "unix:'"$T"'/agent2.sock"' \
		"$T/bad.json" >"$T/bad2.json"
	run "$AGENT_BIN" --config "$T/bad2.json" run
	[ "$status" -ne 0 ]
	[[ "$output" == *"user nosuchuserud does not exist on this host"* ]]
	[ ! -S "$T/agent2.sock" ]
	# without one, a root agent says its instances run as root
	grep -q 'instances run as root' "$T/agent.log"
}

@test "deploy-agent check tries what run needs: the repository, this host in fleet.json, state_dir, the socket's directory" {
	run "$AGENT_BIN" --config "$T/agent.json" check
	[ "$status" -eq 0 ]
	grep -q "^ok    repository $DREPO (main at [0-9a-f]*)$" <<<"$output"
	grep -q "^ok    host local in fleet.json (1 app placed here)$" <<<"$output"
	grep -q "^ok    state_dir $T/state (writable)$" <<<"$output"
	[ "${lines[-1]}" = "configuration OK" ]
	# each of these was "configuration OK" before, and failed at run time
	jq --arg d "$T/missing.git" '.repo = $d' "$T/agent.json" >"$T/c1.json"
	run "$AGENT_BIN" --config "$T/c1.json" check
	[ "$status" -eq 1 ]
	grep -q "^fail  repository: .*missing.git" <<<"$output"
	[ "${lines[-1]}" = "1 check failed" ]
	jq '.host = "ghost"' "$T/agent.json" >"$T/c2.json"
	run "$AGENT_BIN" --config "$T/c2.json" check
	[ "$status" -eq 1 ]
	grep -q "^fail  host ghost is not in fleet.json (hosts: local)$" <<<"$output"
	jq --arg c "unix:$T/nodir/agent.sock" '.control = $c' "$T/agent.json" >"$T/c3.json"
	run "$AGENT_BIN" --config "$T/c3.json" check
	[ "$status" -eq 1 ]
	grep -q "^fail  control unix:$T/nodir/agent.sock: its directory $T/nodir does not exist$" <<<"$output"
	touch "$T/afile"
	jq --arg s "$T/afile" '.state_dir = $s' "$T/agent.json" >"$T/c4.json"
	run "$AGENT_BIN" --config "$T/c4.json" check
	[ "$status" -eq 1 ]
	grep -q "^fail  state_dir $T/afile: not a directory$" <<<"$output"
	# a state_dir that does not exist yet is fine, and check leaves it so;
	# its temporary mirror goes under $TMPDIR (this test's own: suites
	# run side by side) and is gone afterwards
	jq --arg s "$T/new/state" '.state_dir = $s' "$T/agent.json" >"$T/c5.json"
	mkdir "$T/tmp"
	TMPDIR=$T/tmp run "$AGENT_BIN" --config "$T/c5.json" check
	[ "$status" -eq 0 ]
	[ ! -e "$T/new" ]
	[ -z "$(ls "$T/tmp" | grep '^deploy-agent-check\.')" ]
	# it is there that check makes it
	TMPDIR=$T/notmp run "$AGENT_BIN" --config "$T/c5.json" check
	[ "$status" -eq 1 ]
	grep -q "^fail  repository: cannot make a directory in $T/notmp: " <<<"$output"
	# both binaries say what they are
	[ "$("$AGENT_BIN" --version)" = "deploy-agent (unideploy) 0.1" ]
	[ "$(deploy --version)" = "deploy (unideploy) 0.1" ]
}
