#!/usr/bin/env bats
# A guest with its own TCP/IP stack on the agent's network (issue 10): a
# real Linux microVM made from Debian packages (tests/fixtures/microvm: a
# Debian kernel and a busybox-static initramfs whose /init takes its
# address from the kernel command line and serves HTTP), pushed through
# the whole pipeline and booted by qemu (TCG) on a tap the agent creates on
# its bridge. The agent runs in a network namespace of the test's own, so
# its bridge, taps and addresses never touch the machine's.

load helpers

APP=micro
SUBNET=10.213.7.0/24

# The taps in the namespace (the agent's start with "ud"), and the bridge's
# ports.
taps() { ip -n "$NS" -br link show type tun 2>/dev/null | awk '{print $1}' | sed 's/@.*//' | sort; }
bridge_ports() { ip -n "$NS" -br link show master udbr0 2>/dev/null | awk '{print $1}' | sed 's/@.*//' | sort; }
# Addresses the agent recorded for the app's instances.
addresses() { jq -r ".apps.$APP.instances[].address // empty" "$T/state/state.json" | sort; }

setup_file() {
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
	export MICROVM_DIR=${MICROVM_DIR:-$ROOT/build/microvm}
	# the build reads the kernel from there: the sandbox shows it to
	# the build read-only (docs/builds.md)
	export DEPLOY_BUILD_RO_PATHS=$MICROVM_DIR
	sh "$ROOT/tests/fixtures/microvm/fetch-kernel.sh" "$MICROVM_DIR" >&2
}

# write_micro_app [JQ_EDIT]: the work clone becomes the microVM's app
# repository; its build makes the kernel and an initrd serving VERSION.
write_micro_app() {
	local edit=${1:-.}
	rm -f "$W/pong.c"
	sh "$ROOT/tests/fixtures/microvm/app.sh" "$W" "$MICROVM_DIR"
	jq "$edit" "$W/deploy.json" >"$W/deploy.json.new"
	mv "$W/deploy.json.new" "$W/deploy.json"
}

setup() {
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
	it_begin
	NS=$(it_name udmv)
	it_netns_add "$NS" || skip "cannot create a network namespace"
	NS_EXEC="ip netns exec $NS"
	AGENT_JQ=".network = {bridge: \"udbr0\", subnet: \"$SUBNET\"}"
	setup_world
	deploy place "$APP" --hosts local --listen "$LISTEN" --target qemu
	write_micro_app
}

teardown() {
	local left
	[ -n "${T:-}" ] || return 0
	stop_agent_and_vms 30
	left=$VMS_LEFT
	echo "--- agent log:" >&2
	tail -n 40 "$T/agent.log" >&2 || true
	# before teardown_world gives the name back for another test to take
	ip netns del "$NS" 2>/dev/null || true
	teardown_world
	if [ -n "$left" ]; then
		echo "qemu left running: $left" >&2
		return 1
	fi
}

@test "a microVM on its own address serves through the listen address; a new release swaps with zero failed requests" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	# it answers at the address the agent gave it, on its own stack
	a1=$(addresses)
	[ "$(echo "$a1" | wc -l)" -eq 1 ]
	[[ $a1 == 10.213.7.* ]]
	[ "$a1" != 10.213.7.1 ]
	[ "$($NS_EXEC curl -s --max-time 5 "http://$a1:8080/")" = "pong v1" ]
	# the bridge has the gateway address; the tap is its port
	ip -n "$NS" -4 addr show udbr0 | grep -q "inet 10.213.7.1/24"
	[ "$(taps | wc -l)" -eq 1 ]
	[ "$(bridge_ports)" = "$(taps)" ]
	tap1=$(taps)
	# the guest was given run.args with the placeholders filled
	grep -q "ud.ip=$a1 ud.gw=10.213.7.1 ud.mask=255.255.255.0" /proc/"$(qemu_pids)"/cmdline ||
		tr '\0' ' ' </proc/"$(qemu_pids)"/cmdline | grep -q "ud.ip=$a1 ud.gw=10.213.7.1 ud.mask=255.255.255.0"

	set_version v2
	commit_all "micro v2"
	start_load 2
	push
	stop_load
	[ "$LOAD_FAILED" -eq 0 ]
	[ "$LOAD_OK" -gt 0 ]
	[ "$(answer)" = "pong v2" ]
	# the old VM is gone with its tap and address; the new one has its own
	wait_until 60 output_is 1 qemu_count
	wait_until 60 lines_are 1 taps
	[ "$(taps)" != "$tap1" ]
	a2=$(addresses)
	[ "$(echo "$a2" | wc -l)" -eq 1 ]
	[ "$a2" != "$a1" ]
}

