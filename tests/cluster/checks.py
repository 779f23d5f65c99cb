"""Checks after the chaos: the shard map converges, every acknowledged
write is readable through every node with its exact vector and payload, no
deleted id reappears, counts and a full scroll agree with the ledger, and
(when every node holds every shard) each replica alone serves all of it.
"""

import time

import grpc

from outcome import Failed
from workload import COLL


def retry(f, timeout, what):
    """f() until it returns without an RPC error; Failed after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return f()
        except grpc.RpcError as e:
            if time.monotonic() > deadline:
                raise Failed(f"{what}: still {e.code().name} after {timeout} s: {e.details()}")
            time.sleep(0.3)


def wait_converged(cluster, node, timeout=60, log=print):
    """Every shard has a leader and all its replicas reachable at one LSN."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            lay = cluster.client(node).layout(COLL)
        except grpc.RpcError:
            lay = None
        if lay:
            lag = {s: [(r["node"], r["role"], r["lsn"]) for r in st["replicas"]]
                   for s, st in lay.items()
                   if not st["leader"] or len({r["lsn"] for r in st["replicas"]}) != 1
                   or any(r["role"] == "unreachable" for r in st["replicas"])}
            if not lag:
                lsns = {s: st["replicas"][0]["lsn"] for s, st in lay.items()}
                log(f"checks: replicas converged: shard -> LSN {lsns}")
                return lay
        if time.monotonic() > deadline:
            raise Failed(f"replicas did not converge in {timeout} s: {lag if lay else 'no layout'}")
        time.sleep(0.5)


def read_all(client, ids, rc, allow_partial=False):
    found = {}
    for i in range(0, len(ids), 500):
        got, missing = client.get(COLL, ids[i:i + 500], rc=rc, allow_partial=allow_partial,
                                  timeout=20)
        if missing:
            raise Failed(f"Get via {client.addr} ({rc}) misses shards {missing}")
        found.update(got)
    return found


def check_points(ledger, found, where):
    """`found` ({id: (vec, payload)}) against the ledger; returns ids of
    uncertain writes that exist."""
    L = ledger
    missing = [i for i in L.acked if i not in found]
    if missing:
        raise Failed(f"{where}: {len(missing)} acknowledged points missing, e.g. {missing[:10]}")
    for i, (vec, payload) in L.acked.items():
        got_vec, got_payload = found[i]
        if got_vec != vec:
            raise Failed(f"{where}: point {i} vector {got_vec} != acknowledged {vec}")
        if got_payload != payload:
            raise Failed(f"{where}: point {i} payload {got_payload} != acknowledged {payload}")
    back = sorted(i for i in L.deleted if i in found)
    if back:
        raise Failed(f"{where}: {len(back)} deleted ids reappeared, e.g. {back[:10]}")
    present = set()
    for src in (L.uncertain, L.del_uncertain):
        for i, (vec, payload) in src.items():
            if i in found:
                present.add(i)
                if found[i] != (vec, payload):
                    raise Failed(f"{where}: point {i} (write not acknowledged) exists "
                                 f"with {found[i]}, not what was sent")
    return present


def check_all(cluster, ledger, log=print, nodes=None):
    L = ledger
    nodes = sorted(nodes or cluster.nodes)
    wait_converged(cluster, nodes[0], log=log)
    ids = sorted(set(L.acked) | L.deleted | set(L.uncertain) | set(L.del_uncertain))
    present = None
    for n in nodes:
        c = cluster.client(n, timeout=20)
        for rc in ("leader", "any"):
            found = retry(lambda: read_all(c, ids, rc), 20, f"Get via {n} ({rc})")
            p = check_points(L, found, f"Get via {n} ({rc})")
            if present is None:
                present = p
            elif p != present:
                raise Failed(f"Get via {n} ({rc}) sees unacknowledged ids "
                             f"{sorted(p ^ present)[:10]} differently from {nodes[0]}")
            want = len(L.acked) + len(present)
            count, _ = retry(lambda: c.count(COLL, rc=rc, timeout=20), 20, f"Count via {n}")
            if count != want:
                raise Failed(f"Count via {n} ({rc}) = {count}, expected {want} "
                             f"({len(L.acked)} acknowledged + {len(present)} unacknowledged present)")
    scrolled = retry(lambda: cluster.client(nodes[0], 20).scroll_ids(COLL), 20, "Scroll")
    extra = set(scrolled) - set(L.acked) - present
    if extra or len(scrolled) != len(set(scrolled)):
        raise Failed(f"Scroll returned {len(extra)} unexpected ids (e.g. {sorted(extra)[:10]}) "
                     f"or duplicates ({len(scrolled)} ids, {len(set(scrolled))} distinct)")
    log(f"checks: {len(L.acked)} acknowledged points exact via {len(nodes)} nodes (leader and any), "
        f"{len(L.deleted)} deletes hold, {len(present)} of {len(L.uncertain) + len(L.del_uncertain)} "
        f"unacknowledged writes present; counts and scroll agree")
    return ids, present


def check_each_replica(cluster, ledger, ids, present, log=print):
    """With every node holding every shard: each node alone (the others
    SIGKILLed) serves all points, exact, with `any` reads."""
    nodes = sorted(cluster.nodes)
    for n in nodes:
        others = [m for m in nodes if m != n]
        for m in others:
            cluster.kill(m)
        c = cluster.client(n, timeout=20)
        found = retry(lambda: read_all(c, ids, "any"), 30, f"Get via {n} alone (any)")
        p = check_points(ledger, found, f"replica on {n} alone")
        if p != present:
            raise Failed(f"replica on {n} alone holds unacknowledged ids differently: "
                         f"{sorted(p ^ present)[:10]}")
        for m in others:
            cluster.nodes[m].start()
        cluster.wait_serving(others)
        wait_converged(cluster, n, log=lambda _: None)
    log(f"checks: each of {len(nodes)} replicas alone holds every acknowledged point, exact")
