"""The chaos scenario (issue 15, Tests): under a running workload of
majority writes and filtered searches, SIGKILL a shard leader, SIGKILL a
follower, partition a node, kill one etcd member, restart everything; then
check every promise (checks.py) and print how long each failover took.

Availability: a search may fail with UNAVAILABLE or DEADLINE_EXCEEDED only
within GRACE seconds (env QUIVER_TEST_GRACE) of a fault (lease TTL ~3 s + detection), or while
everything restarts; any other failure, or one outside those windows, is a
broken promise.  After each single-node fault a write must be acknowledged
again within FAILOVER_LIMIT seconds.
"""

import os
import time

import grpc

import checks
from harness import Cluster
from outcome import Failed
from workload import COLL, DIM, Ledger, Workload

SLOW = bool(os.environ.get("QUIVER_TEST_SLOW"))  # a debug binary, a busy machine
GRACE = float(os.environ.get("QUIVER_TEST_GRACE", "15" if SLOW else "10"))
FAILOVER_LIMIT = float(os.environ.get("QUIVER_TEST_FAILOVER_LIMIT", "30" if SLOW else "20"))


def layout(cluster, up, timeout=30):
    """The shard map as seen by the first up node that answers."""
    deadline = time.monotonic() + timeout
    while True:
        for n in sorted(up):
            try:
                lay = cluster.client(n).layout(COLL, timeout=2)
                if lay:
                    return lay
            except grpc.RpcError:
                pass
        if time.monotonic() > deadline:
            raise Failed(f"no node of {sorted(up)} describes the shard map of {COLL}")
        time.sleep(0.3)


def wait_leaders(cluster, up, exclude=(), timeout=30):
    """The shard map once every shard has a leader not in `exclude`."""
    deadline = time.monotonic() + timeout
    while True:
        lay = layout(cluster, up, timeout)
        if all(st["leader"] and st["leader"] not in exclude for st in lay.values()):
            return lay
        if time.monotonic() > deadline:
            raise Failed(f"shards without a leader (excluding {list(exclude)}) after "
                         f"{timeout} s: { {s: st['leader'] for s, st in lay.items()} }")
        time.sleep(0.1)


class Driver:
    def __init__(self, cluster, wl, ledger, log):
        self.c, self.wl, self.L, self.log = cluster, wl, ledger, log
        self.windows = []    # (start, end) where searches may fail
        self.failovers = []  # summary rows

    def fault_window(self, t0, t1=None):
        self.windows.append((t0, (t1 or t0) + GRACE))

    def wait_write_after(self, t0, what):
        deadline = t0 + FAILOVER_LIMIT
        while time.monotonic() < deadline:
            t = self.L.first_write_after(t0)
            if t is not None:
                return t - t0
            time.sleep(0.05)
        raise Failed(f"{what}: no write acknowledged within {FAILOVER_LIMIT} s")

    def kill_node(self, name, role, shard):
        up = set(self.c.nodes) - {name}
        before = layout(self.c, up)
        self.wl.set_up(name, False)
        t0 = time.monotonic()
        self.c.kill(name)
        self.fault_window(t0)
        led = [s for s, st in before.items() if st["leader"] == name]
        lay = wait_leaders(self.c, up, exclude={name}, timeout=FAILOVER_LIMIT)
        t_leader = time.monotonic() - t0
        t_write = self.wait_write_after(t0, f"SIGKILL {role} {name}")
        terms = {s: (before[s]["term"], lay[s]["term"]) for s in led}
        for s, (a, b) in terms.items():
            if b <= a:
                raise Failed(f"shard {s}: new leader {lay[s]['leader']} kept term {a} (needs a higher one)")
        self.failovers.append((f"SIGKILL {role} {name} (shard {shard})",
                               f"{t_leader:.2f}" if led else "-", f"{t_write:.2f}",
                               ", ".join(f"s{s}: {name}->{lay[s]['leader']} t{a}->{b}"
                                         for s, (a, b) in terms.items()) or "no leadership lost"))
        time.sleep(2)
        self.c.restart(name)
        self.wl.set_up(name, True)

    def partition(self, name, shard):
        up = set(self.c.nodes) - {name}
        before = layout(self.c, up)
        self.wl.set_up(name, False)
        t0 = time.monotonic()
        self.c.partition(name)
        self.fault_window(t0)
        led = [s for s, st in before.items() if st["leader"] == name]
        lay = wait_leaders(self.c, up, exclude={name}, timeout=FAILOVER_LIMIT)
        t_leader = time.monotonic() - t0
        t_write = self.wait_write_after(t0, f"partition {name}")
        self.failovers.append((f"partition leader {name} (shard {shard})",
                               f"{t_leader:.2f}" if led else "-", f"{t_write:.2f}",
                               ", ".join(f"s{s}: {name}->{lay[s]['leader']}" for s in led)))
        time.sleep(3)
        t1 = time.monotonic()
        self.c.heal(name)
        self.c.wait_serving([name])
        self.fault_window(t1)
        self.wl.set_up(name, True)

    def kill_etcd(self, member):
        t0 = time.monotonic()
        self.c.etcd.kill(member)
        self.fault_window(t0)
        time.sleep(4)
        t_write = self.wait_write_after(time.monotonic() - 1.0, f"etcd member {member} down")
        self.failovers.append((f"SIGKILL etcd {member}", "-", f"{t_write:.2f} (while down)", ""))
        self.c.etcd.restart(member)
        self.c.etcd.wait_healthy(timeout=30)

    def restart_all(self):
        for n in self.c.nodes:
            self.wl.set_up(n, False)
        t0 = time.monotonic()
        self.c.restart_all()
        for n in self.c.nodes:
            self.wl.set_up(n, True)
        lay = wait_leaders(self.c, set(self.c.nodes), timeout=FAILOVER_LIMIT)
        t_serving = time.monotonic() - t0
        self.fault_window(t0, time.monotonic())
        t_write = self.wait_write_after(time.monotonic(), "restart of everything")
        self.failovers.append(("SIGKILL + start everything", f"{t_serving:.2f}",
                               f"{t_serving + t_write:.2f}",
                               ", ".join(f"s{s}: {st['leader']} t{st['term']}" for s, st in lay.items())))


