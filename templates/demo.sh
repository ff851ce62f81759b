#!/usr/bin/env bash
# `make demo`: the whole flow on this one machine, nothing to configure
# (SPEC §9). Everything lives in a temporary directory that is removed on
# exit, and the agent (with every instance it started) is stopped.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
deploy=$top/bin/deploy
agent=$top/bin/deploy-agent
T=$(mktemp -d /tmp/unideploy-demo.XXXXXX)
agent_pid=

cleanup() {
	if [ -n "$agent_pid" ] && kill -0 "$agent_pid" 2>/dev/null; then
		kill -TERM "$agent_pid"
		for _ in $(seq 100); do
			kill -0 "$agent_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$agent_pid" 2>/dev/null || true
	fi
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

free_port() {
	local p
	for p in $(seq "$1" $(($1 + 200))); do
		ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
	done
	echo "no free port near $1" >&2
	exit 1
}
port=$(free_port 18080)
sport=$(free_port $((port + 1)))

export GIT_AUTHOR_NAME="Demo User" GIT_AUTHOR_EMAIL=demo@example.com
export GIT_COMMITTER_NAME="Demo User" GIT_COMMITTER_EMAIL=demo@example.com
export DEPLOY_CACHE_ROOT=$T/cache

say "A deployment repository, one local host, one app placed on it"
run "$deploy" init "$T/deploy.git"
export DEPLOY_REPO=$T/deploy.git
run "$deploy" host add local --agent "unix:$T/agent.sock"
run "$deploy" place pong --hosts local --mode boot --listen "127.0.0.1:$port"

say "A bare app repository with the pre-receive hook: a push is accepted once it is live"
run git init -q --bare -b main "$T/pong.git"
run "$deploy" hook install "$T/pong.git"

say "The pull agent for host 'local'"
cat >"$T/agent.json" <<JSON
{
  "host": "local",
  "repo": "$T/deploy.git",
  "state_dir": "$T/state",
  "control": "unix:$T/agent.sock",
  "poll_s": 60
}
JSON
"$agent" --config "$T/agent.json" run 2>"$T/agent.log" &
agent_pid=$!
for _ in $(seq 100); do [ -S "$T/agent.sock" ] && break; sleep 0.1; done
[ -S "$T/agent.sock" ] || { cat "$T/agent.log"; exit 1; }
echo "agent running (pid $agent_pid), log in $T/agent.log"

say "git push v1"
git clone -q "$T/pong.git" "$T/work" 2>/dev/null
cp "$top"/templates/pong/{pong.c,deploy.json} "$T/work/"
cd "$T/work"
echo v1 >VERSION
git add -A && git commit -qm "pong v1"
run git push origin main
say "It answers over HTTP"
run curl -fsS "http://127.0.0.1:$port/"

say "git push v2: health-gated, zero-downtime swap"
echo v2 >VERSION
git commit -qam "pong v2"
run git push origin main
run curl -fsS "http://127.0.0.1:$port/"

say "A summoned app: registered with zero instances, booted by its first request"
run "$deploy" place pong-summoned --hosts local --mode summon --listen "127.0.0.1:$sport" --idle-stop 2
git clone -q "$T/pong.git" "$T/work2" 2>/dev/null
git init -q --bare -b main "$T/pong-summoned.git"
"$deploy" hook install "$T/pong-summoned.git" >/dev/null
cd "$T/work2"
git remote set-url origin "$T/pong-summoned.git"
jq '.app = "pong-summoned"' deploy.json >deploy.json.new && mv deploy.json.new deploy.json
git commit -qam "pong-summoned v1"
run git push -q origin HEAD:main
instances() { "$agent" --config "$T/agent.json" status --json | jq ".apps[\"pong-summoned\"].instances"; }
echo "instances at rest: $(instances)"
printf '$ curl http://127.0.0.1:%s/   (wakes it)\n' "$sport"
curl -fsS -o /dev/null -w 'first request answered in %{time_total} s, boot included\n' "http://127.0.0.1:$sport/"
echo "instances now: $(instances)"
run "$agent" --config "$T/agent.json" status pong-summoned
echo "no request for 2 s: the idle stop ..."
for _ in $(seq 100); do [ "$(instances)" = 0 ] && break; sleep 0.1; done
echo "instances after the idle stop: $(instances)"
cd "$T/work"

say "deploy rollback: a new release made of v1's blobs"
run "$deploy" rollback pong
run curl -fsS "http://127.0.0.1:$port/"

say "deploy releases / deploy status"
run "$deploy" releases pong
run "$deploy" status

say "Done: stopping the agent and its instances, removing $T"
