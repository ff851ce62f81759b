#!/bin/sh
# Install the Debian packages a stage needs: build, test or bench.
# As root, missing packages are installed; otherwise the apt-get line is
# printed and we fail (SPEC §1).
set -eu
stage=${1:-build}
pkgs="gcc make pkg-config libgit2-dev libcurl4-openssl-dev libjansson-dev
libssh2-1-dev libarchive-dev libssl-dev bubblewrap"
case $stage in
test)  pkgs="$pkgs libcmocka-dev bats jq curl git procps iproute2
openssh-server openssh-client dnsutils qemu-system-x86 python3 openssl cpio
gitolite3" ;;
bench) pkgs="$pkgs libcmocka-dev bats jq curl git procps iproute2
openssh-server openssh-client dnsutils qemu-system-x86 python3 openssl
hyperfine xz-utils zstd wrk systemd cpio" ;;
esac
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "unideploy: missing packages; run: apt-get install$missing" >&2
	exit 1
fi
echo "unideploy: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
