#!/bin/sh
# A real, throwaway OpenSSH server for the tests (unit and integration).
#
#   tests/sshd.sh start DIR PORT [ADDR]   start sshd, wait until it listens
#   tests/sshd.sh known DIR PORT [ADDR]   print its known_hosts line
#   tests/sshd.sh stop DIR                stop it
#
# DIR gets a fresh ed25519 host key, sshd_config, sshd.log and sshd.pid.
# Other host keys the caller put there first (DIR/ssh_host_ecdsa_key,
# DIR/ssh_host_rsa_key) are served too, so a client's choice among several
# keys can be tested; `known` prints the ed25519 one.
# Logins are by public key only, for the user running the test (root in
# CI), against DIR/authorized_keys: the caller writes that file (an empty
# one is created); SSHD_USER_KEYS=1 also reads each user's own
# ~/.ssh/authorized_keys (gitolite writes its keys there). Run it under
# `ip netns exec NS` to give a namespace its own server.
set -eu

cmd=${1:?usage: sshd.sh start|known|stop DIR [PORT [ADDR]]}
dir=${2:?DIR}
port=${3:-22}
addr=${4:-127.0.0.1}

sshd_bin=/usr/sbin/sshd

case $cmd in
start)
	[ -x "$sshd_bin" ] || { echo "sshd.sh: $sshd_bin missing (apt-get install openssh-server)" >&2; exit 1; }
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[ -f "$dir/ssh_host_ed25519_key" ] ||
		ssh-keygen -q -t ed25519 -N '' -f "$dir/ssh_host_ed25519_key"
	[ -f "$dir/authorized_keys" ] || : >"$dir/authorized_keys"
	chmod 600 "$dir/authorized_keys"
	extra_keys=
	for k in "$dir/ssh_host_ecdsa_key" "$dir/ssh_host_rsa_key"; do
		if [ -f "$k" ]; then
			extra_keys="${extra_keys}HostKey $k
"
		fi
	done
	# sshd insists on its privilege separation directory.
	mkdir -p /run/sshd
	chmod 755 /run/sshd
	cat >"$dir/sshd_config" <<EOF
ListenAddress $addr
Port $port
HostKey $dir/ssh_host_ed25519_key
${extra_keys}PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys${SSHD_USER_KEYS:+ .ssh/authorized_keys}
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PrintMotd no
LogLevel VERBOSE
MaxStartups 100:30:200
EOF
	: >"$dir/sshd.log"
	"$sshd_bin" -f "$dir/sshd_config" -E "$dir/sshd.log"
	i=0
	until grep -q "Server listening" "$dir/sshd.log" 2>/dev/null; do
		i=$((i + 1))
		if [ $i -gt 1200 ]; then
			echo "sshd.sh: sshd did not start on $addr:$port:" >&2
			cat "$dir/sshd.log" >&2
			exit 1
		fi
		sleep 0.05
	done
	;;
known)
	if [ "$port" = 22 ]; then name=$addr; else name="[$addr]:$port"; fi
	printf '%s %s\n' "$name" "$(cut -d' ' -f1,2 "$dir/ssh_host_ed25519_key.pub")"
	;;
stop)
	if [ -f "$dir/sshd.pid" ]; then
		kill "$(cat "$dir/sshd.pid")" 2>/dev/null || true
		rm -f "$dir/sshd.pid"
	fi
	;;
*)
	echo "sshd.sh: unknown command '$cmd'" >&2
	exit 2
	;;
esac
