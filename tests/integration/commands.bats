#!/usr/bin/env bats
# Fleet commands that check what they are asked (SPEC §4): deploy place
# refuses a listen address taken on a host and a target the release does
# not build, and moving an app signals the hosts it leaves; deploy host
# list / host remove, deploy remove APP, deploy build --worktree, and the
# --help of every command. Two real agents where hosts must act: "local"
# (helpers.bash) and "edge2", a second agent with its own state and socket.

load helpers

setup() {
	setup_world
	AGENT2_PID=
}

teardown() {
	stop_agent2
	teardown_world
}

agent2_answers() {
	env UD_IT_MARK="$T" "$AGENT_BIN" --config "$T/agent2.json" status --json 2>/dev/null |
		jq -e .ok >/dev/null
}

# start_agent2: host edge2 in the fleet and its agent running.
start_agent2() {
	deploy host add edge2 --agent "unix:$T/agent2.sock" >/dev/null
	mkdir -p "$T/state2"
	jq --arg s "$T/state2" --arg c "unix:$T/agent2.sock" \
		'.host = "edge2" | .state_dir = $s | .control = $c' \
		"$T/agent.json" >"$T/agent2.json"
	env UD_IT_MARK="$T" "$AGENT_BIN" --config "$T/agent2.json" run \
		>>"$T/agent2.log" 2>&1 3>&- &
	AGENT2_PID=$!
	wait_until 10 test -S "$T/agent2.sock"
	wait_until 10 agent2_answers
}

stop_agent2() {
	[ -n "${AGENT2_PID:-}" ] || return 0
	kill -TERM "$AGENT2_PID" 2>/dev/null || true
	if ! wait_until 5 gone "$AGENT2_PID"; then
		kill -KILL "$AGENT2_PID" 2>/dev/null || true
	fi
	wait "$AGENT2_PID" 2>/dev/null || true
	AGENT2_PID=
	[ "${BATS_TEST_COMPLETED:-}" = 1 ] || tail -n 40 "$T/agent2.log" >&2 2>/dev/null || true
}

# instances run by edge2's agent (an executable under its state dir)
instances2() {
	find /proc -mindepth 2 -maxdepth 2 -name exe -lname "$T/state2/*" \
		2>/dev/null | wc -l
}
instances2_are() { [ "$(instances2)" -eq "$1" ]; }
fleet() { dgit show main:fleet.json; }
refused() { ! curl -s --max-time 5 "http://$LISTEN/" >/dev/null; }

# ---- deploy place: listen address, target, moving -------------------------

@test "place: a listen address another app uses on the host is refused, naming app and host; fleet.json unchanged" {
	release_version v1
	before=$(main_rev)
	fleet_before=$(fleet)
	run --separate-stderr deploy place ping --hosts local --listen "$LISTEN"
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -qF "deploy: place ping: listen address $LISTEN is already used by app 'pong' on host 'local'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(fleet)" = "$fleet_before" ]
	# a wildcard on the same port takes it too
	run --separate-stderr deploy place ping --hosts local --listen "0.0.0.0:${LISTEN##*:}"
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qF "is already used by app 'pong' on host 'local'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	[ "$(answer)" = "pong v1" ]
	# another port on the same host is fine
	run deploy place ping --hosts local --listen "127.0.0.1:$(free_port)"
	[ "$status" -eq 0 ]
	fleet | jq -e '.apps.ping.hosts == ["local"]'
}

@test "place: the same listen address on another host is not a conflict" {
	deploy host add edge3 --agent "unix:$T/agent3.sock"
	run deploy place ping --hosts edge3 --listen "$LISTEN"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	# ... but moving ping onto local as well is
	before=$(main_rev)
	run --separate-stderr deploy place ping --hosts edge3,local
	[ "$status" -eq 1 ]
	grep -qF "already used by app 'pong' on host 'local'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
}

