#!/usr/bin/env python3
"""quiver's HNSW on f32 / f16 / SQ8 codes (with exact re-rank) against
hnswlib, faiss HNSWFlat and ScaNN, side by side, single-thread search.

Every index is built once: quiver builds one f32 graph per `--graphs`
entry (M:efConstruction, `quiver bench --save`), and each encoding runs on
those same graphs (`quiver bench --load G --encoding E --hnsw-rerank R`,
which re-encodes it and keeps the f32 vectors for the re-rank); hnswlib and
faiss build one index per `--graphs` entry too, and ScaNN one; all are
built in this process and kept. A system's envelope spans all its graphs
and settings, and the script prints which setting is on it at each recall. Then ROUNDS rounds run every system's whole sweep, in a
rotated order, and each setting's median QPS over the rounds is kept (recall
does not change between rounds). For each system the script reports the
QPS at recall@k 0.90 / 0.95 / 0.99 / 0.999, interpolated on the upper
envelope (Pareto front) of its sweep in log-QPS, and the ratios of quiver's
best encoding to every peer and to the best peer.

    pip install numpy hnswlib faiss-cpu scann
    cargo build --release --bin quiver
    python3 benches/peers/codes_compare.py \\
        --base ../shared/datasets/minilm-npm-384/base.fbin \\
        --query ../shared/datasets/minilm-npm-384/query.fbin \\
        --gt ../shared/datasets/minilm-npm-384/gt.ibin --metric cosine \\
        --graphs 16:200,32:400 --json codes.json

A peer that fails to import or build is reported and skipped. ScaNN
(squared L2, or dot product for cosine/ip): a tree of about 2*sqrt(n) leaves, asymmetric hashing
with 2 dimensions per block, exact reorder; the sweep crosses leaves searched
with the reorder depth. hnswlib and faiss use the same graphs (M,
efConstruction) and ef sweep as quiver.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hnswlib_compare import load, recall  # noqa: E402

TARGETS = (0.90, 0.95, 0.99, 0.999)


def normalize(x):
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1
    return (x / n).astype(np.float32)


def timed(fn, query):
    """Runs fn(query) -> labels once; returns (labels, seconds)."""
    t = time.perf_counter()
    labels = fn(query)
    return labels, time.perf_counter() - t


class Hnswlib:
    name = "hnswlib"

    def __init__(self, a, base):
        import hnswlib

        self.version = getattr(hnswlib, "__version__", "0.8.0")
        self.indexes = {}
        for m, efc in a.graphs:
            index = hnswlib.Index(space=a.metric, dim=base.shape[1])
            index.init_index(max_elements=base.shape[0], M=m, ef_construction=efc, random_seed=100)
            index.add_items(base, np.arange(base.shape[0]), num_threads=a.build_threads)
            self.indexes[graph_key(m, efc)] = index
        self.settings = [{"graph": g, "ef": ef} for g in self.indexes for ef in a.ef]
        self.k = a.k

    def search(self, s, query):
        index = self.indexes[s["graph"]]
        index.set_ef(max(s["ef"], self.k))
        return timed(lambda q: index.knn_query(q, k=self.k, num_threads=1)[0], query)


class FaissHnsw:
    name = "faiss HNSWFlat"

    def __init__(self, a, base):
        import faiss

        self.faiss = faiss
        self.version = faiss.__version__
        metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.cosine = a.metric == "cosine"
        faiss.omp_set_num_threads(a.build_threads)
        self.indexes = {}
        for m, efc in a.graphs:
            index = faiss.IndexHNSWFlat(base.shape[1], m, metric)
            index.hnsw.efConstruction = efc
            index.add(normalize(base) if self.cosine else base)
            self.indexes[graph_key(m, efc)] = index
        faiss.omp_set_num_threads(1)
        self.settings = [{"graph": g, "ef": ef} for g in self.indexes for ef in a.ef]
        self.k = a.k

    def search(self, s, query):
        index = self.indexes[s["graph"]]
        index.hnsw.efSearch = max(s["ef"], self.k)
        q = normalize(query) if self.cosine else query
        return timed(lambda q: index.search(q, self.k)[1], q)


class Scann:
    name = "ScaNN"

    def __init__(self, a, base):
        import scann

        self.version = getattr(scann, "__version__", "1.4.2")
        if a.metric == "l2":
            dist, data = "squared_l2", base
        else:
            dist, data = "dot_product", normalize(base) if a.metric == "cosine" else base
        self.cosine = a.metric == "cosine"
        n = data.shape[0]
        leaves = int(round(2 * np.sqrt(n)))
        self.searcher = (
            scann.scann_ops_pybind.builder(data, a.k, dist)
            .tree(num_leaves=leaves, num_leaves_to_search=min(100, leaves), training_sample_size=n)
            .score_ah(2, anisotropic_quantization_threshold=0.2)
            .reorder(max(a.scann_reorder))
            .build()
        )
        self.settings = [{"leaves": l, "reorder": r} for l in a.scann_leaves if l <= leaves
                         for r in a.scann_reorder]
        self.k = a.k
        self.leaves = leaves

    def search(self, s, query):
        q = normalize(query) if self.cosine else query
        return timed(lambda q: self.searcher.search_batched(
            q, final_num_neighbors=self.k, leaves_to_search=s["leaves"],
            pre_reorder_num_neighbors=max(s["reorder"], self.k))[0], q)


def graph_key(m, efc):
    return f"M={m},efC={efc}"


def quiver_sweep(a, graph, encoding, reranks):
    """One pass of `quiver bench` over the saved f32 graph as `encoding`:
    a list of {ef, rerank, recall, qps}."""
    out = tempfile.NamedTemporaryFile(suffix=".json", delete=False).name
    cmd = [a.quiver, "bench", "--base", a.base, "--query", a.query, "--gt", a.gt, "--metric", a.metric,
           "--load", graph, "--encoding", encoding, "--hnsw-rerank", ",".join(map(str, reranks)),
           "--ef", ",".join(map(str, a.ef)), "--k", str(a.k), "--threads", "1", "--runs", "1",
           "--json", out, "--log", "warn"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        rep = json.load(f)
    os.unlink(out)
    return rep


def envelope_qps(points, target):
    """QPS at recall `target` on the upper envelope of (recall, qps) points,
    interpolated in log-QPS between the envelope points around it."""
    front = []
    for r, q in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or q > front[-1][1]:
            front.append((r, q))
    front.reverse()  # ascending recall, descending qps
    for (r0, q0), (r1, q1) in zip(front, front[1:]):
        if r0 <= target <= r1:
            if r1 == r0:
                return q1
            w = (target - r0) / (r1 - r0)
            return float(np.exp(np.log(q0) + w * (np.log(q1) - np.log(q0))))
    if front and front[0][0] >= target:
        return front[0][1]
    return None


def envelope_setting(points, target):
    """The setting (key) of the cheapest envelope point at recall >= target."""
    best = None
    for r, q, key in points:
        # Recall is a mean of per-query fractions: 0.999 can arrive as 0.99899999.
        if r + 1e-9 >= target and (best is None or q > best[1]):
            best = (r, q, key)
    return best[2] if best else None


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--query", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--metric", default="l2", choices=["l2", "ip", "cosine"])
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--graphs", default=None,
                   help="graphs as M:efConstruction,... (e.g. 16:200,32:400): quiver, hnswlib and faiss each "
                        "build every one and their envelopes span all (default: --m:--ef-construction)")
    p.add_argument("--ef", default="10,12,16,20,24,32,40,48,64,96,128,192,256,384,512,768")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--build-threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--encodings", default="f32:0,f16:0+2,sq8:0+2+4+8",
                   help="quiver encodings and their re-rank factors, e.g. f32:0,sq8:2+4")
    p.add_argument("--scann-leaves", default="12,16,24,32,48,64,96,128,192,256,320,400,447")
    p.add_argument("--scann-reorder", default="30,50,100,200,400")
    p.add_argument("--peers", default="hnswlib,faiss,scann")
    p.add_argument("--quiver", default="target/release/quiver")
    p.add_argument("--workdir", default=None, help="where the f32 graphs are saved (default: a temp dir)")
    p.add_argument("--reuse-graphs", action="store_true",
                   help="load a graph already saved in --workdir (f32-m{M}-efc{efC}.hnsw) instead of building it")
    p.add_argument("--json", help="write every curve, the envelope QPS and the ratios here")
    a = p.parse_args()
    a.ef = [int(x) for x in a.ef.split(",")]
    if a.graphs:
        a.graphs = [tuple(int(v) for v in g.split(":")) for g in a.graphs.split(",")]
    else:
        a.graphs = [(a.m, a.ef_construction)]
    a.scann_leaves = [int(x) for x in a.scann_leaves.split(",")]
    a.scann_reorder = [int(x) for x in a.scann_reorder.split(",")]
    encodings = []
    for item in a.encodings.split(","):
        enc, rr = item.split(":")
        encodings.append((enc, [int(r) for r in rr.split("+")]))

    base, query = load(a.base), load(a.query)
    gt = load(a.gt)[:, : a.k]
    workdir = a.workdir or tempfile.mkdtemp(prefix="codes-compare-")
    graphs = {}

    systems = {}
    info = {}
    for m, efc in a.graphs:
        g = graph_key(m, efc)
        graphs[g] = os.path.join(workdir, f"f32-m{m}-efc{efc}.hnsw")
        if a.reuse_graphs and os.path.exists(graphs[g]):
            print(f"quiver: reusing the f32 graph {graphs[g]}", flush=True)
            continue
        t = time.perf_counter()
        subprocess.run([a.quiver, "bench", "--base", a.base, "--query", a.query, "--gt", a.gt, "--metric", a.metric,
                        "--m", str(m), "--ef-construction", str(efc), "--build-threads",
                        str(a.build_threads), "--ef", "64", "--runs", "1", "--save", graphs[g], "--log", "warn"],
                       check=True, stdout=subprocess.DEVNULL)
        info.setdefault("quiver", {})[g] = {"build_seconds": time.perf_counter() - t}
        print(f"quiver: f32 graph {g} built and saved in {info['quiver'][g]['build_seconds']:.1f} s", flush=True)
    for name, cls in (("hnswlib", Hnswlib), ("faiss", FaissHnsw), ("scann", Scann)):
        if name not in a.peers.split(","):
            continue
        try:
            t = time.perf_counter()
            systems[name] = cls(a, base)
            info[name] = {"build_seconds": time.perf_counter() - t, "version": systems[name].version}
            print(f"{name}: built in {info[name]['build_seconds']:.1f} s", flush=True)
        except Exception as e:  # noqa: BLE001 - report any failure and go on
            info[name] = {"error": repr(e)}
            print(f"{name}: skipped ({e!r})", flush=True)

    # curves[system][setting key] = {"recall": r, "qps": [per round]}
    curves = {}
    order = [f"quiver {enc}" for enc, _ in encodings] + list(systems)
    for rnd in range(a.rounds):
        shift = rnd % len(order)
        for sysname in order[shift:] + order[:shift]:
            c = curves.setdefault(sysname, {})
            if sysname.startswith("quiver "):
                enc = sysname.split()[1]
                reranks = dict(encodings)[enc]
                for g, path in graphs.items():
                    rep = quiver_sweep(a, path, enc, reranks)
                    info.setdefault(sysname, {}).setdefault("index_bytes", {})[g] = rep["index_bytes"]
                    for r in rep["runs"]:
                        key = f"{g} ef={r['ef']} rerank={r.get('rerank', 0)}"
                        c.setdefault(key, {"recall": r["recall"], "qps": []})["qps"].append(r["qps"])
            else:
                s = systems[sysname]
                for setting in s.settings:
                    labels, secs = s.search(setting, query)
                    key = " ".join(f"{k}={v}" for k, v in setting.items())
                    e = c.setdefault(key, {"recall": recall(list(labels), gt, a.k), "qps": []})
                    e["qps"].append(len(query) / secs)
            print(f"round {rnd + 1}: {sysname} done", flush=True)

    table = {}
    chosen = {}
    for sysname, c in curves.items():
        pts = [(e["recall"], float(np.median(e["qps"])), key) for key, e in c.items()]
        table[sysname] = {str(t): envelope_qps([p[:2] for p in pts], t) for t in TARGETS}
        chosen[sysname] = {str(t): envelope_setting(pts, t) for t in TARGETS}
    quiver_best = {str(t): max((table[s][str(t)] or 0) for s in table if s.startswith("quiver ")) or None
                   for t in TARGETS}
    peers = [s for s in table if not s.startswith("quiver ")]
    best_peer = {str(t): max(((table[s][str(t)] or 0) for s in peers), default=0) or None for t in TARGETS}

    fmt = lambda v: f"{v:>9,.0f}" if v else f"{'-':>9}"  # noqa: E731
    print(f"\nmedian QPS over {a.rounds} rounds at recall@{a.k} (one search thread)")
    print(f"{'system':<18}" + "".join(f"{t:>10}" for t in TARGETS) + "   index MiB")
    for s in order:
        mib = info.get(s, {}).get("index_bytes")
        mib = " / ".join(f"{g}: {v / 2**20:.1f}" for g, v in mib.items()) if mib else ""
        print(f"{s:<18}" + "".join(" " + fmt(table[s][str(t)]) for t in TARGETS) + f"   {mib}")
    ratios = {}
    for s in peers + ["best peer"]:
        ref = best_peer if s == "best peer" else table[s]
        ratios[s] = {str(t): (quiver_best[str(t)] / ref[str(t)] if quiver_best[str(t)] and ref[str(t)] else None)
                     for t in TARGETS}
        print(f"{'quiver best / ' + s:<30}" + "".join(
            f"{(ratios[s][str(t)] or float('nan')):>8.2f}" for t in TARGETS))
    print("\nsetting of the first envelope point at or above each recall:")
    for s in order:
        print(f"  {s}: " + "; ".join(f"{t}: {chosen[s][str(t)]}" for t in TARGETS))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "info": info, "curves": curves, "qps_at_recall": table, "envelope_setting": chosen,
                       "quiver_best": quiver_best, "best_peer": best_peer, "ratios": ratios}, f, indent=2)


if __name__ == "__main__":
    main()
