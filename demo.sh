#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: install nbcontainer and what it needs,
# make a BusyBox image offline, run containers from it and show what they print.
set -euo pipefail
cd "$(dirname "$0")"
export DEBIAN_FRONTEND=noninteractive
for pkg in busybox-static mmdebstrap iproute2 zstd libseccomp2; do
    dpkg -s "$pkg" >/dev/null 2>&1 || { apt-get update -qq; apt-get install -y -qq busybox-static mmdebstrap iproute2 zstd libseccomp2 >/dev/null; break; }
done
python3 -m pip install -q -e .
set -x
nbc --version
nbc bootstrap busybox -t demo/busybox
nbc images
nbc run --rm --name hello demo/busybox sh -c 'echo "hello from $(hostname), PID $$ inside"; id; grep -E "^(CapEff|Seccomp|NoNewPrivs)" /proc/self/status'
nbc run -d --name ticker demo/busybox sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done'
sleep 2
nbc ps
nbc exec ticker ps
nbc logs --tail 2 ticker
nbc stop -t 1 ticker
nbc ps -a
nbc rm ticker
