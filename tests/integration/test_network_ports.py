"""Networking end to end through the ``nbc`` CLI: published ports (TCP, UDP, every -p form),
user networks (names, aliases, isolation), --network none, hairpin, cleanup after kill -9.

Nothing leaves the machine: traffic goes over loopback, the host's own address and the
bridges these tests make.  Each test compares the nbc-owned links, rules, address leases and
port-proxy processes before and after.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
#: an HTTP GET from inside a container (busybox-static's wget crashes on IP literals here; nc does not)
def http_get(addr: str, port: int = 80) -> list:
    return ["sh", "-c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}"]


HTTPD = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"

pytestmark = pytest.mark.skipif(shutil.which("iptables") is None or shutil.which("ip") is None,
                                reason="needs iproute2 and iptables")


def _links(master: str = "") -> set:
    """User-network bridges (``nbc-*``), or the links plugged into bridge ``master``."""
    out = subprocess.run(["ip", "-o", "link"] + (["show", "master", master] if master else []),
                         capture_output=True, text=True).stdout
    names = set(re.findall(r"^\d+: ([^:@]+)", out, re.M))
    return names if master else {m for m in names if m.startswith("nbc-")}


def _rules(ids: set) -> list:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if any(f"nbc:{i}" in l for i in ids)]


def _proxies(pids: set) -> set:
    """The live (not zombie) processes among ``pids``, after giving a SIGKILL a moment."""
    def alive(p: int) -> bool:
        try:
            return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    deadline = time.monotonic() + 2
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {p for p in pids if alive(p)}


def free_port(kind=socket.SOCK_STREAM) -> int:
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def fetch(url: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def host_ip() -> str:
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "192.0.2.1"], capture_output=True, text=True).stdout
    m = re.search(r"src (\S+)", out)
    return m.group(1) if m else "127.0.0.1"


class Nbc:
    def __init__(self, env: dict):
        self.env = env
        self.started: set = set()

    def __call__(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
        r = subprocess.run([sys.executable, "-m", "nbcontainer", *argv], capture_output=True, env=self.env,
                           cwd=str(REPO), timeout=timeout)
        return r

    def ok(self, *argv: str) -> str:
        r = self(*argv)
        assert r.returncode == 0, (argv, r.returncode, r.stderr.decode())
        return r.stdout.decode().strip()

    def proxies(self) -> set:
        """(pid) of every port proxy recorded in this store."""
        import sqlite3
        db = Path(self.env["NBCONTAINER_ROOT"]) / "metadata.db"
        try:
            rows = sqlite3.connect(str(db)).execute("SELECT state FROM sandboxes").fetchall()
        except sqlite3.Error:
            return set()
        return {json.loads(r[0])["proxy"][0] for r in rows if json.loads(r[0]).get("proxy")}


@pytest.fixture
def nbc(tmp_path, busybox_tar):
    runroot = tempfile.mkdtemp(prefix="nbc-", dir="/tmp")
    # a private default bridge: other tests' containers on nbc0 must not blur the before/after lists
    bridge = "nbct" + os.urandom(3).hex()
    env = dict(os.environ, NBCONTAINER_ROOT=str(tmp_path / "root"), NBCONTAINER_RUNROOT=runroot,
               NBCONTAINER_BRIDGE=bridge)
    tool = Nbc(env)
    links_before = _links()
    tool.ok("import", str(busybox_tar), "bb:1")
    proxies: set = set()
    try:
        yield tool
    finally:
        ids = tool("ps", "-aq", "--no-trunc").stdout.decode().split()
        proxies |= tool.proxies()
        if ids:
            tool("rm", "-f", *ids)
        nets = tool("network", "ls", "-q", "--filter", "type=custom").stdout.decode().split()
        if nets:
            tool("network", "rm", *nets)
        shutil.rmtree(runroot, ignore_errors=True)
        deadline = time.monotonic() + 5  # the kernel removes a dead namespace's veth asynchronously
        while os.path.exists(f"/sys/class/net/{bridge}") and _links(bridge) and time.monotonic() < deadline:
            time.sleep(0.05)
        plugged = _links(bridge) if os.path.exists(f"/sys/class/net/{bridge}") else set()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)
        from nbcontainer.network import firewall, ipam
        firewall.delete_owned(["net:" + bridge])
        ipam.release_all(bridge)
        assert plugged == set(), "veths left on the bridge"
        assert _links() - links_before == set(), "bridges left behind"
        assert _rules(set(ids)) == [], "rules left behind"
        assert _proxies(proxies) == set(), "port proxies left behind"


def test_publish_forms_port_inspect_ps_and_cleanup(nbc):
    p1, p2 = free_port(), free_port()
    cid = nbc.ok("run", "-d", "-p", f"127.0.0.1:{p1}:80", "-p", f"{p2}:80", "-p", "127.0.0.1::80", "-p", "80",
                 "bb:1", "sh", "-c", HTTPD)
    assert fetch(f"http://127.0.0.1:{p1}/").startswith("hello-" + cid[:12])
    assert fetch(f"http://127.0.0.1:{p2}/").startswith("hello-")  # loopback through the proxy
    assert fetch(f"http://{host_ip()}:{p2}/").startswith("hello-")  # another host address: DNAT
    lines = nbc.ok("port", cid).splitlines()
    assert f"80/tcp -> 127.0.0.1:{p1}" in lines and f"80/tcp -> 0.0.0.0:{p2}" in lines
    randoms = [int(l.rsplit(":", 1)[1]) for l in lines if l.startswith("80/tcp -> 127.0.0.1:") and
               not l.endswith(f":{p1}")]
    lo, hi = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    assert randoms and all(lo <= r <= hi for r in randoms)
    assert fetch(f"http://127.0.0.1:{randoms[0]}/").startswith("hello-")
    assert nbc.ok("port", cid, "80/tcp").splitlines()[0] == f"127.0.0.1:{p1}"
    info = json.loads(nbc.ok("inspect", cid))[0]
    ns = info["NetworkSettings"]
    assert {"HostIp": "127.0.0.1", "HostPort": str(p1)} in ns["Ports"]["80/tcp"]
    assert ns["IPAddress"] and ns["Gateway"] and ns["MacAddress"].startswith("02:42:")
    assert ns["Networks"]["bridge"]["IPAddress"] == ns["IPAddress"]
    assert f"127.0.0.1:{p1}->80/tcp" in nbc.ok("ps", "--format", "{{.Ports}}")
    assert _rules({cid}), "published ports get DNAT rules"
    nbc.ok("rm", "-f", cid)
    assert _rules({cid}) == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{p1}/", timeout=1)


def test_port_range(nbc):
    """(UDP is tested with python in the Debian image: busybox's nc has no -u.)"""
    a = free_port()
    r = nbc("run", "-d", "-p", f"{a}-{a + 1}:80-81", "bb:1", "sh", "-c", "httpd -p 81 -h / ; " + HTTPD)
    if r.returncode != 0 and b"already allocated" in r.stderr:
        pytest.skip(f"port {a + 1} happened to be taken")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.decode().strip()
    assert fetch(f"http://127.0.0.1:{a}/").startswith("hello-")
    lines = nbc.ok("port", cid).splitlines()
    assert f"80/tcp -> 0.0.0.0:{a}" in lines and f"81/tcp -> 0.0.0.0:{a + 1}" in lines


def test_bad_publish_and_port_in_use_fail_before_start(nbc):
    for spec in ("99999:80", "80:x", "1.2.3:80:80", "8000-8002:80-81"):
        r = nbc("run", "-d", "-p", spec, "bb:1", "true")
        assert r.returncode == 125 and spec.encode() in r.stderr, (spec, r.stderr)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        r = nbc("run", "-d", "--name", "clash", "-p", f"127.0.0.1:{port}:80", "bb:1", "sleep", "60")
        assert r.returncode == 125 and b"already allocated" in r.stderr and str(port).encode() in r.stderr
        st = json.loads(nbc.ok("inspect", "clash"))[0]["State"]
        assert not st["Running"]
    finally:
        busy.close()
    assert nbc.ok("ps", "-q") == ""


def test_user_network_names_aliases_isolation_and_none(nbc):
    nbc.ok("network", "create", "nbt-a")
    nbc.ok("network", "create", "--internal", "nbt-b")
    assert {"bridge", "host", "none", "nbt-a", "nbt-b"} <= set(nbc.ok("network", "ls", "--format", "{{.Name}}").split())
    nbc.ok("run", "-d", "--name", "web", "--network", "nbt-a", "--network-alias", "www", "bb:1", "sh", "-c", HTTPD)
    out = nbc.ok("run", "--rm", "--network", "nbt-a", "bb:1", "sh", "-c", "wget -qO- http://web/ && wget -qO- http://www/")
    assert out.count("hello-") == 2
    web_ip = json.loads(nbc.ok("inspect", "web"))[0]["NetworkSettings"]["Networks"]["nbt-a"]["IPAddress"]
    assert "hello-" in nbc.ok("run", "--rm", "--network", "nbt-a", "bb:1", *http_get(web_ip))
    r = nbc("run", "--rm", "--network", "nbt-b", "bb:1", *http_get(web_ip))
    assert b"hello-" not in r.stdout  # another network cannot reach it
    r = nbc("network", "rm", "nbt-a")
    assert r.returncode == 125 and b"active endpoints" in r.stderr
    r = nbc("network", "connect", "nbt-a", "web")
    assert r.returncode == 125 and b"already exists" in r.stderr
    r = nbc("run", "--rm", "--network", "nosuchnet", "bb:1", "true")
    assert r.returncode == 125 and b"nosuchnet" in r.stderr
    r = nbc("run", "--rm", "--network", "nbt-a", "--ip", "10.255.0.9", "bb:1", "true")
    assert r.returncode == 125 and b"10.255.0.9" in r.stderr
    links = nbc.ok("run", "--rm", "--network", "none", "bb:1", "ip", "-o", "link").splitlines()
    assert len(links) == 1 and ": lo:" in links[0]
    sub = json.loads(nbc.ok("network", "inspect", "nbt-a"))[0]["IPAM"]["Config"][0]["Subnet"]
    assert sub
    nbc.ok("rm", "-f", "web")
    nbc.ok("network", "rm", "nbt-a", "nbt-b")


def test_hairpin_through_the_host_address(nbc):
    p = free_port()
    cid = nbc.ok("run", "-d", "-p", f"{p}:80", "bb:1", "sh", "-c", HTTPD)
    gw = json.loads(nbc.ok("inspect", cid))[0]["NetworkSettings"]["Gateway"]
    for addr in (gw, host_ip()):
        out = nbc.ok("run", "--rm", "bb:1", *http_get(addr, p))
        assert "hello-" + cid[:12] in out
    out = nbc.ok("exec", cid, *http_get(gw, p))  # the container itself
    assert "hello-" in out


def test_supervisor_killed_is_cleaned_by_the_next_command(nbc):
    p = free_port()
    cid = nbc.ok("run", "-d", "-p", f"127.0.0.1:{p}:80", "bb:1", "sh", "-c", HTTPD)
    assert fetch(f"http://127.0.0.1:{p}/").startswith("hello-")
    proxies = nbc.proxies()
    assert proxies
    state = json.loads((Path(nbc.env["NBCONTAINER_RUNROOT"]) / cid / "state.json").read_text())
    pid = state["pid"]
    shim = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])  # the supervisor: PID 1's parent
    os.kill(shim, signal.SIGKILL)
    try:
        os.kill(pid, signal.SIGKILL)  # the container may outlive its supervisor
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        time.sleep(0.05)
    nbc("ps", "-a")  # notices the dead supervisor and tears the network down
    deadline = time.monotonic() + 10
    while (_proxies(proxies) or _rules({cid})) and time.monotonic() < deadline:
        nbc("ps", "-a")
        time.sleep(0.2)
    assert _proxies(proxies) == set() and _rules({cid}) == []


