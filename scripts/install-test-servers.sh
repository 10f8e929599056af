#!/usr/bin/env bash
# Installs the servers the sink tests talk to on 127.0.0.1: nginx with the RTMP module.
#
# Idempotent and quiet: does nothing when both packages are already installed. It only installs;
# no service is started or enabled system-wide (the tests run their own nginx from a temp dir).
# Needs root (or sudo) and Debian's apt.
set -euo pipefail

packages=(nginx libnginx-mod-rtmp)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "install-test-servers: need root to install ${missing[*]}; run as root or install sudo" >&2
        exit 1
    fi
else
    as_root=()
fi

# policy-rc.d exit 101 stops Debian's maintainer scripts from starting nginx as a system service
# during the install; it is removed again whatever happens. An existing policy is left alone.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${as_root[@]}" tee "$policy" >/dev/null
    "${as_root[@]}" chmod +x "$policy"
    added_policy=1
fi
cleanup() {
    if [ "$added_policy" -eq 1 ]; then
        "${as_root[@]}" rm -f "$policy"
    fi
}
trap cleanup EXIT

# apt's chatter (debconf notes and the like) is kept out of the way and shown only if it fails.
apt_log=$(mktemp)
trap 'cleanup; rm -f "$apt_log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { "${as_root[@]}" apt-get update -qq && \
       "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    echo "install-test-servers: installing ${missing[*]} failed (apt output above)" >&2
    exit 1
fi
