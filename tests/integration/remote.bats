#!/usr/bin/env bats
# Deployment repositories given as ssh:// and https:// URLs (SPEC §4): the
# CLI works through its cache mirror under $DEPLOY_CACHE_ROOT/repos and
# pushes without force. Real servers: an sshd (tests/sshd.sh) whose login
# key runs git-upload-pack/git-receive-pack through root's shell, and an
# HTTPS smart-git server (git http-backend behind python3's http.server
# with a throwaway CA). Every change is checked on the ORIGIN with plain
# git, never through the cache.

load helpers

setup() {
	setup_world
	# --no-signal everywhere: the local agent has nothing to do here
	stop_agent
	unset DEPLOY_REPO
	SSHD_DIR= HTTPS_PID=
	ORIGIN=$T/origin/deploy.git
	mkdir -p "$T/origin"
	deploy init "$ORIGIN" >/dev/null
	# the work clone, committed: publish builds a commit
	commit_all "pong v1"
}

teardown() {
	local rc=0
	[ -z "$SSHD_DIR" ] || sh "$ROOT/tests/sshd.sh" stop "$SSHD_DIR" || rc=1
	if [ -n "$HTTPS_PID" ]; then
		kill "$HTTPS_PID" 2>/dev/null || true
		wait "$HTTPS_PID" 2>/dev/null || true
	fi
	teardown_world || rc=1
	return $rc
}

# Plain git on the origin.
ogit() { git --git-dir="$ORIGIN" "$@"; }
origin_tags() { ogit tag -l "$APP/v*" | sort -V | tr '\n' ' '; }
origin_current() { ogit show "main:apps/$APP/current"; }
origin_releases() { ogit ls-tree --name-only "main:apps/$APP/releases" | sort -n | tr '\n' ' '; }
# seq_list N: "1 2 ... N " as origin_tags/origin_releases print them
tag_list() { local i; for ((i = 1; i <= $1; i++)); do printf '%s/v%d ' "$APP" "$i"; done; }
num_list() { local i; for ((i = 1; i <= $1; i++)); do printf '%d ' "$i"; done; }

# `deploy` against $URL; the ssh key and known_hosts come from $SSH_ARGS
# (empty for https). Output: bats run ($status, $output, $stderr).
rdeploy() {
	run --separate-stderr deploy "$@" --deploy-repo "$URL" "${SSH_ARGS[@]}"
	printf '%s\n' "--- deploy $* (status $status):" "$output" "--- stderr:" "$stderr" >&2
}

# The origin after release N of pong: main holds it as current, its
# manifest names the work clone's commit, tag pong/vN is on a commit of
# main whose current is N, and every earlier release is still there.
origin_has_release() {
	local n=$1 commit=${2:-$(git -C "$W" rev-parse HEAD)}
	[ "$(origin_current)" = "$n" ]
	[ "$(origin_releases)" = "$(num_list "$n")" ]
	[ "$(origin_tags)" = "$(tag_list "$n")" ]
	[ "$(ogit cat-file -t "$APP/v$n")" = tag ]
	[ "$(ogit show "$APP/v$n^{commit}:apps/$APP/current")" = "$n" ]
	ogit merge-base --is-ancestor "$APP/v$n^{commit}" main
	[ "$(ogit show "main:apps/$APP/releases/$n/manifest.json" | jq -r .source.commit)" = "$commit" ]
}

# ssh_world: an sshd on a free port serving $ORIGIN to a fresh key; $URL,
# $KEY, $T/known_hosts and $SSH_ARGS for rdeploy.
ssh_world() {
	local port
	KEY=$T/keys/id_ed25519
	mkdir -p "$T/keys" "$T/sshd"
	ssh-keygen -q -t ed25519 -N '' -f "$KEY"
	# no forced command: git-receive-pack runs through root's shell
	cp "$KEY.pub" "$T/sshd/authorized_keys"
	port=$(free_port)
	SSHD_DIR=$T/sshd
	sh "$ROOT/tests/sshd.sh" start "$SSHD_DIR" "$port"
	sh "$ROOT/tests/sshd.sh" known "$SSHD_DIR" "$port" >"$T/known_hosts"
	URL=ssh://root@127.0.0.1:$port$ORIGIN
	SSH_ARGS=(--identity "$KEY" --known-hosts "$T/known_hosts")
}

# https_world: a throwaway CA, a certificate for localhost signed by it,
# and a smart-HTTP git server over TLS for $T/origin; $URL, $CA.
https_world() {
	local port d=$T/tls
	command -v python3 >/dev/null
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/ca.key" -out "$d/ca.pem" -days 1 \
		-subj "/CN=unideploy test CA" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$d/san"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
		-CAcreateserial -out "$d/server.pem" -days 1 -extfile "$d/san" 2>/dev/null
	CA=$d/ca.pem
	write_https_server "$T/githttps.py"
	port=$(free_port)
	env UD_IT_MARK="$T" python3 "$T/githttps.py" "$port" "$T/origin" \
		"$d/server.pem" "$d/server.key" >"$T/https.log" 2>&1 3>&- &
	HTTPS_PID=$!
	wait_until 60 grep -q '^listening' "$T/https.log"
	# mbedTLS 2.28 (Debian's libgit2 backend) matches names, not IP SANs
	URL=https://localhost:$port/deploy.git
	SSH_ARGS=()
}