def test_container_mode_connect_disconnect_dns_and_add_host(nbc):
    nbc.ok("network", "create", "--subnet", "10.123.0.0/24", "nbt-c")
    nbc.ok("run", "-d", "--name", "box", "--dns", "10.9.9.9", "--add-host", "db:10.1.2.3", "bb:1", "sleep", "60")
    assert "nameserver 10.9.9.9" in nbc.ok("exec", "box", "cat", "/etc/resolv.conf")
    assert "10.1.2.3\tdb" in nbc.ok("exec", "box", "cat", "/etc/hosts")
    box_ip = json.loads(nbc.ok("inspect", "box"))[0]["NetworkSettings"]["IPAddress"]
    # --network container:box shares box's namespace (same address)
    addr = nbc.ok("run", "--rm", "--network", "container:box", "bb:1", "ip", "-o", "-4", "addr", "show", "eth0")
    assert box_ip in addr
    # live connect: a second interface, an address from the chosen subnet, peers' hosts files updated
    nbc.ok("run", "-d", "--name", "peer", "--network", "nbt-c", "--ip", "10.123.0.50", "bb:1", "sleep", "60")
    nbc.ok("network", "connect", "--alias", "boxy", "nbt-c", "box")
    assert "10.123.0." in nbc.ok("exec", "box", "ip", "-o", "-4", "addr", "show", "eth1")
    peer_hosts = nbc.ok("exec", "peer", "cat", "/etc/hosts")
    assert "box" in peer_hosts and "boxy" in peer_hosts
    assert "10.123.0.50\tpeer" in nbc.ok("exec", "box", "cat", "/etc/hosts")
    r = nbc("network", "connect", "nbt-c", "box")
    assert r.returncode == 125 and b"already exists" in r.stderr
    nbc.ok("network", "disconnect", "nbt-c", "box")
    assert "eth1" not in nbc.ok("exec", "box", "ip", "-o", "link")
    assert "boxy" not in nbc.ok("exec", "peer", "cat", "/etc/hosts")
    net = json.loads(nbc.ok("network", "inspect", "nbt-c"))[0]
    assert net["IPAM"]["Config"][0]["Subnet"] == "10.123.0.0/24" and len(net["Containers"]) == 1
    nbc.ok("rm", "-f", "box", "peer")
    assert nbc.ok("network", "prune", "-f") == "Deleted Networks:\nnbt-c"