@test "place: a target the app's last release does not build is refused; before any release it is accepted" {
	release_version v1
	before=$(main_rev)
	run --separate-stderr deploy place pong --hosts local --target qemu
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qF "deploy: place pong: pong v1 builds no image for target 'qemu' (its images: unix/x86_64)" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	fleet | jq -e '.apps.pong.target == "unix"'
	[ "$(answer)" = "pong v1" ]
	# the target it builds is fine
	run deploy place pong --hosts local --target unix
	[ "$status" -eq 0 ]
	# an app with no release yet: nothing to check against
	run deploy place ping --hosts local --target qemu --listen "127.0.0.1:$(free_port)"
	[ "$status" -eq 0 ]
	fleet | jq -e '.apps.ping.target == "qemu"'
}

@test "place: moving an app signals the host it leaves, which stops it, and the new host serves it" {
	start_agent2
	release_version v1
	[ "$(answer)" = "pong v1" ]
	[ "$(instance_count)" -eq 1 ]
	run deploy place pong --hosts edge2
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q '^-----> local: pong stopped' <<<"$output"
	grep -q '^-----> edge2: pong v1 running' <<<"$output"
	# no wait: the command returns once the hosts answered
	[ "$(instance_count)" -eq 0 ]
	[ "$(instances2)" -eq 1 ]
	[ "$(answer)" = "pong v1" ]
	agent_cli status --json | jq -e '.apps | has("pong") | not'
	# and back: edge2 stops it, local serves it again
	run deploy place pong --hosts local
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q '^-----> edge2: pong stopped' <<<"$output"
	[ "$(instances2)" -eq 0 ]
	[ "$(instance_count)" -eq 1 ]
	[ "$(answer)" = "pong v1" ]
}

@test "place: a host it leaves that does not answer: committed, exit 3, the host named" {
	release_version v1
	deploy host add edge2 --agent "unix:$T/agent2.sock"
	deploy place pong --hosts local,edge2 --no-signal
	run --separate-stderr deploy place pong --hosts local
	echo "$output" >&2
	echo "$stderr" >&2
	[ "$status" -eq 3 ]
	grep -q '^-----> edge2: unreachable' <<<"$output"
	grep -q '^deploy: place pong: .*edge2' <<<"$stderr"
	fleet | jq -e '.apps.pong.hosts == ["local"]'
	[ "$(answer)" = "pong v1" ]
}

# ---- deploy host list / host remove ----------------------------------------

@test "host list: name, address, arch and the apps placed on each; --json" {
	deploy host add edge1 --ssh deploy@10.0.0.5:2222 --arch aarch64
	deploy host add spare --agent "unix:$T/spare.sock"
	deploy place ping --hosts edge1,local --listen "127.0.0.1:$(free_port)"
	run --separate-stderr deploy host list
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(wc -l <<<"$output")" -eq 4 ] # a header, then a line per host
	grep -Eq '^HOST +ADDRESS +ARCH +APPS$' <<<"$(sed -n 1p <<<"$output")"
	grep -Eq '^edge1 +ssh deploy@10\.0\.0\.5:2222 +aarch64 +ping$' <<<"$output"
	grep -Eq "^local +agent unix:$T/agent\.sock +- +ping,pong$" <<<"$output"
	grep -Eq "^spare +agent unix:$T/spare\.sock +- +-$" <<<"$output"
	run --separate-stderr deploy host list --json
	echo "$output" >&2
	[ "$status" -eq 0 ]
	jq -e 'map(.name) == ["edge1","local","spare"]' <<<"$output"
	jq -e '.[0] == {"name":"edge1","ssh":"deploy@10.0.0.5:2222","agent":null,"arch":"aarch64","apps":["ping"]}' <<<"$output"
	jq -e --arg a "unix:$T/agent.sock" '.[1] == {"name":"local","ssh":null,"agent":$a,"arch":null,"apps":["ping","pong"]}' <<<"$output"
	jq -e '.[2].apps == []' <<<"$output"
	# it reads, it never writes
	before=$(main_rev)
	deploy host list >/dev/null
	[ "$(main_rev)" = "$before" ]
}

