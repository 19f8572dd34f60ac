"""The test networks themselves: a link added to a test namespace carries IPv4 only.

A link that comes up with IPv6 gets a tentative fe80:: address; a second or two later duplicate
address detection ends and the kernel announces the address again, which Chromium takes for a
network change: every request in flight fails with ERR_NETWORK_CHANGED. CI lost a browser test
on a LAN host and one on a veth pair to it (2026-12-07), each launched just after its link came
up. ``Namespace`` turns IPv6 off for links added to it; ``lo`` keeps ::1.
"""

from __future__ import annotations

import subprocess

from tests.support.lan import Lan
from tests.support.netns import Namespace


def addresses(namespace: Namespace, device: str, family: str) -> str:
    return subprocess.run(
        [*namespace.prefix, "ip", family, "-o", "addr", "show", "dev", device],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def test_a_lan_hosts_link_has_its_ipv4_address_and_no_ipv6_one() -> None:
    lan = Lan("10.18.77")
    try:
        host, address = lan.host(5)
        assert f"inet {address}/24" in addresses(host, "eth0", "-4")
        assert addresses(host, "eth0", "-6") == ""
        assert "inet6 ::1/128" in addresses(host, "lo", "-6")
    finally:
        lan.close()


def test_a_veth_pair_made_straight_into_two_namespaces_has_no_ipv6_address() -> None:
    a, b = Namespace(), Namespace()
    try:
        subprocess.run(
            ["ip", "link", "add", "va", "netns", str(a.pid), "type", "veth"]
            + ["peer", "name", "vb", "netns", str(b.pid)],
            check=True,
            capture_output=True,
        )
        for ns, name in ((a, "va"), (b, "vb")):
            ns.run("ip", "link", "set", name, "up")
        assert addresses(a, "va", "-6") == "" and addresses(b, "vb", "-6") == ""
    finally:
        a.close()
        b.close()