def print_failovers(driver, log):
    log("")
    log("| fault | new leader(s) after s | first write after s | change |")
    log("| --- | --- | --- | --- |")
    for row in driver.failovers:
        log("| " + " | ".join(row) + " |")
    log("")


def check_searches(ledger, windows, log):
    ok = sum(1 for s in ledger.searches if s[1])
    outside = [s for s in ledger.searches
               if not s[1] and not any(a <= s[0] <= b for a, b in windows)]
    inside = sum(1 for s in ledger.searches if not s[1]) - len(outside)
    partial = sum(1 for s in ledger.searches if s[2] == "PARTIAL")
    log(f"chaos: {ok} searches answered ({partial} partial, allow_partial), {inside} failed "
        f"inside fault windows, {len(outside)} outside")
    if outside:
        raise Failed(f"{len(outside)} searches failed outside fault windows, e.g. "
                     f"{[(round(t, 1), code, n) for t, _, code, n in outside[:5]]}")
    if ok == 0:
        raise Failed("no search succeeded")


def run(args, log=print):
    nodes = args.nodes
    shards = nodes
    with Cluster(args.bin, args.stubs, nodes=nodes, log=log) as c:
        c.start()
        c.create("n1", COLL, DIM, shards=shards, rf=3, wc="majority", keyword_index="grp")
        lay = wait_leaders(c, set(c.nodes))
        log(f"{COLL}: {shards} shards x RF 3 on {nodes} nodes; leaders "
            f"{ {s: st['leader'] for s, st in lay.items()} }")
        L = Ledger()
        wl = Workload(c, L)
        d = Driver(c, wl, L, log)
        wl.start()
        faults = args.faults.split(",")
        unknown = set(faults) - {"leader", "follower", "partition", "etcd", "restart"}
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}")
        try:
            time.sleep(3 * args.duration)
            for fault in faults:
                lay = wait_leaders(c, set(c.nodes))
                if fault == "leader":
                    leader = lay[0]["leader"]
                    log(f"chaos: SIGKILL leader {leader} of shard 0")
                    d.kill_node(leader, "leader", 0)
                elif fault == "follower":
                    follower = next(r["node"] for r in lay[0]["replicas"]
                                    if r["node"] != lay[0]["leader"])
                    log(f"chaos: SIGKILL follower {follower} of shard 0")
                    d.kill_node(follower, "follower", 0)
                elif fault == "partition":
                    shard = 1 % shards
                    part = lay[shard]["leader"]
                    log(f"chaos: partition {part} (leader of shard {shard})")
                    d.partition(part, shard)
                elif fault == "etcd":
                    log("chaos: SIGKILL etcd member e1")
                    d.kill_etcd("e1")
                else:
                    log("chaos: SIGKILL and restart every node and etcd member")
                    d.restart_all()
                time.sleep(2 * args.duration)
            time.sleep(args.duration)
        except Failed:
            print_failovers(d, log)  # what was measured before the failure
            raise
        finally:
            wl.stop()
        if L.errors:
            raise Failed("; ".join(L.errors[:5]))
        writes_ok = sum(1 for w in L.writes if w[2])
        log(f"chaos: {writes_ok} writes acknowledged, {len(L.writes) - writes_ok} failed; "
            f"{len(L.acked)} points acknowledged, {len(L.deleted)} deleted")
        # The failover times first: they stand even if a check below fails.
        print_failovers(d, log)
        check_searches(L, d.windows, log)
        ids, present = checks.check_all(c, L, log)
        if nodes == 3:
            checks.check_each_replica(c, L, ids, present, log)
