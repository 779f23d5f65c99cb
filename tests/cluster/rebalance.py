"""Rebalancing (issue 15, Tests): under majority writes, a fourth node
joins and receives replicas; then one of the first three is removed (SIGTERM,
its lease expires past the grace period) and its replicas are re-created
elsewhere.  Afterwards counts and every acknowledged point check out on
the remaining nodes (checks.check_all).

Skipped, with the reason, when Describe never shows a replica on the new
node within JOIN_TIMEOUT s (rebalancing not there yet).  The removal may
take up to QUIVER_TEST_REMOVE_TIMEOUT s (default 120) for the grace period.
"""

import os
import time

import checks
from chaos import layout, wait_leaders
from harness import Cluster
from outcome import Failed, Skipped
from workload import COLL, DIM, Ledger, Workload

JOIN_TIMEOUT = 60


def replicas_on(lay, node):
    return [s for s, st in lay.items() for r in st["replicas"]
            if r["node"] == node and r["role"] != "unreachable"]


def run(args, log=print):
    remove_timeout = float(os.environ.get("QUIVER_TEST_REMOVE_TIMEOUT", "120"))
    with Cluster(args.bin, args.stubs, nodes=3, log=log) as c:
        c.start()
        c.create("n1", COLL, DIM, shards=3, rf=3, wc="majority", keyword_index="grp")
        wait_leaders(c, set(c.nodes))
        L = Ledger()
        wl = Workload(c, L)
        wl.start()
        try:
            time.sleep(3)
            t0 = time.monotonic()
            c.add_node("n4")
            wl.set_up("n4", True)
            while not replicas_on(layout(c, set(c.nodes)), "n4"):
                if time.monotonic() - t0 > JOIN_TIMEOUT:
                    raise Skipped(f"Describe showed no replica on the new node n4 within "
                                  f"{JOIN_TIMEOUT} s: rebalancing onto a new node is not there yet")
                time.sleep(0.5)
            lay = checks.wait_converged(c, "n4", timeout=120, log=log)
            log(f"rebalance: n4 holds replicas of shards {replicas_on(lay, 'n4')} after "
                f"{time.monotonic() - t0:.1f} s")
            time.sleep(2)
            wl.set_up("n1", False)
            t0 = time.monotonic()
            c.nodes["n1"].stop()
            rest = ["n2", "n3", "n4"]
            while True:
                lay = layout(c, set(rest))
                on_n1 = [s for s, st in lay.items() for r in st["replicas"] if r["node"] == "n1"]
                if not on_n1 and all(len(st["replicas"]) == 3 for st in lay.values()):
                    break
                if time.monotonic() - t0 > remove_timeout:
                    raise Failed(f"{remove_timeout:.0f} s after n1 left, shards {on_n1} still "
                                 f"list it or lack a replica: {lay}")
                time.sleep(1)
            log(f"rebalance: n1's replicas re-created on {rest} after {time.monotonic() - t0:.1f} s")
            time.sleep(2)
        finally:
            wl.stop()
        if L.errors:
            raise Failed("; ".join(L.errors[:5]))
        checks.check_all(c, L, log, nodes=rest)
