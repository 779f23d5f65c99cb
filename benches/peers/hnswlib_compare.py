#!/usr/bin/env python3
"""Side-by-side HNSW comparison: quiver vs hnswlib on the same files.

Both libraries build with the same M, efConstruction and build threads, then
sweep the same ef values with the same number of search threads. The script
prints both recall/QPS curves and the ratio of QPS (quiver / hnswlib) at
recall@k = 0.90, 0.95 and 0.99, interpolated on each curve.

    pip install numpy hnswlib
    cargo build --release
    python3 benches/peers/hnswlib_compare.py \
        --base ../shared/datasets/minilm-npm-384/base.fbin \
        --query ../shared/datasets/minilm-npm-384/query.fbin \
        --gt ../shared/datasets/minilm-npm-384/gt.ibin --metric cosine

The order of the two runs alternates with --quiver-first so neither always
gets the warmer machine.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def read_bin(path, dtype):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype=np.uint32, count=2)
        return np.fromfile(f, dtype=dtype, count=int(n) * int(d)).reshape(int(n), int(d))


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].view(dtype).copy()


def load(path):
    if path.endswith(".fbin"):
        return read_bin(path, np.float32)
    if path.endswith(".u8bin"):
        return read_bin(path, np.uint8).astype(np.float32)
    if path.endswith(".ibin"):
        return read_bin(path, np.int32)
    if path.endswith(".fvecs"):
        return read_vecs(path, np.float32)
    if path.endswith(".ivecs"):
        return read_vecs(path, np.int32)
    sys.exit(f"unsupported file {path}")


def recall(found, gt, k):
    hits = sum(len(set(f[:k]) & set(g[:k])) for f, g in zip(found, gt))
    return hits / (len(found) * k)


def run_hnswlib(a, base, query, gt):
    import hnswlib

    space = {"l2": "l2", "ip": "ip", "cosine": "cosine"}[a.metric]
    index = hnswlib.Index(space=space, dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], M=a.m, ef_construction=a.ef_construction, random_seed=100)
    t = time.perf_counter()
    index.add_items(base, np.arange(base.shape[0]), num_threads=a.build_threads)
    build = time.perf_counter() - t
    runs = []
    for ef in a.ef:
        index.set_ef(ef)
        # QPS: the whole query set in one call with `threads` threads, so
        # Python's per-call overhead does not count against hnswlib. The
        # median of `runs` passes is kept.
        passes = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            labels, _ = index.knn_query(query, k=a.k, num_threads=a.threads)
            passes.append(time.perf_counter() - t0)
        passes.sort()
        secs = passes[len(passes) // 2]
        # Latency: one query per call (includes a few us of Python overhead).
        lat = []
        for q in query:
            t = time.perf_counter()
            index.knn_query(q.reshape(1, -1), k=a.k, num_threads=1)
            lat.append((time.perf_counter() - t) * 1e6)
        lat.sort()
        runs.append({
            "ef": ef,
            "recall": recall(list(labels), gt, a.k),
            "qps": len(query) / secs,
            "p50_us": lat[len(lat) // 2],
            "p99_us": lat[int((len(lat) - 1) * 0.99)],
        })
    return {"index": "hnswlib", "build_seconds": build, "runs": runs}


def run_quiver(a):
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    cmd = [a.quiver, "bench", "--base", a.base, "--query", a.query, "--gt", a.gt, "--metric", a.metric,
           "--m", str(a.m), "--ef-construction", str(a.ef_construction), "--ef", ",".join(map(str, a.ef)),
           "--k", str(a.k), "--threads", str(a.threads), "--build-threads", str(a.build_threads),
           "--runs", str(a.runs), "--json", out, "--log", "warn"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        rep = json.load(f)
    os.unlink(out)
    return rep


def qps_at(runs, target):
    """QPS at recall `target`, interpolated linearly between the two sweep
    points around it (log-QPS); None when the curve never reaches it."""
    pts = sorted((r["recall"], r["qps"]) for r in runs)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return max(q0, q1)
            w = (target - r0) / (r1 - r0)
            return float(np.exp(np.log(q0) + w * (np.log(q1) - np.log(q0))))
    if pts and pts[0][0] >= target:
        return pts[0][1]
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", default="10,20,40,80,160,320")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quiver", default="target/release/quiver")
    p.add_argument("--quiver-first", action="store_true")
    p.add_argument("--json", help="write both reports and the ratios here")
    a = p.parse_args()
    a.ef = [int(x) for x in a.ef.split(",")]

    base, query = load(a.base), load(a.query)
    gt = load(a.gt)[:, : a.k]
    if a.quiver_first:
        q = run_quiver(a)
        h = run_hnswlib(a, base, query, gt)
    else:
        h = run_hnswlib(a, base, query, gt)
        q = run_quiver(a)

    print(f"{'':>6} {'quiver':>28} | {'hnswlib':>28}")
    print(f"{'ef':>6} {'recall':>8} {'QPS':>9} {'p50us':>9} | {'recall':>8} {'QPS':>9} {'p50us':>9}")
    for rq, rh in zip(q["runs"], h["runs"]):
        print(f"{rq['ef']:>6} {rq['recall']:>8.4f} {rq['qps']:>9.0f} {rq['p50_us']:>9.1f} | "
              f"{rh['recall']:>8.4f} {rh['qps']:>9.0f} {(rh['p50_us'] or 0):>9.1f}")
    print(f"build seconds ({a.build_threads} threads): quiver {q['build_seconds']:.2f}, hnswlib {h['build_seconds']:.2f}, "
          f"ratio hnswlib/quiver {h['build_seconds'] / q['build_seconds']:.2f}")
    ratios = {}
    for target in (0.90, 0.95, 0.99):
        qq, hh = qps_at(q["runs"], target), qps_at(h["runs"], target)
        ratios[str(target)] = qq / hh if qq and hh else None
        print(f"QPS at recall@{a.k}={target:.2f}: quiver {qq or float('nan'):.0f}, hnswlib {hh or float('nan'):.0f}, "
              f"ratio {ratios[str(target)] or float('nan'):.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"quiver": q, "hnswlib": h, "qps_ratio_at_recall": ratios}, f, indent=2)


if __name__ == "__main__":
    main()
