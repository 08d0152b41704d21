"""Networking pieces that need no root: -p parsing, port texts, IPAM choices, firewall rule
texts, hosts/resolv rendering, the network tables, netlink message encoding, CLI specs."""
from __future__ import annotations

import ipaddress
import os
import socket
import struct

import pytest

from nbcontainer import _args
from nbcontainer.errors import InvalidArgument
from nbcontainer.network import dns, firewall, ipam, netlink, ports
from nbcontainer.network.store import NetworkStore


@pytest.mark.parametrize("spec, expected", [
    ("8080:80", {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}),
    ("127.0.0.1:8080:80", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}),
    ("127.0.0.1::80", {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}),
    ("8080:80/udp", {"80/udp": [{"HostIp": "", "HostPort": "8080"}]}),
    ("80", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
    ("8000-8001:9000-9001", {"9000/tcp": [{"HostIp": "", "HostPort": "8000"}],
                             "9001/tcp": [{"HostIp": "", "HostPort": "8001"}]}),
    ("8000-8010:80", {"80/tcp": [{"HostIp": "", "HostPort": "8000-8010"}]}),
    ("[::1]:8080:80", {"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]}),
    ("80/TCP", {"80/tcp": [{"HostIp": "", "HostPort": ""}]}),
])
def test_parse_publish_forms(spec, expected):
    assert ports.parse_publish([spec]) == expected


@pytest.mark.parametrize("spec", ["", "0:80", "65536:80", "80:70000", "a:80", "80:x", "1.2.3:80:80", "1:2:3:4",
                                  "8000-8002:80-81", "80/bogus", "80/sctp", "[::1:80:80", "9-1:80", "80:"])
def test_parse_publish_refuses_naming_the_spec(spec):
    with pytest.raises(InvalidArgument) as e:
        ports.parse_publish([spec])
    assert repr(spec) in str(e.value) or spec in str(e.value)


def test_publish_all_keeps_explicit_bindings():
    out = ports.publish_all({"80/tcp": {}, "53/udp": {}}, {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
    assert out == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{"HostIp": "", "HostPort": ""}]}


def test_reserve_binds_random_and_refuses_a_taken_port():
    bound = ports.reserve({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    try:
        (b,) = bound
        lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
        assert b.host_ip == "127.0.0.1" and lo <= b.host_port <= hi and b.container_port == 80
        with pytest.raises(ports.PortInUse, match=f"127.0.0.1:{b.host_port} failed: port is already allocated"):
            ports.reserve({"81/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(b.host_port)}]})
    finally:
        for x in bound:
            x.sock.close()
    udp = ports.reserve({"53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    assert udp[0].sock.type == socket.SOCK_DGRAM
    udp[0].sock.close()


def test_port_texts_like_docker():
    bindings = [{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 18080, "container_port": 80},
                {"proto": "udp", "host_ip": "0.0.0.0", "host_port": 18081, "container_port": 81},
                {"proto": "udp", "host_ip": "::", "host_port": 18081, "container_port": 81}]
    sp = ports.settings_ports({"80/tcp": {}, "90/tcp": {}}, bindings)
    assert sp["90/tcp"] is None and sp["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "18080"}]
    assert ports.port_lines(sp) == ["80/tcp -> 127.0.0.1:18080", "81/udp -> 0.0.0.0:18081", "81/udp -> [::]:18081"]
    assert ports.port_lines(sp, "81/udp") == ["0.0.0.0:18081", "[::]:18081"]
    assert ports.port_lines(sp, "80") == ["127.0.0.1:18080"]
    col = ports.ps_column(ports.summary_ports(sp))
    assert col == "127.0.0.1:18080->80/tcp, 0.0.0.0:18081->81/udp, :::18081->81/udp, 90/tcp"


def test_choose_subnet_avoids_routes_and_taken():
    routes = [ipaddress.ip_network("10.77.0.0/16"), ipaddress.ip_network("172.16.0.0/12")]
    net = ipam.choose_subnet(ipam.DEFAULT_CANDIDATES, routes, [])
    assert net == ipaddress.ip_network("10.78.0.0/16")
    assert ipam.choose_subnet(["10.1.0.0/16", "10.2.0.0/16"], [], [ipaddress.ip_network("10.1.2.0/24")]) == \
        ipaddress.ip_network("10.2.0.0/16")
    with pytest.raises(InvalidArgument):
        ipam.choose_subnet(["10.1.0.0/16"], [ipaddress.ip_network("10.0.0.0/8")], [])


def test_addresses_and_macs():
    sub = ipam.parse_subnet("172.30.0.0/16")
    assert ipam.first_free(sub, {"172.30.0.2"}, "172.30.0.1") == "172.30.0.3"
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"
    for bad in ("172.31.0.5", "172.30.0.0", "172.30.255.255", "nope"):
        with pytest.raises(InvalidArgument, match=bad):
            ipam.parse_address(bad, sub, "--ip")
    for bad in ("10.0.0.1/8", "fd00::/64", "10.0.0.0/31", "x"):
        with pytest.raises(InvalidArgument):
            ipam.parse_subnet(bad)


def test_leases_are_exclusive_and_stale_ones_taken_over(tmp_path):
    sub = ipaddress.ip_network("10.9.0.0/29")
    me = os.getpid()
    a = ipam.acquire("br", sub, "10.9.0.1", None, me, lease_dir=str(tmp_path))
    b = ipam.acquire("br", sub, "10.9.0.1", None, me, lease_dir=str(tmp_path))
    assert (a, b) == ("10.9.0.2", "10.9.0.3")
    (tmp_path / "br" / "10.9.0.4").write_text("999999999 1\n")  # a dead holder
    assert ipam.acquire("br", sub, "10.9.0.1", None, me, lease_dir=str(tmp_path)) == "10.9.0.4"
    with pytest.raises(Exception, match="10.9.0.2"):
        ipam.acquire("br", sub, "10.9.0.1", "10.9.0.2", me, lease_dir=str(tmp_path))
    ipam.release("br", "10.9.0.2", lease_dir=str(tmp_path))
    assert ipam.acquire("br", sub, "10.9.0.1", "10.9.0.2", me, lease_dir=str(tmp_path)) == "10.9.0.2"


def test_firewall_rules_are_tagged_and_skip_loopback():
    cid = "ab" * 32
    rules = firewall.port_rules(cid, "10.77.0.2", [
        {"proto": "tcp", "host_ip": "0.0.0.0", "host_port": 8080, "container_port": 80},
        {"proto": "udp", "host_ip": "192.0.2.2", "host_port": 53, "container_port": 5353},
        {"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 9000, "container_port": 90},
        {"proto": "tcp", "host_ip": "::", "host_port": 8080, "container_port": 80}])
    assert len(rules) == 5 and all(f'"nbc:{cid}"' in r for _, r in rules)
    assert ("nat", f'-A NBC-PREROUTING ! -i nbc+ -p tcp -m tcp --dport 8080 -m comment --comment "nbc:{cid}" '
                   f'-j DNAT --to-destination 10.77.0.2:80') in rules
    assert any("-d 192.0.2.2/32 -p udp" in r and "NBC-OUTPUT" in r for _, r in rules)
    assert [r for _, r in rules if "9000" in r] == [  # loopback: the host's own traffic only
        f'-A NBC-OUTPUT -d 127.0.0.1/32 -p tcp -m tcp --dport 9000 -m comment --comment "nbc:{cid}" '
        f'-j DNAT --to-destination 10.77.0.2:90']
    no_lo = firewall.port_rules(cid, "10.77.0.2", [{"proto": "tcp", "host_ip": "127.0.0.1", "host_port": 9000,
                                                     "container_port": 90}], loopback=False)
    assert no_lo == []  # without route_localnet the port proxy carries loopback
    lo = firewall.port_rules(cid, "10.77.0.2", [{"proto": "tcp", "host_ip": "0.0.0.0", "host_port": 1,
                                                 "container_port": 2}], loopback=True, bridge="nbc0")
    assert lo[-1] == ("nat", f'-A NBC-POSTROUTING -s 127.0.0.0/8 -d 10.77.0.2/32 -o nbc0 -m comment --comment '
                             f'"nbc:{cid}" -j MASQUERADE')
    net = firewall.network_rules("nbc-x", "nbc-x", "172.18.0.0/16", internal=True)
    assert not any("MASQUERADE" in r for _, r in net) and any("-i nbc-x -o nbc+" in r for _, r in net)
    dump = "*nat\n" + "\n".join(r for _, r in rules) + "\nCOMMIT\n"
    assert {o for _, _, o in firewall.tagged_rules(dump)} == {cid}


def test_hosts_and_resolv_rendering(tmp_path):
    text = dns.render_hosts("abc", ["10.0.0.2"], [("db", "10.1.1.1")], [("10.0.0.3", ["web", "www", "web"])])
    assert text.startswith("127.0.0.1\tlocalhost\n") and "10.1.1.1\tdb\n" in text
    assert "10.0.0.2\tabc\n" in text and text.endswith("10.0.0.3\tweb www\n")
    f = tmp_path / "hosts"
    f.write_text("old\n")
    ino = f.stat().st_ino
    dns.rewrite_in_place(f, text)
    assert f.read_text() == text and f.stat().st_ino == ino
    r = dns.resolv_text(["1.1.1.1"], ["corp"], ["ndots:2"], "nameserver 9.9.9.9\nsearch x\n")
    assert r == "nameserver 1.1.1.1\nsearch corp\noptions ndots:2\n"


def test_network_tables(tmp_path):
    from nbcontainer.metadata.db import MetadataDB
    store = NetworkStore(MetadataDB(tmp_path / "m.db"))
    net = {"id": "f" * 64, "name": "n1", "driver": "bridge", "bridge": "nbc-fff", "subnet": "10.5.0.0/16",
           "gateway": "10.5.0.1", "internal": True, "labels": {"a": "b"}}
    store.add_network(net)
    assert store.find_networks("n1")[0]["internal"] is True and store.find_networks("fff")[0]["name"] == "n1"
    ep = store.allocate(net, "c1", None, ifname="eth0", veth="nbv1", aliases=["x"], ip="10.5.0.2")
    assert ep["mac"] == "02:42:0a:05:00:02" and store.endpoints(network_id=net["id"])[0]["aliases"] == ["x"]
    store.put_sandbox("c1", 42, {"bindings": [], "proxy": None})
    assert store.get_sandbox("c1")["pid"] == 42
    store.delete_endpoint(net["id"], "c1")
    store.delete_sandbox("c1")
    assert store.endpoints(container_id="c1") == [] and store.get_sandbox("c1") is None


def test_netlink_attributes_are_aligned():
    a = netlink._str(netlink.IFLA_IFNAME, "eth0")
    assert len(a) % 4 == 0 and struct.unpack_from("=HH", a) == (9, netlink.IFLA_IFNAME)
    assert netlink._u32(netlink.IFLA_MTU, 1500) == struct.pack("=HHI", 8, netlink.IFLA_MTU, 1500)


def test_cli_specs_accept_network_flags():
    kw = _args.run_kwargs(_args.parse("run", ["-p", "8080:80", "-P", "--dns", "1.1.1.1", "--network", "n1",
                                              "--network-alias", "web", "--ip", "10.5.0.9", "img"]))
    assert kw["ports"] == ["8080:80"] and kw["publish_all_ports"] and kw["dns"] == ["1.1.1.1"]
    assert kw["network_mode"] == "n1" and kw["network_aliases"] == ["web"] and kw["ip"] == "10.5.0.9"
    ns = _args.parse("network create", ["--subnet", "10.5.0.0/16", "--internal", "n1"])
    assert (ns.subnet, ns.internal, ns.name) == ("10.5.0.0/16", True, "n1")
    assert _args.resolve_verb(["network", "ls"])[0] == "network ls"
    assert _args.parse("port", ["c", "80/tcp"]).port == "80/tcp"


def test_docker_py_ports_keyword():
    from nbcontainer.models.run_options import to_run_options
    o = to_run_options({"ports": {"80/tcp": 8080, "81/tcp": ("127.0.0.1", 8081), "82/tcp": None,
                                  "83/tcp": [9000, 9001]}, "publish_all_ports": True})
    assert list(o.publish) == ["8080:80/tcp", "127.0.0.1:8081:81/tcp", "82/tcp", "9000:83/tcp", "9001:83/tcp"]
    assert o.publish_all
