#!/usr/bin/env bash
# chromium.sh makes sure headless Chromium is installed, for the test that
# renders the status page (e2e/operations_test.go), and prints its path on
# the last line of stdout (everything else goes to stderr):
#
#     export WHISK_TEST_CHROMIUM="$(scripts/chromium.sh)"
#
# When chromium (or chromium-browser) is on PATH it only prints it. Else, as
# root on Debian or Ubuntu, it installs Debian's chromium package with
# apt-get (no recommends, no prompts), with a policy-rc.d that keeps any
# service from starting during the install; the previous policy-rc.d, if
# any, is put back. Not root and no chromium: it says so and fails.
set -euo pipefail
exec 3>&1 1>&2 # fd 3: the real stdout, for the path; the rest to stderr

log() { printf 'chromium: %s\n' "$*"; }

find_chromium() {
	command -v chromium || command -v chromium-browser || true
}

path=$(find_chromium)
if [[ -n $path ]]; then
	echo "$path" >&3
	exit 0
fi
if [[ $(id -u) != 0 ]]; then
	log "chromium is not installed and this is not root; install Debian's chromium package (apt-get install chromium)"
	exit 1
fi
if ! command -v apt-get >/dev/null; then
	log "chromium is not installed and there is no apt-get; install Chromium and put it on PATH"
	exit 1
fi

log "installing chromium with apt-get"
prc=/usr/sbin/policy-rc.d
backup=""
if [[ -e $prc ]]; then
	backup=$(mktemp)
	cp -p "$prc" "$backup"
fi
restore() {
	if [[ -n $backup ]]; then mv -f "$backup" "$prc"; else rm -f "$prc"; fi
}
trap restore EXIT
printf '#!/bin/sh\n# written by whisk scripts/chromium.sh during apt-get install\nexit 101\n' >"$prc"
chmod 755 "$prc"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends chromium

path=$(find_chromium)
if [[ -z $path ]]; then
	log "apt-get installed chromium, but it is not on PATH"
	exit 1
fi
echo "$path" >&3
