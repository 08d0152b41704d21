#!/usr/bin/env bash
# Installs everything the tests need on a bare Debian 12 machine (apt + pip), then runs every test.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
need_apt=()
for pkg in busybox-static mmdebstrap catatonit uidmap iptables iproute2 zstd libseccomp2 runc skopeo umoci docker-registry; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[test]'
python3 -m pytest -q -p no:cacheprovider "$@"
