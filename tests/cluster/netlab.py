"""Network namespaces for the cluster tests: one private L2 segment per run.

Layout (names carry a short run id, so parallel or aborted runs never
clash): a hub namespace ``qvc<id>-hub`` holds a bridge; every host (etcd
member, quiver node) gets its own namespace joined to the bridge by a veth
pair, with an address in a private 10.x.y.0/24 picked per run (checked
against the routes already on the machine).  The root namespace gets one
more veth into the hub, so the test process itself (the client) reaches
every host directly, without routing or the root namespace's firewall
(bridged frames only see the hub namespace's empty ruleset).

Partitioning a host takes its bridge port down in the hub (it then reaches
nobody, and nobody reaches it); healing brings it up again.  Teardown
deletes the hub and every host namespace, which deletes the veth pairs
with them.  ``clean_stale`` removes what a previous, aborted run left:
namespaces with our prefix whose owner process is gone.

Needs root and iproute2 (``ip``).  Nothing here sends traffic anywhere but
to the run's own namespaces.
"""

import os
import random
import re
import subprocess

PREFIX = "qvc"


def ip(*args, ns=None, check=True):
    """Runs `ip ARGS` (inside namespace `ns` when given); returns stdout."""
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {p.stderr.strip()}")
    return p.stdout


def namespaces():
    """Names of the network namespaces on the machine."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ns_pids(ns):
    """Pids of the processes inside namespace `ns`."""
    out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _delete_ns(ns):
    for pid in ns_pids(ns):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def clean_stale(log=print):
    """Deletes the namespaces of earlier runs whose owner pid is gone.

    A run's hub namespace is named qvc<id>-hub and its owner pid is stored
    in /run/quiver-cluster-test/<id>.pid; a run without a live owner is
    stale: the processes in its namespaces (ours: etcd and quiver started by
    that run) are killed and the namespaces deleted."""
    runs = {}
    for ns in namespaces():
        m = re.fullmatch(PREFIX + r"([0-9a-f]{4})-\w+", ns)
        if m:
            runs.setdefault(m.group(1), []).append(ns)
    for rid, nss in runs.items():
        pidfile = f"/run/quiver-cluster-test/{rid}.pid"
        try:
            owner = int(open(pidfile).read())
            os.kill(owner, 0)
            continue  # a live run: leave it alone
        except (OSError, ValueError):
            pass
        log(f"netlab: removing {len(nss)} namespaces of aborted run {rid}")
        for ns in nss:
            _delete_ns(ns)
        try:
            os.unlink(pidfile)
        except OSError:
            pass


def _free_subnet():
    """A 10.x.y.0/24 prefix ("10.x.y") that no route on the machine overlaps."""
    routes = subprocess.run(["ip", "-4", "route", "show", "table", "all"],
                            capture_output=True, text=True).stdout
    rng = random.Random()
    for _ in range(100):
        a, b = rng.randrange(200, 250), rng.randrange(1, 255)
        if f"10.{a}." not in routes and not re.search(r"(^|\s)10\.0\.0\.0/8", routes):
            return f"10.{a}.{b}"
    raise RuntimeError("no free 10.x.y.0/24 subnet for the test network")


class Lab:
    """One run's hub, bridge and hosts. Use as a context manager."""

    def __init__(self, log=print):
        self.log = log
        self.id = "%04x" % random.randrange(0x10000)
        self.hub = f"{PREFIX}{self.id}-hub"
        self.subnet = _free_subnet()
        self.hosts = {}  # name -> (namespace, address, hub-side interface)
        self._next = 10
        self.client_addr = f"{self.subnet}.1"

    def __enter__(self):
        clean_stale(self.log)
        os.makedirs("/run/quiver-cluster-test", exist_ok=True)
        with open(f"/run/quiver-cluster-test/{self.id}.pid", "w") as f:
            f.write(str(os.getpid()))
        try:
            self._setup_hub()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def _setup_hub(self):
        subprocess.run(["ip", "netns", "add", self.hub], check=True)
        ip("link", "set", "lo", "up", ns=self.hub)
        ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        ip("link", "set", "br0", "up", ns=self.hub)
        # The root namespace's leg: the client's address.
        root_if, hub_if = f"{PREFIX}{self.id}r", f"{PREFIX}{self.id}rh"
        ip("link", "add", root_if, "type", "veth", "peer", "name", hub_if)
        ip("link", "set", hub_if, "netns", self.hub)
        ip("link", "set", hub_if, "master", "br0", ns=self.hub)
        ip("link", "set", hub_if, "up", ns=self.hub)
        ip("addr", "add", f"{self.client_addr}/24", "dev", root_if)
        ip("link", "set", root_if, "up")
        self.log(f"netlab: run {self.id}, hub {self.hub}, subnet {self.subnet}.0/24, "
                 f"client {self.client_addr}")

    def add_host(self, name):
        """A new namespace `name` on the bridge; returns its address."""
        if not re.fullmatch(r"[a-z0-9]{1,5}", name):
            raise ValueError(f"host name {name!r}: 1-5 of [a-z0-9]")
        ns = f"{PREFIX}{self.id}-{name}"
        addr = f"{self.subnet}.{self._next}"
        self._next += 1
        inner, outer = f"{PREFIX}{self.id}{name}", f"{PREFIX}{self.id}{name}h"
        subprocess.run(["ip", "netns", "add", ns], check=True)
        self.hosts[name] = (ns, addr, outer)
        ip("link", "set", "lo", "up", ns=ns)
        ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        ip("link", "set", inner, "netns", ns)
        ip("link", "set", outer, "netns", self.hub)
        ip("link", "set", outer, "master", "br0", ns=self.hub)
        ip("link", "set", outer, "up", ns=self.hub)
        ip("link", "set", inner, "name", "eth0", ns=ns)
        ip("addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
        ip("link", "set", "eth0", "up", ns=ns)
        return addr

    def ns(self, name):
        return self.hosts[name][0]

    def addr(self, name):
        return self.hosts[name][1]

    def partition(self, name):
        """Cuts host `name` off from every other host and the client."""
        ip("link", "set", self.hosts[name][2], "down", ns=self.hub)

    def heal(self, name):
        ip("link", "set", self.hosts[name][2], "up", ns=self.hub)

    def close(self):
        """Kills what still runs in the run's namespaces and deletes them."""
        for ns, _, _ in self.hosts.values():
            _delete_ns(ns)
        self.hosts.clear()
        if self.hub in namespaces():
            _delete_ns(self.hub)
        try:
            os.unlink(f"/run/quiver-cluster-test/{self.id}.pid")
        except OSError:
            pass