@test "with agent.json user, a VM on a tap runs as that user with no_new_privs and answers: the privileged parent opens its tap" {
	instance_user
	stop_agent
	jq '.user = "udinst"' "$T/agent.json" >"$T/agent.json.new"
	mv "$T/agent.json.new" "$T/agent.json"
	start_agent
	release_version v1
	[ "$(answer)" = "pong v1" ]
	q=$(qemu_pids)
	[ -n "$q" ]
	[ "$(ps -o user= -p "$q" | tr -d ' ')" = udinst ]
	grep -Eq '^NoNewPrivs:[[:space:]]+1$' "/proc/$q/status"
	# its network is the tap the root parent opened and passed as fd 3:
	# the VM never opened /dev/net/tun (0600 here) itself
	tr '\0' ' ' <"/proc/$q/cmdline" | grep -q -- "-netdev tap,id=n0,fd=3 "
	[ "$(readlink "/proc/$q/fd/3")" = /dev/net/tun ]
	[ "$(ps -o user= -p "$AGENT_PID" | tr -d ' ')" = root ]
	[ "$(ps -o ppid= -p "$q" | tr -d ' ')" = "$AGENT_PID" ]
	a1=$(addresses)
	[ "$($NS_EXEC curl -s --max-time 5 "http://$a1:8080/")" = "pong v1" ]
	[ "$(taps | wc -l)" -eq 1 ]
}

@test "a summoned microVM boots on the first request and goes back to zero" {
	deploy place "$APP" --hosts local --listen "$LISTEN" --target qemu --mode summon --idle-stop 15
	release_version v1
	[ "$(qemu_count)" -eq 0 ]
	[ -z "$(taps)" ]
	[ "$($NS_EXEC curl -s --max-time 200 "http://$LISTEN/")" = "pong v1" ]
	[ "$(qemu_count)" -eq 1 ]
	[ "$(taps | wc -l)" -eq 1 ]
	# idle: stopped, tap and address given back
	wait_until 60 no_qemu
	wait_until 60 test -z "$(taps)"
	[ -z "$(addresses)" ]
}

@test "two instances get distinct addresses and taps; agent kill -9 and restart adopts them" {
	deploy place "$APP" --hosts local --listen "$LISTEN" --target qemu --instances 2
	release_version v1
	wait_until 60 lines_are 2 addresses
	before=$(addresses)
	[ "$(echo "$before" | sort -u | wc -l)" -eq 2 ]
	[ "$(taps | wc -l)" -eq 2 ]
	for a in $before; do
		[ "$($NS_EXEC curl -s --max-time 5 "http://$a:8080/")" = "pong v1" ]
	done
	pids=$(qemu_pids | sort)
	taps_before=$(taps)

	stop_agent KILL
	start_agent
	agent_cli sync >/dev/null
	# the same VMs, taps and addresses: nothing rebooted, nothing leaked
	[ "$(qemu_pids | sort)" = "$pids" ]
	[ "$(taps)" = "$taps_before" ]
	[ "$(addresses)" = "$before" ]
	[ "$(answer)" = "pong v1" ]
}

@test "an image its target cannot run is refused at sync, naming both; nothing boots, no tap or address" {
	# The kernel (a bzImage, not an ELF) placed as spt. solo5-spt is no
	# Debian package: a stand-in is put in the agent's PATH, so that the
	# host check passes and the image check is what refuses; it must
	# never run.
	mkdir -p "$T/bin"
	printf '#!/bin/sh\necho stand-in solo5-spt ran >&2; exit 1\n' >"$T/bin/solo5-spt"
	chmod +x "$T/bin/solo5-spt"
	stop_agent TERM
	NS_EXEC="ip netns exec $NS env PATH=$T/bin:$PATH" start_agent
	write_micro_app '.images[0].target = "spt" | del(.images[0].initrd)'
	deploy place "$APP" --hosts local --listen "$LISTEN" --target spt
	release_version v1
	grep -Eq '^remote: .*spt-x86_64.* is not an ELF' <<<"$PUSH_OUT" ||
		grep -Eq '^remote: .*not an ELF.*spt' <<<"$PUSH_OUT"
	no_qemu
	[ -z "$(taps)" ]
	[ -z "$(addresses)" ]
	! grep -qs "stand-in solo5-spt ran" "$T"/state/apps/$APP/logs/*.log
}

@test "a release whose guest never gets healthy leaves the old VM serving, and no VM, tap or address of its own" {
	release_version v1
	[ "$(answer)" = "pong v1" ]
	tap1=$(taps) a1=$(addresses) q1=$(qemu_pids)
	write_micro_app '.health.http = "/missing" | .health.timeout_s = 30 | .health.on_failure = "keep"'
	set_version v2
	commit_all "micro v2, never healthy"
	push
	grep -q "local: micro v2 failed: health check" <<<"$PUSH_OUT"
	[ "$(answer)" = "pong v1" ]
	wait_until 60 output_is "$q1" qemu_pids
	[ "$(taps)" = "$tap1" ]
	[ "$(addresses)" = "$a1" ]
}
