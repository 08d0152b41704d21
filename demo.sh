#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: the Docker tutorial's Flask development
# environment, end to end, without a Docker daemon and without Docker Hub.
#   1. install nbcontainer and what it needs (apt + pip);
#   2. bootstrap the Debian + Flask base image offline from Debian's packages (once; reused after);
#   3. execute notebooks/04-flask.ipynb headless (build, run -p 5000:5000, fetch the page, edit the
#      app through a bind mount and see it reload, logs, clean up);
#   4. print the page the container served, and how to open the notebooks in JupyterLab.
# The store is $NBCONTAINER_ROOT (default /var/lib/nbcontainer); the executed notebook is written
# to $DEMO_OUT (default /tmp/nbcontainer-demo).
set -euo pipefail
cd "$(dirname "$0")"
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
step() { printf '\n==> %s\n' "$*"; }

step "Installing what nbcontainer needs (apt + pip)"
need_apt=()
for pkg in busybox-static mmdebstrap iproute2 iptables zstd libseccomp2 docker-registry; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
python3 -m pip install -q -e '.[jupyter]'
nbc --version

BASE=debian-flask:bookworm
step "Base image $BASE (Debian bookworm + python3-flask, made offline with mmdebstrap)"
if nbc image inspect --format '{{.Id}}' "$BASE" >/dev/null 2>&1; then
    echo "$BASE is already in the store: reusing it"
else
    nbc bootstrap debian:bookworm --include python3-flask -t "$BASE"
fi
nbc images "$BASE"

out=${DEMO_OUT:-/tmp/nbcontainer-demo}
mkdir -p "$out"
step "Executing notebooks/04-flask.ipynb headless (nbclient + ipykernel)"
python3 - "$out/04-flask.ipynb" <<'PY'
import sys, time
import nbclient, nbformat

target = sys.argv[1]
nb = nbformat.read("notebooks/04-flask.ipynb", as_version=4)
client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                 resources={"metadata": {"path": "notebooks"}})
t0 = time.monotonic()
try:
    client.execute()
finally:
    nbformat.write(nb, target)  # with its outputs and widget state, even after a failure
code = [c for c in nb.cells if c.cell_type == "code"]
print(f"executed {len(code)} code cells in {time.monotonic() - t0:.1f} s -> {target}")


def printed(tag):
    """The stdout a cell tagged ``tag`` printed."""
    return "".join(o.get("text", "") for c in code if tag in c.metadata.get("tags", [])
                   for o in c.outputs if o.get("name") == "stdout").strip()


print(f"\n--- the page the container served at {printed('app-url').split()[-1]} ---")
print(printed("served-page"))
print("\n--- the same page after editing app.py through the bind mount (Flask reloaded it) ---")
print(printed("served-page-edited"))
PY

step "Open the tutorials in JupyterLab"
cat <<EOF
  python3 -m pip install jupyterlab
  jupyter lab --allow-root notebooks/        # then open 00-quickstart.ipynb ... 05-registries.ipynb

The executed Flask notebook (outputs and widget state) is $out/04-flask.ipynb.
EOF
printf '\ndemo.sh finished in %ss\n' "$(( $(date +%s) - start ))"