# The HTTPS server: each request handed to `git http-backend` as CGI
# (RFC 3875), its answer relayed. Pushes are allowed because the request
# arrives with REMOTE_USER set, as behind a server that authenticated it.
write_https_server() {
	cat >"$1" <<'EOF'
# usage: python3 githttps.py PORT PROJECT_ROOT CERT KEY
import http.server, os, ssl, subprocess, sys

port, root, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


class GitBackend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # libgit2 keeps the connection alive

    def body(self):
        # libgit2 sends a push's pack chunked
        if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))
        data = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0], 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def cgi(self):
        path, _, query = self.path.partition("?")
        data = self.body()
        env = dict(os.environ, GIT_PROJECT_ROOT=root, GIT_HTTP_EXPORT_ALL="1",
                   REMOTE_USER="deployer", REQUEST_METHOD=self.command,
                   PATH_INFO=path, QUERY_STRING=query,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(data)))
        for header, var in (("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                            ("Git-Protocol", "GIT_PROTOCOL")):
            if self.headers.get(header):
                env[var] = self.headers[header]
        out = subprocess.run(["git", "http-backend"], input=data, env=env,
                             stdout=subprocess.PIPE).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = cgi


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), GitBackend)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(cert, key)
server.socket = tls.wrap_socket(server.socket, server_side=True)
print("listening", flush=True)
server.serve_forever()
EOF
}