@test "host remove: refused while apps are placed on it (named), fleet.json and main unchanged" {
	deploy place ping --hosts local --listen "127.0.0.1:$(free_port)"
	before=$(main_rev)
	run --separate-stderr deploy host remove local
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -qxF "deploy: host remove local: host 'local' still has apps placed on it: ping, pong (move them with deploy place or remove them with deploy remove first)" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
	dgit show main:fleet.json | jq -e '.hosts | has("local")'
}

@test "host remove: an unknown host or a bad name is refused, nothing changes" {
	before=$(main_rev)
	run --separate-stderr deploy host remove nosuchhost
	[ "$status" -eq 1 ]
	grep -qxF "deploy: host remove nosuchhost: host 'nosuchhost' is not in fleet.json" <<<"$stderr"
	run --separate-stderr deploy host remove ../x
	[ "$status" -eq 1 ]
	grep -q "^deploy: host remove ../x: .*'../x'" <<<"$stderr"
	run --separate-stderr deploy host remove
	[ "$status" -eq 2 ]
	run --separate-stderr deploy host frobnicate
	[ "$status" -eq 2 ]
	grep -qF "unknown subcommand 'frobnicate'" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
}

@test "host remove: a host without apps goes in one commit" {
	deploy host add spare --agent "unix:$T/spare.sock"
	before=$(main_rev)
	run deploy host remove spare
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(dgit rev-parse main~1)" = "$before" ]
	[ "$(dgit log -1 --format=%s main)" = "fleet: remove host spare" ]
	dgit show main:fleet.json | jq -e '.hosts | keys == ["local"]'
	[ "$(dgit diff --name-only "$before" main)" = fleet.json ]
}

# ---- deploy remove APP ------------------------------------------------------

@test "remove APP: unplaced in one commit, its hosts stop it and free its address; releases and tags stay" {
	# one host: two agents of one machine cannot both bind the address
	release_version v1
	release_version v2
	[ "$(answer)" = "pong v2" ]
	[ "$(instance_count)" -eq 1 ]
	before=$(main_rev)
	tags_before=$(tags)
	run deploy remove pong
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q '^pong: removed from local ' <<<"$output"
	grep -q '^-----> local: pong stopped' <<<"$output"
	[ "$(dgit rev-parse main~1)" = "$before" ]
	[ "$(dgit log -1 --format=%s main)" = "fleet: remove pong" ]
	[ "$(dgit diff --name-only "$before" main)" = fleet.json ]
	dgit show main:fleet.json | jq -e '.apps | has("pong") | not'
	# stopped everywhere, the address free: nothing answers, we can bind it
	[ "$(instance_count)" -eq 0 ]
	agent_cli status --json | jq -e '.apps | has("pong") | not'
	refused
	python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((h,int(p)))' "$LISTEN"
	# the history is all there
	[ "$(tags)" = "$tags_before" ]
	[ "$(current_release)" = 2 ]
	run deploy releases pong --json
	[ "$status" -eq 0 ]
	jq -e 'map(.release) == [2,1] and .[0].current' <<<"$output"
	# placing it again brings the current release back
	run deploy place pong --hosts local --listen "$LISTEN"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	[ "$(answer)" = "pong v2" ]
}

@test "remove: an unknown or unplaced app is refused, nothing changes" {
	release_version v1
	before=$(main_rev)
	run --separate-stderr deploy remove nosuchapp
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	[ "$(wc -l <<<"$stderr")" -eq 1 ]
	grep -qxF "deploy: remove nosuchapp: app 'nosuchapp' is not placed on any host" <<<"$stderr"
	run --separate-stderr deploy remove ../x
	[ "$status" -eq 1 ]
	grep -qF "'../x'" <<<"$stderr"
	run --separate-stderr deploy remove
	[ "$status" -eq 2 ]
	[ "$(main_rev)" = "$before" ]
	[ "$(answer)" = "pong v1" ]
	# removed once, a second remove is refused the same way
	deploy remove pong
	after=$(main_rev)
	run --separate-stderr deploy remove pong
	[ "$status" -eq 1 ]
	grep -qF "app 'pong' is not placed on any host" <<<"$stderr"
	[ "$(main_rev)" = "$after" ]
}

