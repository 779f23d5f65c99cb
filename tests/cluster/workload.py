"""The chaos workload: a writer (majority upserts of fresh ids with
payloads, and deletes of some acknowledged ids) and a searcher (filtered
searches), each in its own thread, sending only to the nodes the driver
marks up.  Searches rotate between read_consistency any,
leader, and leader with allow_partial (an answer listing missing shards
is recorded as PARTIAL).

Everything is recorded in a `Ledger`: ids whose upsert was acknowledged
(with the exact vector and payload sent), ids whose upsert failed (they may
or may not exist; if they do, with what was sent), ids whose delete was
acknowledged or failed, and the time and outcome of every request, so the
checks afterwards and the availability windows can be judged.
"""

import random
import struct
import threading
import time

import grpc

COLL = "chaos"
DIM = 8
GROUPS = 5


def f32(x):
    """x rounded to the nearest float32 (what the server stores and returns)."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def point(i, rng):
    vec = [f32(rng.uniform(-1, 1)) for _ in range(DIM)]
    payload = {"grp": i % GROUPS, "tag": f"p{i}", "score": rng.random(), "tags": ["a", i % 7]}
    return i, vec, payload


def code_of(e):
    """The status code name of an RPC error; grpcio reports some client-side
    deadlines as CANCELLED "Timeout expired": those count as DEADLINE_EXCEEDED."""
    name = e.code().name
    if name == "CANCELLED" and "Timeout expired" in (e.details() or ""):
        return "DEADLINE_EXCEEDED"
    return name


class Ledger:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}          # id -> (vector, payload): upsert acknowledged
        self.uncertain = {}      # id -> (vector, payload): upsert failed
        self.deleted = set()     # delete acknowledged
        self.del_uncertain = {}  # id -> (vector, payload): delete failed
        self.writes = []         # (t_start, t_end, ok, code)
        self.searches = []       # (t, ok, code, node)
        self.errors = []         # broken promises seen during the run (message)

    def first_write_after(self, t):
        """When the first write sent at or after `t` was acknowledged (None: none yet)."""
        with self.lock:
            return min((w[1] for w in self.writes if w[0] >= t and w[2]), default=None)


class Workload:
    def __init__(self, cluster, ledger, seed=1):
        self.cluster = cluster
        self.ledger = ledger
        self.up = set(cluster.nodes)   # nodes the driver says are reachable
        self.up_lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.rng = random.Random(seed)
        self.threads = [threading.Thread(target=self._guard, args=(f,), daemon=True)
                        for f in (self._writer, self._searcher)]

    def set_up(self, name, up):
        with self.up_lock:
            (self.up.add if up else self.up.discard)(name)

    def _entry(self, rng):
        with self.up_lock:
            up = sorted(self.up)
        return rng.choice(up) if up else None

    def _client(self, rng, clients):
        """A random node that is up and its client (kept in `clients`), or
        (None, None)."""
        node = self._entry(rng)
        if node is None:
            return None, None
        if node not in clients:
            clients[node] = self.cluster.fresh_client(node, timeout=3.0)
        return node, clients[node]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)

    def _guard(self, f):
        try:
            f()
        except Exception as e:  # noqa: BLE001 - a crash of the workload is a failure
            with self.ledger.lock:
                self.ledger.errors.append(f"workload thread crashed: {e!r}")

    def _writer(self):
        rng = random.Random(self.rng.random())
        clients = {}
        next_id, it = 1, 0
        L = self.ledger
        while not self.stop_ev.is_set():
            node, c = self._client(rng, clients)
            if c is None:
                time.sleep(0.05)
                continue
            it += 1
            if it % 6 == 0 and len(L.acked) > 20:
                with L.lock:
                    ids = rng.sample(sorted(L.acked), 3)
                t0 = time.monotonic()
                try:
                    c.delete(COLL, ids, wc="majority")
                    ok, code = True, "OK"
                except grpc.RpcError as e:
                    ok, code = False, code_of(e)
                with L.lock:
                    for i in ids:
                        rec = L.acked.pop(i)
                        if ok:
                            L.deleted.add(i)
                        else:
                            L.del_uncertain[i] = rec
                    L.writes.append((t0, time.monotonic(), ok, code))
                continue
            # 20 ids: a batch touches every one of 3 shards but with
            # probability 3 * (2/3)^20 < 0.1 %, so the first batch
            # acknowledged after a fault tells the affected shard writes again.
            batch = [point(i, rng) for i in range(next_id, next_id + 20)]
            next_id += 20
            t0 = time.monotonic()
            try:
                c.upsert(COLL, batch, wc="majority")
                ok, code = True, "OK"
            except grpc.RpcError as e:
                ok, code = False, code_of(e)
            with L.lock:
                for i, v, p in batch:
                    (L.acked if ok else L.uncertain)[i] = (v, p)
                L.writes.append((t0, time.monotonic(), ok, code))
            time.sleep(0.03)
        for c in clients.values():
            c.close()

    def _searcher(self):
        rng = random.Random(self.rng.random())
        clients = {}
        n = 0
        L = self.ledger
        while not self.stop_ev.is_set():
            node, c = self._client(rng, clients)
            if c is None:
                time.sleep(0.05)
                continue
            g = rng.randrange(GROUPS)
            vec = [rng.uniform(-1, 1) for _ in range(DIM)]
            # Rotate: any replica, the leaders, the leaders with allow_partial.
            n += 1
            rc, partial = [("any", False), ("leader", False), ("leader", True)][n % 3]
            t = time.monotonic()
            try:
                r = c.search(COLL, vec, k=10, flt=c.match_filter("grp", g), rc=rc,
                             allow_partial=partial)
                ok, code = True, "OK"
                if r.missing_shards:
                    code = "PARTIAL"
                bad = [h.id for h in r.hits if h.payload["grp"].int_value != g]
                if bad:
                    with L.lock:
                        L.errors.append(f"search via {node} with filter grp={g} "
                                        f"returned points of other groups: {bad}")
            except grpc.RpcError as e:
                ok, code = False, code_of(e)
                if code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                    with L.lock:
                        L.errors.append(f"search via {node}: {code}: {e.details()}")
            with L.lock:
                L.searches.append((t, ok, code, node))
            time.sleep(0.02)
        for c in clients.values():
            c.close()
