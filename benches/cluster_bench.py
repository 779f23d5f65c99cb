#!/usr/bin/env python3
"""The cost of cluster mode, in one run (issue 15, Benchmark): search QPS,
p50/p99 and recall@10 of a 3-shard x RF 1 and a 1-shard x RF 3 collection
(plus 1 x RF 1) on a 3-node cluster, against a single node (no --cluster)
holding the same data; and the ingest rate of each (`quiver import`, RF 3
with majority writes against RF 1). Prints a markdown table.

    sudo python3 benches/cluster_bench.py [--bin target/release/quiver] [--n 20000]

Every host (3 etcd members, 3 quiver nodes, the single node) runs in its
own network namespace of one private bridge (tests/cluster/harness.py), so
the single node pays the same network hop as the cluster. Data: the first
--n vectors of ../shared/datasets/minilm-npm-384 (cosine), its 1,000
queries, ground truth computed for those --n vectors with `quiver gt`.
Queries come from `quiver query` in the root namespace at --concurrency.
On a 2-core machine this measures overhead (routing, fan-out, merge,
replication), not scaling.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "cluster"))

import stubs as stubs_mod  # noqa: E402
from harness import Cluster, QuiverNode  # noqa: E402

# (label, shards, replication factor); None: the single node.
SETUPS = [("single node", None, None), ("cluster 1 shard x RF 1", 1, 1),
          ("cluster 3 shards x RF 1", 3, 1), ("cluster 1 shard x RF 3 (majority)", 1, 3)]


def sh(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"cluster_bench: `{' '.join(map(str, cmd))}` failed:\n{p.stdout}{p.stderr}")
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target", "release", "quiver"))
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "datasets", "minilm-npm-384"))
    ap.add_argument("--n", type=int, default=20000, help="base vectors to import")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500, help="import batch size")
    ap.add_argument("--setups", default="single,1x1,3x1,1x3",
                    help="comma-separated subset of single,1x1,3x1,1x3 (the first is the reference)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("cluster_bench: needs root (network namespaces)")
    binary = os.path.abspath(args.bin)
    base = os.path.join(args.data, "base.fbin")
    queries = os.path.join(args.data, "query.fbin")
    for f in (binary, base, queries):
        if not os.path.exists(f):
            sys.exit(f"cluster_bench: {f} is missing")
    work = tempfile.mkdtemp(prefix="quiver-cbench-")
    gt = os.path.join(work, "gt.ibin")
    sh([binary, "--log", "warn", "gt", "--base", base, "--query", queries, "--k", "10",
        "--metric", "cosine", "--limit", str(args.n), "--out", gt])
    stubs = stubs_mod.load(os.path.join(work, "stubs"))
    rows = []
    cluster_nodes = 0 if args.setups == "single" else 3
    with Cluster(binary, stubs, nodes=cluster_nodes, log=lambda m: print(m, file=sys.stderr)) as c:
        c.start()
        c.lab.add_host("s1")
        single = QuiverNode("s1", c.lab, binary, c.workdir, None)
        c.nodes["s1"] = single
        single.start()
        c.wait_serving(["s1"])
        keys = {"single": SETUPS[0], "1x1": SETUPS[1], "3x1": SETUPS[2], "1x3": SETUPS[3]}
        for key in args.setups.split(","):
            if key not in keys:
                sys.exit(f"cluster_bench: unknown setup {key!r} (one of {list(keys)})")
            label, shards, rf = keys[key]
            node = "s1" if shards is None else "n1"
            addr = c.nodes[node].addr
            coll = "bench" if shards is None else f"bench_{shards}x{rf}"
            cmd = [binary, "--log", "warn", "import", "--addr", addr, "--collection", coll,
                   "--create", "--metric", "cosine", "--input", base, "--limit", str(args.n),
                   "--batch", str(args.batch)]
            if shards is not None:
                cmd += ["--shards", str(shards), "--replication-factor", str(rf)]
            t0 = time.monotonic()
            sh(cmd)
            ingest = args.n / (time.monotonic() - t0)
            out = os.path.join(work, f"{coll}.json")
            sh([binary, "--log", "warn", "query", "--addr", addr, "--collection", coll,
                "--queries", queries, "--gt", gt, "--k", "10", "--limit", str(args.queries),
                "--concurrency", str(args.concurrency), "--json", out])
            r = json.load(open(out))
            if r.get("errors"):
                sys.exit(f"cluster_bench: {label}: {r['errors']} query errors")
            rows.append((label, ingest, r["qps"], r["p50_us"] / 1000, r["p99_us"] / 1000, r["recall"]))
            print(f"cluster_bench: {label}: {ingest:.0f} points/s, {r['qps']:.0f} QPS",
                  file=sys.stderr)
    print(f"\n{args.n} vectors of minilm-npm-384 (384-d, cosine), {args.queries} queries, "
          f"k=10, concurrency {args.concurrency}, import batches of {args.batch}; "
          f"{cluster_nodes} cluster nodes + 3 etcd members on {os.cpu_count()} cores\n")
    print("| setup | import points/s | search QPS | p50 ms | p99 ms | recall@10 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, ingest, qps, p50, p99, recall in rows:
        print(f"| {label} | {ingest:.0f} | {qps:.0f} | {p50:.2f} | {p99:.2f} | {recall:.4f} |")
    ref = rows[0]
    print(f"\ncommand: sudo python3 benches/cluster_bench.py --n {args.n} --queries {args.queries} "
          f"--concurrency {args.concurrency} --batch {args.batch} --setups {args.setups}")
    for label, ingest, qps, *_ in rows[1:]:
        print(f"- {label}: {qps / ref[2]:.2f}x the single node's QPS, "
              f"{ingest / ref[1]:.2f}x its ingest rate")


if __name__ == "__main__":
    main()
