#!/usr/bin/env bats
# VM instances (issue 5): the fixture kernel (tests/fixtures/kernel), built
# by its app repository's build.command, pushed through the whole pipeline
# and booted for real under qemu; its COM2 is the instance's port (a TCP
# socket), so the proxy reaches it over HTTP in boot and summon mode.

load helpers

APP=fixture

# write_fixture_app [BUILD_ARGS [JQ_EDIT]]: the work clone becomes the
# fixture's app repository.
write_fixture_app() {
	local extra=${1:-} edit=${2:-.}
	rm -f "$W/pong.c"
	mkdir -p "$W/kernel"
	cp "$ROOT"/tests/fixtures/kernel/* "$W/kernel/"
	jq -n --arg c "sh kernel/build.sh dist/kernel.elf \"\$(cat VERSION)\" $extra" '{
		app: "fixture",
		build: {command: $c},
		images: [{target: "qemu", arch: "x86_64", path: "dist/kernel.elf"}],
		run: {port: 80, memory_mb: 32, env: {UNIDEPLOY_PORT_VIA: "serial"}},
		health: {serial: "READY", timeout_s: 30}
	}' | jq "$edit" >"$W/deploy.json"
}

console_logs() { cat "$T"/state/apps/$APP/logs/*.log 2>/dev/null; }

setup() {
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is not installed"
	setup_world
	deploy place "$APP" --hosts local --listen "$LISTEN" --target qemu
	write_fixture_app
}

teardown() {
	local left
	[ -n "${T:-}" ] || return 0
	stop_agent_and_vms 30
	left=$VMS_LEFT
	teardown_world
	if [ -n "$left" ]; then
		echo "qemu left running: $left" >&2
		return 1
	fi
}

@test "a kernel boots under qemu through the pipeline, answers on its serial port, and a new release replaces it" {
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	grep -q 'unideploy-fixture v1' <<<"$(console_logs)"
	[ "$(qemu_count)" -eq 1 ]
	v1=$(qemu_pids)
	[ "$(answer)" = "unideploy-fixture v1" ]
	# the proxy reconnects for each request: the socket serves again
	[ "$(answer)" = "unideploy-fixture v1" ]
	[ "$(agent_cli status --json | jq -r ".apps.$APP.release")" = 1 ]

	release_version v2
	[ "$(answer)" = "unideploy-fixture v2" ]
	wait_until 60 gone "$v1"
	wait_until 60 output_is 1 qemu_count
	[ "$(qemu_pids)" != "$v1" ]
	grep -q 'unideploy-fixture v2' <<<"$(console_logs)"
	[ "$(agent_cli status --json | jq -r ".apps.$APP.release")" = 2 ]
	# v1 went through QMP quit, not a signal (qemu logs those)
	refute grep -q 'no answer on its QMP socket' "$T/agent.log"
	refute grep -q 'terminating on signal' <<<"$(console_logs)"
}

@test "a kernel that never prints READY is kept off; the old VM keeps running" {
	release_version v1
	v1=$(qemu_pids)
	[ -n "$v1" ]
	write_fixture_app never-ready '.health.timeout_s = 3 | .health.on_failure = "keep"'
	release_version v2
	grep -Eiq '^remote: .*health' <<<"$PUSH_OUT"
	grep -q 'unideploy-fixture v2' <<<"$(console_logs)"
	# the failed VM is gone, the old one serves with its pid unchanged
	wait_until 60 output_is 1 qemu_count
	[ "$(qemu_pids)" = "$v1" ]
	[ "$(answer)" = "unideploy-fixture v1" ]
	[ "$(agent_cli status --json | jq -r ".apps.$APP.release")" = 1 ]
}

@test "a VM that dies is restarted and answers again" {
	release_version v1
	old=$(qemu_pids)
	[ -n "$old" ]
	kill -KILL "$old"
	wait_until 60 gone "$old"
	wait_until 60 answer_is "unideploy-fixture v1"
	[ "$(qemu_count)" -eq 1 ]
	[ "$(qemu_pids)" != "$old" ]
	# the crashed run's console is kept aside; the new one starts afresh
	[ "$(grep -c READY "$T"/state/apps/$APP/logs/1-*.log)" = 1 ]
	grep -q READY "$T"/state/apps/$APP/logs/1-*.log.prev
}

@test "agent killed with -9 and restarted: the VM is adopted, not rebooted" {
	release_version v1
	old=$(qemu_pids)
	stop_agent KILL
	[ "$(qemu_pids)" = "$old" ]
	start_agent
	# right after the restart, status already knows the adopted VM
	[ "$(agent_cli status --json | jq -r ".apps.$APP.instances")" = 1 ]
	[ "$(answer)" = "unideploy-fixture v1" ]
	[ "$(qemu_pids)" = "$old" ]
}

@test "a summoned VM boots on the first request and is stopped when idle" {
	deploy place "$APP" --hosts local --listen "$LISTEN" --target qemu --mode summon --idle-stop 10
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	no_qemu
	[ "$(answer)" = "unideploy-fixture v1" ]
	[ "$(qemu_count)" -eq 1 ]
	wait_until 60 no_qemu
}

@test "a host without the backend's program fails the placement at sync time, naming it" {
	deploy place "$APP" --hosts local --listen "$LISTEN" --target firecracker
	jq '.images[0].target = "firecracker"' "$W/deploy.json" >"$T/d.json"
	mv "$T/d.json" "$W/deploy.json"
	PATH_HAD_FC=$(command -v firecracker || true)
	[ -z "$PATH_HAD_FC" ] || skip "firecracker is installed here"
	release_version v1
	grep -q 'backend firecracker needs firecracker on host local' <<<"$PUSH_OUT"
	no_qemu
}

@test "a publish that cannot serve a placed host's arch fails before anything is committed; multi-arch images publish together" {
	deploy host add arm1 --agent "unix:$T/arm1.sock" --arch aarch64
	deploy place "$APP" --hosts local,arm1 --listen "$LISTEN" --target qemu
	before=$(main_rev)
	release_version v1
	grep -q 'arm1' <<<"$PUSH_OUT"
	grep -q 'qemu/aarch64' <<<"$PUSH_OUT"
	[ "$(main_rev)" = "$before" ]
	[ -z "$(tags)" ]
	no_qemu

	# the aarch64 image (a stand-in file here) joins the same release
	jq '.images += [{target: "qemu", arch: "aarch64", path: "dist/kernel.elf"}]' \
		"$W/deploy.json" >"$T/d.json"
	mv "$T/d.json" "$W/deploy.json"
	release_version v1
	[ "$(tags)" = "fixture/v1 " ]
	[ "$(manifest 1 | jq -r '[.images[].arch] | sort | join(" ")')" = "aarch64 x86_64" ]
	# this host boots its own arch; arm1's agent is not there
	[ "$(answer)" = "unideploy-fixture v1" ]
	grep -q 'arm1' <<<"$PUSH_OUT"
}

# The qemu command line of the running VM, one argument per line.
qemu_cmdline() { tr '\0' '\n' <"/proc/$(qemu_pids)/cmdline"; }

@test "an initrd ships with its kernel: committed with its own sha256, unpacked and checked, booted with -initrd" {
	write_fixture_app "" '.build.command += " && cp VERSION dist/initrd.img" | .images[0].initrd = "dist/initrd.img"'
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "unideploy-fixture v1" ]
	sha=$(manifest 1 | jq -r '.images[0].initrd.sha256')
	[ "$(manifest 1 | jq -r '.images[0].initrd.file')" = qemu-x86_64.initrd ]
	[ "$sha" = "$(echo v1 | sha256sum | cut -d' ' -f1)" ]
	[ "$(dgit show main:apps/$APP/releases/1/qemu-x86_64.initrd)" = v1 ]
	[ "$(sha256sum <"$T/state/images/$sha" | cut -d' ' -f1)" = "$sha" ]
	grep -qx -- -initrd <<<"$(qemu_cmdline)"
	grep -qx "$T/state/images/$sha" <<<"$(qemu_cmdline)"

	# a rollback carries it, the same blob (from v2: rolling back to
	# the live v1 itself publishes nothing)
	release_version v2
	deploy rollback "$APP" 1
	[ "$(manifest 3 | jq -r '.images[0].initrd.sha256')" = "$sha" ]
}

@test "an initrd on a target that cannot boot one is refused before anything is committed" {
	before=$(main_rev)
	write_fixture_app "" '.images[0].target = "hvt" | .images[0].initrd = "dist/kernel.elf"'
	release_version v1
	grep -q 'images\[0\].initrd: target hvt cannot boot an initrd' <<<"$PUSH_OUT"
	[ "$(main_rev)" = "$before" ]
}

@test "a volume is made once, attached as virtio-blk, kept across releases; the old VM stops before the new one boots" {
	write_fixture_app "" '.run.block = {storage: {size_mb: 8}}'
	release_version v1
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "unideploy-fixture v1" ]
	vol=$T/state/volumes/$APP/storage.img
	[ "$(stat -c '%s %a' "$vol")" = "8388608 600" ]
	grep -q "^file=$vol,if=none,id=v0,format=raw\$" <<<"$(qemu_cmdline)"
	grep -qx 'virtio-blk-pci,drive=v0,serial=storage' <<<"$(qemu_cmdline)"
	v1=$(qemu_pids)
	echo kept >"$T/mark" && dd if="$T/mark" of="$vol" conv=notrunc status=none

	write_fixture_app "" '.run.block = {storage: {size_mb: 16}}'
	release_version v2
	[ "$PUSH_STATUS" -eq 0 ]
	[ "$(answer)" = "unideploy-fixture v2" ]
	gone "$v1"
	grep -q "stopping release 1 before release 2 boots (volumes)" "$T/agent.log"
	[ "$(stat -c %s "$vol")" = 16777216 ]
	[ "$(head -c 4 "$vol")" = kept ]

	# smaller: refused, v2 keeps serving, the volume untouched
	write_fixture_app "" '.run.block = {storage: {size_mb: 8}}'
	release_version v3
	grep -q 'volume storage is 16 MB on host local and release 3 asks for 8 MB' <<<"$PUSH_OUT"
	[ "$(answer)" = "unideploy-fixture v2" ]
	[ "$(stat -c %s "$vol")" = 16777216 ]
}