# ---- deploy build --worktree -------------------------------------------------

# run_image FILE: start a built pong image, print its answer, stop it
run_image() {
	local port pid body
	port=$(free_port)
	PORT=$port "$1" >/dev/null 2>&1 3>&- &
	pid=$!
	wait_until 30 curl -sf -o /dev/null "http://127.0.0.1:$port/health" || { kill "$pid"; return 1; }
	body=$(curl -s "http://127.0.0.1:$port/")
	kill "$pid"
	wait "$pid" || true
	echo "$body"
}

# what --worktree must leave as it was: HEAD, the index, the status, objects
work_state() {
	git -C "$W" rev-parse HEAD
	sha256sum <"$W/.git/index"
	git -C "$W" status --porcelain
	find "$W/.git/objects" -type f | sort
	git -C "$W" for-each-ref
}

@test "build --worktree builds uncommitted changes and untracked files; the repository and main are untouched" {
	set_version v1
	commit_all "pong v1"
	# uncommitted: a changed tracked file, an untracked one the build reads
	set_version v9-dirty
	echo '-DEXTRA_UNUSED=1' >"$W/extra.flags"
	write_deploy_json "mkdir -p dist && cat extra.flags >/dev/null && cc -O2 -DVERSION=\"\\\"\$(cat VERSION)\\\"\" -o dist/pong pong.c -lpthread"
	state_before=$(work_state)
	before=$(main_rev)
	run deploy build --source "$W" --worktree --out "$T/out"
	echo "$output" >&2
	[ "$status" -eq 0 ]
	grep -q "^-----> pong: building [0-9a-f]\{7\} working tree of $(git -C "$W" rev-parse --short=7 HEAD) (uncommitted changes included)" <<<"$output"
	[ "$(run_image "$T/out/unix-x86_64.img")" = "pong v9-dirty" ]
	[ "$(work_state)" = "$state_before" ]
	[ "$(main_rev)" = "$before" ]
	[ -z "$(tags)" ]
	# without --worktree: the commit, as before
	run deploy build --source "$W" --out "$T/out2"
	[ "$status" -eq 0 ]
	[ "$(run_image "$T/out2/unix-x86_64.img")" = "pong v1" ]
}

@test "build --worktree reads the uncommitted deploy.json: a typo in it fails the build, the commit still builds" {
	set_version v1
	commit_all "pong v1"
	write_deploy_json "" '.bulid = {"command": "true"}'
	run --separate-stderr deploy build --source "$W" --worktree
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qF "unknown key 'bulid'" <<<"$stderr"
	run deploy build --source "$W"
	[ "$status" -eq 0 ]
	# a tracked file deleted in the working tree is not built
	git -C "$W" checkout -q deploy.json
	rm "$W/pong.c"
	run --separate-stderr deploy build --source "$W" --worktree
	echo "$output$stderr" >&2
	[ "$status" -eq 1 ]
	grep -q 'pong.c' <<<"$output$stderr"
	[ -n "$(git -C "$W" status --porcelain pong.c)" ]
}

@test "build --worktree: refused for a bare repository and with --commit, nothing built" {
	set_version v1
	commit_all "pong v1"
	push
	before=$(main_rev)
	run --separate-stderr deploy build --source "$APPREPO" --worktree
	echo "$stderr" >&2
	[ "$status" -eq 1 ]
	grep -qF "is a bare repository: it has no working tree to build" <<<"$stderr"
	run --separate-stderr deploy build --source "$W" --worktree --commit HEAD
	[ "$status" -eq 2 ]
	grep -qF -- "--commit and --worktree exclude each other" <<<"$stderr"
	[ "$(main_rev)" = "$before" ]
}

