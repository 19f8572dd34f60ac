"""A private LAN of network namespaces for multi-machine tests (the cluster of issue 18): a
switch (a bridge in a namespace of its own) and hosts, each a namespace with one address on
the test subnet, wired to the switch by a veth pair. Nothing touches the test's own namespace;
closing the namespaces removes every link."""

from __future__ import annotations

from tests.support.netns import Namespace


class Lan:
    """``host(10)`` -> (the namespace, ``<subnet>.10``)."""

    def __init__(self, subnet: str = "10.18.0") -> None:
        self.subnet = subnet
        self.switch = Namespace()
        self.hosts: list[Namespace] = []
        try:
            self.switch.run("ip", "link", "add", "br0", "type", "bridge")
            self.switch.run("ip", "link", "set", "br0", "up")
        except BaseException:
            self.switch.close()
            raise

    def host(self, last_octet: int) -> tuple[Namespace, str]:
        ns = Namespace()
        self.hosts.append(ns)
        port = f"p{len(self.hosts)}"
        self.switch.run(
            "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", str(ns.pid)
        )
        self.switch.run("ip", "link", "set", port, "master", "br0")
        self.switch.run("ip", "link", "set", port, "up")
        address = f"{self.subnet}.{last_octet}"
        ns.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
        ns.run("ip", "link", "set", "eth0", "up")
        return ns, address

    def join_from_here(self, last_octet: int) -> str:
        """Wire the caller's own namespace to the switch too (a demo's browser on this machine
        reaches the hosts): its address; the link goes when the switch does."""
        import os
        import subprocess

        name = f"pl{os.getpid()}"[:15]
        subprocess.run(
            ["ip", "link", "add", name, "type", "veth", "peer", "name", "up0"]
            + ["netns", str(self.switch.pid)],
            check=True,
            capture_output=True,
        )
        address = f"{self.subnet}.{last_octet}"
        subprocess.run(["ip", "addr", "add", f"{address}/24", "dev", name], check=True)
        subprocess.run(["ip", "link", "set", name, "up"], check=True)
        self.switch.run("ip", "link", "set", "up0", "master", "br0")
        self.switch.run("ip", "link", "set", "up0", "up")
        return address

    def close(self) -> None:
        for ns in self.hosts:
            ns.close()
        self.switch.close()
