#!/usr/bin/env bash
# Installs everything the tests need on a bare Debian 12 machine (apt + pip), then runs every test.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
need_apt=()
for pkg in busybox-static mmdebstrap catatonit uidmap slirp4netns iptables iproute2 zstd libseccomp2 runc podman buildah skopeo umoci docker-registry docker.io chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[test]'
# A private store for anything that does not pick its own (the notebooks' kernels), removed afterwards.
store=$(mktemp -d /tmp/nbc-test-XXXXXX)
trap 'rm -rf "$store"' EXIT
export NBCONTAINER_ROOT="$store/root" NBCONTAINER_RUNROOT="$store/run"
# tests/ (unit, integration, conformance) and the tutorial notebooks under nbval.
python3 -m pytest -q -p no:cacheprovider tests --nbval-lax notebooks "$@"