def test_docker_py_ports_and_networks(nbc):
    from nbcontainer.client import NbClient
    os.environ["NBCONTAINER_BRIDGE"] = nbc.env["NBCONTAINER_BRIDGE"]
    try:
        with NbClient(root=nbc.env["NBCONTAINER_ROOT"], runroot=nbc.env["NBCONTAINER_RUNROOT"]) as client:
            p = free_port()
            c = client.containers.run("bb:1", ["sh", "-c", HTTPD], detach=True, ports={"80/tcp": ("127.0.0.1", p)})
            c.reload()
            assert c.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(p)}]}
            assert fetch(f"http://127.0.0.1:{p}/").startswith("hello-" + c.short_id)
            net = client.networks.create("nbt-py", ipam={"Config": [{"Subnet": "10.124.0.0/24"}]})
            assert net.name == "nbt-py" and "nbt-py" in [n.name for n in client.networks.list()]
            net.connect(c, aliases=["pyweb"])
            net.reload()
            assert c.id in net.attrs["Containers"]
            net.disconnect(c)
            c.remove(force=True)
            net.remove()
            assert "nbt-py" not in [n.name for n in client.networks.list()]
    finally:
        os.environ.pop("NBCONTAINER_BRIDGE", None)


def test_network_create_driver_options_are_applied(nbc):
    """-o: bridge name, MTU, no inter-container traffic, no masquerading, a default host address for -p."""
    br = "nbc-o" + os.urandom(3).hex()
    opts = {"com.docker.network.bridge.name": br, "com.docker.network.driver.mtu": "1400",
            "com.docker.network.bridge.enable_icc": "false",
            "com.docker.network.bridge.enable_ip_masquerade": "false",
            "com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}
    nbc.ok("network", "create", *[a for k, v in opts.items() for a in ("-o", f"{k}={v}")], "optnet")
    net = json.loads(nbc.ok("network", "inspect", "optnet"))[0]
    assert net["Options"] == opts
    subnet = net["IPAM"]["Config"][0]["Subnet"]
    port = free_port()
    cid = nbc.ok("run", "-d", "--network", "optnet", "--name", "oa", "-p", f"{port}:80", "bb:1", "sh", "-c", HTTPD)
    assert "mtu 1400" in subprocess.run(["ip", "link", "show", br], capture_output=True, text=True).stdout
    assert nbc.ok("exec", "oa", "cat", "/sys/class/net/eth0/mtu") == "1400"
    assert nbc.ok("port", cid) == f"80/tcp -> 127.0.0.1:{port}"  # bound to the network's host address
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hello-")
    other = nbc("run", "--rm", "--network", "optnet", "bb:1", *http_get("oa"))
    assert b"hello-" not in other.stdout  # enable_icc=false: containers of the network cannot talk
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert not [l for l in rules.splitlines() if f"-s {subnet}" in l and "MASQUERADE" in l]
    assert [l for l in rules.splitlines() if f"-i {br} -o {br}" in l and "-j DROP" in l]


@pytest.mark.parametrize("opt, named", [("com.docker.network.bridge.foo=1", "com.docker.network.bridge.foo"),
                                        ("com.docker.network.driver.mtu=12", "'12'"),
                                        ("com.docker.network.bridge.enable_icc=maybe", "'maybe'"),
                                        ("com.docker.network.bridge.name=bad/name", "'bad/name'")])
def test_network_create_bad_option_is_refused_and_creates_nothing(nbc, opt, named):
    r = nbc("network", "create", "-o", opt, "badopt")
    err = r.stderr.decode()
    assert r.returncode == 125 and named in err and len(err.strip().splitlines()) == 1, err
    assert "badopt" not in nbc.ok("network", "ls", "--format", "{{.Name}}").split()