# ---- --help names every option ---------------------------------------------

# "<function> <option>" for every long option a command's parser accepts,
# read from the source: each function taking (argc, argv) in
# cmd/deploy/*.c, the names in its option tables, and "COMMON" where it
# splices CLI_COMMON_OPTIONS or parses with cli_no_options.
parser_options() {
	awk '
		FNR == 1 { fn = "" }
		/^[a-z].*\(/ {
			fn = ""
			if (match($0, /^(static )?int [a-z_]+\(int argc, char \*\*argv\)/)) {
				sub(/^(static )?int /, "")
				sub(/\(.*/, "")
				fn = $0
			}
		}
		fn != "" && /CLI_COMMON_OPTIONS|cli_no_options\(/ { print fn, "COMMON" }
		fn != "" && /\{ "[a-z-]+", (no|required|optional)_argument/ {
			match($0, /"[a-z-]+"/)
			print fn, substr($0, RSTART + 1, RLENGTH - 2)
		}
	' "$ROOT"/cmd/deploy/*.c | sort -u
}
common_options() {
	sed -n '/^#define CLI_COMMON_OPTIONS/,/^$/p' "$ROOT/cmd/deploy/cli.h" |
		grep -o '{ "[a-z-]*", [a-z]*_argument' | cut -d'"' -f2
}
# cmd_place -> "place", host_add -> "host add"
command_of() { case $1 in cmd_*) echo "${1#cmd_}" ;; *) echo "${1%%_*} ${1#*_}" ;; esac; }
# help_block HELP OPTION: the lines that document --OPTION
help_block() {
	awk -v o="--$2" '
		/^  --/ { on = ($1 == o) }
		/^$/ { on = 0 }
		on' <<<"$1"
}

@test "--help of every command names each option its parser accepts, each with its default" {
	parser_options >"$T/opts"
	cat "$T/opts" >&2
	# the derivation found the commands and their options
	[ "$(wc -l <"$T/opts")" -ge 30 ]
	grep -qx 'cmd_place hosts' "$T/opts"
	grep -qx 'cmd_build worktree' "$T/opts"
	grep -qx 'host_add ssh' "$T/opts"
	grep -qx 'host_list COMMON' "$T/opts"
	grep -qx 'cmd_remove no-signal' "$T/opts"
	[ "$(common_options | wc -l)" -eq 6 ]
	checked=0
	for fn in $(cut -d' ' -f1 "$T/opts" | sort -u); do
		cmd=$(command_of "$fn")
		run --separate-stderr deploy $cmd --help
		echo "--- deploy $cmd --help (status $status):" >&2
		echo "$output" >&2
		[ "$status" -eq 0 ]
		grep -q "^usage: deploy $cmd" <<<"$output"
		for opt in $(awk -v f="$fn" '$1 == f { print $2 }' "$T/opts"); do
			if [ "$opt" = COMMON ]; then
				for o in $(common_options); do
					[ -n "$(help_block "$output" "$o")" ] || { echo "deploy $cmd --help lacks --$o" >&2; false; }
				done
				continue
			fi
			block=$(help_block "$output" "$opt")
			[ -n "$block" ] || { echo "deploy $cmd --help lacks --$opt" >&2; false; }
			grep -Eq 'default|required' <<<"$block" || { echo "deploy $cmd: --$opt has no default" >&2; false; }
			checked=$((checked + 1))
		done
	done
	[ "$checked" -ge 20 ]
	# every command of `deploy --help` answers --help
	for cmd in $(deploy --help | awk '/^commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }'); do
		run deploy "$cmd" --help
		[ "$status" -eq 0 ] || { echo "deploy $cmd --help: status $status" >&2; false; }
	done
}
