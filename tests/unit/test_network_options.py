"""network create -o: validation (network/options.py) and the rules the options select (firewall.py)."""
from __future__ import annotations

import pytest

from nbcontainer.errors import InvalidArgument, NotSupported
from nbcontainer.network import firewall, options


def test_validate_normalises_supported_options():
    got = options.validate({options.MTU: "01400", options.ICC: "False", options.MASQUERADE: "1",
                            options.BRIDGE_NAME: "br-x.1", options.HOST_BINDING: "127.0.0.1"})
    assert got == {options.MTU: "1400", options.ICC: "false", options.MASQUERADE: "true",
                   options.BRIDGE_NAME: "br-x.1", options.HOST_BINDING: "127.0.0.1"}
    net = {"options": got}
    assert options.mtu(net) == 1400 and not options.icc(net) and options.masquerade(net)
    assert options.host_binding(net) == "127.0.0.1"
    assert options.mtu({"options": {}}) == 1500 and options.icc({}) and options.masquerade({})


@pytest.mark.parametrize("key, value", [(options.MTU, "67"), (options.MTU, "x"), (options.ICC, "perhaps"),
                                        (options.BRIDGE_NAME, "a" * 16), (options.BRIDGE_NAME, ""),
                                        (options.HOST_BINDING, "::1"), (options.HOST_BINDING, "host")])
def test_bad_values_are_refused_naming_them(key, value):
    with pytest.raises(InvalidArgument) as e:
        options.validate({key: value})
    assert repr(value) in str(e.value)


def test_unknown_option_is_refused_not_ignored():
    with pytest.raises(NotSupported, match="com.docker.network.bridge.inhibit_ipv4"):
        options.validate({"com.docker.network.bridge.inhibit_ipv4": "true"})


def test_rules_follow_icc_and_masquerade():
    default = firewall.network_rules("b", "b", "10.1.0.0/24", False)
    assert any("-i b -o b" in r and r.endswith("-j ACCEPT") for _, r in default)
    assert any("MASQUERADE" in r for _, r in default)
    closed = firewall.network_rules("b", "b", "10.1.0.0/24", False, masquerade=False, icc=False)
    assert any("-i b -o b" in r and r.endswith("-j DROP") for _, r in closed)
    assert not any("MASQUERADE" in r for _, r in closed)


def test_default_host_ip_fills_only_missing_addresses():
    from nbcontainer.network.ports import default_host_ip
    got = default_host_ip({"80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "10.0.0.1", "HostPort": ""}]},
                          "127.0.0.1")
    assert got == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}, {"HostIp": "10.0.0.1", "HostPort": ""}]}
