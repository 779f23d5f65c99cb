"""Bad input to cluster mode (issue 15, Tests): a replication_factor above
the live node count and an out-of-range shard count are refused naming the
field; malformed node ids, an unreachable etcd at start, and a data
directory of another cluster (or another node) make `quiver serve` exit
non-zero with a clear message, and the refused data directory still works
for its own node afterwards.
"""

import os
import time

import grpc

from harness import Cluster, QuiverNode
from outcome import Failed


def expect_rpc_error(f, codes, word, what):
    try:
        f()
    except grpc.RpcError as e:
        if e.code().name not in codes:
            raise Failed(f"{what}: {e.code().name} ({e.details()}), expected one of {codes}")
        if word not in e.details():
            raise Failed(f"{what}: the message {e.details()!r} does not name {word!r}")
        return e
    raise Failed(f"{what}: accepted")


def expect_exit(node, timeout, words, what, log):
    """Starts `node`, expects it to exit non-zero within `timeout` s with
    one of `words` in its output; returns the seconds it took."""
    t0 = time.monotonic()
    node.start()
    code = node.wait_exit(timeout)
    took = time.monotonic() - t0
    if code is None:
        node.kill()
        raise Failed(f"{what}: still running after {timeout} s\n{node.tail()}")
    if code == 0:
        raise Failed(f"{what}: exit code 0\n{node.tail()}")
    # The process's own output: after this start's header line (which
    # echoes the command line, so it must not count).
    out = open(node.log_path, errors="replace").read().split("=== start")[-1].split("\n", 1)[1]
    if not any(w.lower() in out.lower() for w in words):
        raise Failed(f"{what}: exit code {code} but the output names none of {words}:\n{node.tail()}")
    last = [line for line in out.splitlines() if line.strip()][-1]
    log(f"bad_input: {what}: exit {code} after {took:.1f} s: {last.strip()[:160]}")
    return took


def run(args, log=print):
    with Cluster(args.bin, args.stubs, nodes=3, log=log) as c:
        c.start()
        cl = c.client("n1", timeout=30)
        codes = ("FAILED_PRECONDITION", "INVALID_ARGUMENT")
        e = expect_rpc_error(lambda: cl.create("toomany", 4, shards=2, rf=4), codes,
                             "replication_factor", "Create with replication_factor 4 on 3 nodes")
        log(f"bad_input: replication_factor 4 on 3 nodes: {e.code().name}: {e.details()}")
        expect_rpc_error(lambda: cl.create("noshards", 4, shards=0, rf=1),
                         ("INVALID_ARGUMENT",), "shards", "Create with shards 0")
        expect_rpc_error(lambda: cl.create("manyshards", 4, shards=257, rf=1),
                         ("INVALID_ARGUMENT",), "shards", "Create with shards 257")
        names = c.client("n2").collections.List(c.stubs[0].ListCollectionsRequest(), timeout=5).names
        if set(names) & {"toomany", "noshards", "manyshards"}:
            raise Failed(f"a refused Create left a collection behind: {list(names)}")
        c.create("n1", "ok", 4, shards=2, rf=3)  # the same shape with RF 3 is fine

        # Malformed node ids (1-64 of [A-Za-z0-9_-]).
        c.lab.add_host("x1")
        for bad in ("bad id!", "x" * 65, "n/1"):
            node = QuiverNode("x1", c.lab, c.binary, c.workdir, c.etcd.url(),
                              data_dir=os.path.join(c.workdir, "data", "x1-bad"))
            node.cmd[node.cmd.index("--node-id") + 1] = bad
            expect_exit(node, 30, ["node-id", "node id"], f"--node-id {bad[:12]!r}", log)

        # An etcd nobody serves: an address of the run's subnet no host holds.
        dead = f"{c.lab.subnet}.250"
        node = QuiverNode("x1", c.lab, c.binary, c.workdir, f"etcd://{dead}:2379",
                          data_dir=os.path.join(c.workdir, "data", "x1-noetcd"))
        took = expect_exit(node, 45, ["etcd"], "unreachable etcd", log)
        if took > 40:
            raise Failed(f"unreachable etcd: took {took:.0f} s to give up (bounded wait ~10 s)")

        # Another cluster's data directory, and another node's.
        n3 = c.nodes["n3"]
        if n3.stop() != 0:
            raise Failed(f"n3 did not exit 0 on SIGTERM\n{n3.tail()}")
        other = QuiverNode("n3", c.lab, c.binary, c.workdir, c.etcd.url(),
                           cluster_name="othercluster", data_dir=n3.data)
        other.log_path = os.path.join(c.workdir, "n3-other.log")
        expect_exit(other, 30, ["othercluster", "cluster name", "cluster_name", "cluster.json"],
                    "n3's data dir under --cluster-name othercluster", log)
        c.lab.add_host("x2")
        thief = QuiverNode("x2", c.lab, c.binary, c.workdir, c.etcd.url(), data_dir=n3.data)
        expect_exit(thief, 30, ["n3", "node id", "node_id", "node-id", "cluster.json"],
                    "n3's data dir under --node-id x2", log)
        c.restart("n3")
        info = c.client("n3").describe("ok")
        if info.cluster.shards != 2 or info.cluster.replication_factor != 3:
            raise Failed(f"after the refusals n3 describes `ok` as {info.cluster}")
        log("bad_input: n3 serves its own data directory again after both refusals")