# The cycle both transports must carry: host add, place, two publishes,
# releases (text and --json), a rollback; the origin checked after each.
full_cycle() {
	local v1 v2 before
	rdeploy host add edge1 --agent "unix:$T/edge1.sock"
	[ "$status" -eq 0 ]
	[ "$(ogit show main:fleet.json | jq -r .hosts.edge1.agent)" = "unix:$T/edge1.sock" ]
	[ "$(ogit log --format=%s -1 main)" != "Create deployment repository" ]

	rdeploy place "$APP" --hosts edge1 --listen "$LISTEN"
	[ "$status" -eq 0 ]
	[ "$(ogit show main:fleet.json | jq -c ".apps.$APP.hosts")" = '["edge1"]' ]

	v1=$(git -C "$W" rev-parse HEAD)
	rdeploy publish --source "$W" --no-signal
	[ "$status" -eq 0 ]
	origin_has_release 1 "$v1"

	set_version v2
	commit_all "pong v2"
	v2=$(git -C "$W" rev-parse HEAD)
	rdeploy publish --source "$W" --no-signal
	[ "$status" -eq 0 ]
	origin_has_release 2 "$v2"
	# one commit per change on the origin: init, host, place, 2 releases
	[ "$(ogit rev-list --count main)" -eq 5 ]

	rdeploy releases "$APP"
	[ "$status" -eq 0 ]
	# newest first, the current one marked
	[ "$(cut -c1-4 <<<"$output" | tr '\n' '|')" = "* v2|  v1|" ]
	grep -q "^\* v2 .* pong v2$" <<<"$output"
	rdeploy releases "$APP" --json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.[] | .release]' <<<"$output")" = '[2,1]' ]
	[ "$(jq -c '[.[] | .current]' <<<"$output")" = '[true,false]' ]
	[ "$(jq -r '.[1].commit' <<<"$output")" = "$v1" ]

	before=$(ogit rev-parse main)
	rdeploy rollback "$APP" --no-signal
	[ "$status" -eq 0 ]
	[ "$(origin_current)" = 3 ]
	[ "$(origin_tags)" = "$(tag_list 3)" ]
	[ "$(ogit show "main:apps/$APP/releases/3/manifest.json" | jq -r .rollback_of)" = 1 ]
	[ "$(ogit show "main:apps/$APP/releases/3/manifest.json" | jq -r .source.commit)" = "$v1" ]
	# the same image blobs as release 1
	[ "$(ogit ls-tree "main:apps/$APP/releases/3" | grep '\.img$' | awk '{print $3}')" = \
		"$(ogit ls-tree "main:apps/$APP/releases/1" | grep '\.img$' | awk '{print $3}')" ]
	[ "$(ogit rev-parse main~1)" = "$before" ]
	rdeploy releases "$APP"
	grep -q '^\* v3 .*rollback of v1$' <<<"$output"
	rdeploy releases "$APP" --json
	[ "$(jq -c '[.[] | .release]' <<<"$output")" = '[3,2,1]' ]
	[ "$(jq '.[0].rollback_of' <<<"$output")" = 1 ]

	# all of it went through the cache mirror, which follows the origin
	[ "$(git --git-dir="$(echo "$DEPLOY_CACHE_ROOT"/repos/*.git)" rev-parse main)" = "$(ogit rev-parse main)" ]
}

@test "ssh://: host add, place, publish twice, releases, rollback reach the origin" {
	ssh_world
	full_cycle
}

@test "ssh://: the key in DEPLOY_SSH_KEY and known_hosts in DEPLOY_KNOWN_HOSTS" {
	ssh_world
	SSH_ARGS=()
	export DEPLOY_SSH_KEY DEPLOY_KNOWN_HOSTS
	DEPLOY_SSH_KEY=$(cat "$KEY")
	DEPLOY_KNOWN_HOSTS=$T/known_hosts
	rdeploy place "$APP" --hosts local --listen "$LISTEN"
	# no host "local" on this origin yet
	[ "$status" -ne 0 ]
	rdeploy host add local --agent "unix:$T/agent.sock"
	[ "$status" -eq 0 ]
	rdeploy place "$APP" --hosts local --listen "$LISTEN"
	[ "$status" -eq 0 ]
	rdeploy publish --source "$W" --no-signal
	[ "$status" -eq 0 ]
	origin_has_release 1
	# an unknown host key: refused with its fingerprint, nothing changed
	before=$(ogit rev-parse main)
	: >"$T/known_hosts"
	rdeploy publish --source "$W" --no-signal
	[ "$status" -ne 0 ]
	grep -q 'SHA256:' <<<"$stderr"
	[ "$(ogit rev-parse main)" = "$before" ]
}

@test "ssh://: two machines (two caches) publishing at once give releases 1..N" {
	ssh_world
	rdeploy host add edge1 --agent "unix:$T/edge1.sock"
	rdeploy place "$APP" --hosts edge1 --listen "$LISTEN"
	[ "$status" -eq 0 ]
	# each "machine" publishes twice in a row, both at the same time
	local m pids=() rc=0
	for m in a b; do
		(
			export DEPLOY_CACHE_ROOT=$T/cache-$m
			for i in 1 2; do
				deploy publish --source "$W" --no-signal --deploy-repo "$URL" \
					"${SSH_ARGS[@]}" >>"$T/publish-$m.out" 2>&1 || exit 1
			done
		) 3>&- &
		pids+=($!)
	done
	for m in "${pids[@]}"; do wait "$m" || rc=1; done
	cat "$T"/publish-?.out >&2
	[ "$rc" -eq 0 ]
	[ "$(origin_current)" = 4 ]
	[ "$(origin_releases)" = "1 2 3 4 " ]
	[ "$(origin_tags)" = "$(tag_list 4)" ]
	# each tag on its own commit, each holding its own number as current
	for i in 1 2 3 4; do
		[ "$(ogit show "$APP/v$i^{commit}:apps/$APP/current")" = "$i" ]
	done
	[ "$(for i in 1 2 3 4; do ogit rev-parse "$APP/v$i^{commit}"; done | sort -u | wc -l)" -eq 4 ]
	# a linear history: no commit was forced away
	[ "$(ogit rev-list --count --merges main)" -eq 0 ]
	[ "$(ogit rev-list --count main)" -eq 7 ]
	# both caches were used
	ls "$T"/cache-a/repos/*.git "$T"/cache-b/repos/*.git >/dev/null
}

@test "https://: host add, place, publish twice, releases, rollback reach the origin (CA from SSL_CERT_FILE)" {
	https_world
	git --git-dir="$ORIGIN" config http.receivepack true
	export SSL_CERT_FILE=$CA
	unset SSL_CERT_DIR
	full_cycle
}

@test "https://: a certificate not signed by a trusted CA is refused, nothing changes" {
	https_world
	before=$(ogit rev-parse main)
	unset SSL_CERT_FILE SSL_CERT_DIR
	rdeploy host add edge1 --agent "unix:$T/edge1.sock"
	[ "$status" -ne 0 ]
	grep -qi 'certificate' <<<"$stderr"
	grep -qF "$URL" <<<"$stderr"
	rdeploy releases "$APP"
	[ "$status" -ne 0 ]
	grep -qi 'certificate' <<<"$stderr"
	[ "$(ogit rev-parse main)" = "$before" ]
	# the cache holds no main it could have taken from the server
	refute git --git-dir="$(echo "$DEPLOY_CACHE_ROOT"/repos/*.git)" rev-parse -q --verify main
	# a CA file that is no CA bundle is an error saying so, not a silent default
	echo "not a certificate" >"$T/bogus.pem"
	SSL_CERT_FILE=$T/bogus.pem rdeploy releases "$APP"
	[ "$status" -ne 0 ]
	grep -q 'SSL_CERT_FILE' <<<"$stderr"
}
