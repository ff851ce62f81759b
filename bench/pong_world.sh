# bench/pong_world.sh: sourced by bench scripts (needs $deploy and $agent).
#
# pong_world DIR: in DIR a deployment repository ($DEPLOY_REPO, exported)
# with host "local" and pong placed in boot mode on a free port ($port), a
# bare app repository DIR/pong.git with the hook, and an agent started on
# it ($agent_pid) that answers `status`. Returns 1, its log on stderr, when
# the agent does not come up.
pong_world() {
	local d=$1
	mkdir -p "$d/state"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	export DEPLOY_REPO=$d/deploy.git
	"$deploy" init "$DEPLOY_REPO" >/dev/null
	"$deploy" host add local --agent "unix:$d/agent.sock" >/dev/null
	"$deploy" place pong --hosts local --mode boot --listen "127.0.0.1:$port" >/dev/null
	git init -q --bare -b main "$d/pong.git"
	"$deploy" hook install "$d/pong.git" >/dev/null
	jq -n --arg repo "$DEPLOY_REPO" --arg state "$d/state" \
		--arg ctl "unix:$d/agent.sock" \
		'{host: "local", repo: $repo, state_dir: $state, control: $ctl, poll_s: 3600}' \
		>"$d/agent.json"
	"$agent" --config "$d/agent.json" run >"$d/agent.log" 2>&1 &
	agent_pid=$!
	for _ in $(seq 100); do
		"$agent" --config "$d/agent.json" status >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$agent" --config "$d/agent.json" status >/dev/null 2>&1 ||
		{ cat "$d/agent.log" >&2; return 1; }
}
