#!/usr/bin/env python3
"""Side-by-side: quiver SPANN (SSD tier) vs DiskANN (diskannpy) vs faiss IVF.

Everything is single-threaded search, recall@10 against the dataset's gt.ibin.
Resident memory is matched to quiver's `index_bytes` (head graph + posting
table + version map; page cache not counted):

* quiver SPANN: `quiver bench` (subprocess), warm page cache and --direct-io.
* DiskANN disk index (diskannpy.build_disk_index): PQ codes in RAM sized from
  quiver's index_bytes, no node cache; full vectors + graph on disk. diskannpy
  pins numpy==1.25, which breaks faiss (built for numpy 2), so it runs in its
  own venv (--diskann-python, default /tmp/diskann-venv/bin/python) through a
  worker mode of this same file, under subprocess timeouts (the disk index was
  once seen to hang after a good build). How it opened the index file
  (O_DIRECT or not) is read back from /proc/self/fdinfo.
* DiskANN in-memory index (reference, all vectors in RAM: NOT matched).
* faiss IVFPQ, m=192 (2 dims / sub-quantiser): matched memory.
* faiss IVFFlat + OnDiskInvertedLists (mmap'd lists, warm page cache): same
  accounting as quiver warm (resident = centroids + list table).
* faiss IVFFlat in RAM: all vectors resident, NOT matched memory.

Setup (once):
  python3 -m venv /tmp/diskann-venv && /tmp/diskann-venv/bin/pip install diskannpy
Run:
  python3 benches/peers/diskann_compare.py --data /work/shared/datasets/minilm-npm-384 \
      --quiver /work/target-main/release/quiver --work /tmp/peer-cmp --json /tmp/peer-cmp/results.json
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

K = 10
TARGET = 0.90


# ---------------------------------------------------------------- data ----
def read_fbin(path):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype=np.uint32, count=2)
        return np.fromfile(f, dtype=np.float32, count=int(n) * int(d)).reshape(int(n), int(d))


def read_ibin(path):
    with open(path, "rb") as f:
        n, k = np.fromfile(f, dtype=np.uint32, count=2)
        return np.fromfile(f, dtype=np.int32, count=int(n) * int(k)).reshape(int(n), int(k))


def recall_at_k(ids, gt, k=K):
    hits = 0
    for row, g in zip(ids, gt):
        hits += len(set(int(x) for x in row[:k]) & set(int(x) for x in g[:k]))
    return hits / (k * len(gt))


def io_read_bytes():
    """bytes this process fetched from the storage layer (O_DIRECT and libaio included)"""
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# ------------------------------------------------------------- DiskANN ----
def fd_flags_for(substr):
    """octal open flags of this process's fds whose target contains substr"""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            tgt = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if substr in tgt:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("flags:"):
                        fl = int(line.split()[1], 8)
                        out.append({"path": tgt, "flags_octal": oct(fl),
                                    "o_direct": bool(fl & os.O_DIRECT)})
    return out


def worker_disk_build(a):
    import diskannpy as dap
    base = read_fbin(os.path.join(a.data, "base.fbin"))
    n, d = base.shape
    t = time.time()
    dap.build_disk_index(
        data=base, distance_metric="l2", index_directory=a.index_dir,
        complexity=a.build_complexity, graph_degree=a.graph_degree,
        search_memory_maximum=a.search_mem_gb, build_memory_maximum=a.build_mem_gb,
        num_threads=a.build_threads, vector_dtype=np.float32)
    files = {f: os.path.getsize(os.path.join(a.index_dir, f)) for f in sorted(os.listdir(a.index_dir))}
    print(json.dumps({"build_seconds": time.time() - t, "files": files}))


def worker_disk_search(a):
    import diskannpy as dap
    q = read_fbin(os.path.join(a.data, "query.fbin"))
    gt = read_ibin(os.path.join(a.data, "gt.ibin"))
    if a.query_limit:
        q, gt = q[: a.query_limit], gt[: a.query_limit]
    rss0 = rss_bytes()
    # num_threads=1 hangs on the first search (diskannpy 0.7.0: main thread spins in timed futex
    # waits, no I/O); with 2 the scratch/IO-context pool has two slots. Queries are still issued
    # one at a time from this single Python thread, so search is single-threaded.
    idx = dap.StaticDiskIndex(index_directory=a.index_dir, num_threads=a.search_pool_threads,
                              num_nodes_to_cache=0, cache_mechanism=1,
                              distance_metric="l2", vector_dtype=np.float32,
                              dimensions=q.shape[1])
    rss1 = rss_bytes()
    fds = fd_flags_for("disk.index")
    runs = []
    for bw in a.beam_widths:
        for L in a.complexities:
            idx.search(q[0], k_neighbors=K, complexity=L, beam_width=bw)  # warm-up
            lat = np.empty(len(q))
            ids = np.empty((len(q), K), dtype=np.int64)
            io0 = io_read_bytes()
            t0 = time.perf_counter()
            for i in range(len(q)):
                s = time.perf_counter()
                r = idx.search(q[i], k_neighbors=K, complexity=L, beam_width=bw)
                lat[i] = time.perf_counter() - s
                ids[i] = r.identifiers[:K]
            tot = time.perf_counter() - t0
            io1 = io_read_bytes()
            # Device bytes per query (/proc/self/io read_bytes; O_DIRECT reads
            # are 4 KiB sectors, so bytes / 4096 = reads per query).
            rb = (io1 - io0) / len(q) if io0 is not None and io1 is not None else None
            runs.append({"beam_width": bw, "L": L, "recall": recall_at_k(ids, gt),
                         "qps": len(q) / tot, "mean_us": float(lat.mean() * 1e6),
                         "p99_us": float(np.percentile(lat, 99) * 1e6),
                         "mean_bytes_read": rb, "mean_ios": rb / 4096 if rb is not None else None})
            print(json.dumps({"progress": runs[-1]}), file=sys.stderr, flush=True)
    print(json.dumps({"rss_load_delta": rss1 - rss0, "fds": fds, "queries": len(q), "runs": runs}))


def worker_mem(a):
    import diskannpy as dap
    base = read_fbin(os.path.join(a.data, "base.fbin"))
    q = read_fbin(os.path.join(a.data, "query.fbin"))
    gt = read_ibin(os.path.join(a.data, "gt.ibin"))
    t = time.time()
    dap.build_memory_index(data=base, distance_metric="l2", index_directory=a.index_dir,
                           complexity=a.build_complexity, graph_degree=a.graph_degree,
                           num_threads=a.build_threads, vector_dtype=np.float32)
    build = time.time() - t
    files = {f: os.path.getsize(os.path.join(a.index_dir, f)) for f in sorted(os.listdir(a.index_dir))}
    idx = dap.StaticMemoryIndex(index_directory=a.index_dir, num_threads=1,
                                initial_search_complexity=max(a.complexities),
                                distance_metric="l2", vector_dtype=np.float32,
                                dimensions=base.shape[1])
    runs = []
    for L in a.complexities:
        lat = np.empty(len(q))
        ids = np.empty((len(q), K), dtype=np.int64)
        t0 = time.perf_counter()
        for i in range(len(q)):
            s = time.perf_counter()
            r = idx.search(q[i], k_neighbors=K, complexity=L)
            lat[i] = time.perf_counter() - s
            ids[i] = r.identifiers[:K]
        tot = time.perf_counter() - t0
        runs.append({"L": L, "recall": recall_at_k(ids, gt), "qps": len(q) / tot,
                     "mean_us": float(lat.mean() * 1e6), "p99_us": float(np.percentile(lat, 99) * 1e6)})
    print(json.dumps({"build_seconds": build, "files": files, "runs": runs}))


def run_worker(a, mode, extra, timeout):
    """run this file in worker mode under the diskannpy venv; never blocks past timeout"""
    cmd = [a.diskann_python, os.path.abspath(__file__), "--worker", mode, "--data", a.data] + extra
    t = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        return {"ok": False, "what": f"timed out after {timeout} s", "stderr_tail": err[-1500:]}
    except FileNotFoundError as e:
        return {"ok": False, "what": f"cannot start: {e}"}
    if p.returncode != 0:
        return {"ok": False, "what": f"exit status {p.returncode}", "stderr_tail": p.stderr[-1500:]}
    last = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not last:
        return {"ok": False, "what": "no JSON result", "stdout_tail": p.stdout[-1500:]}
    res = json.loads(last[-1])
    res.update(ok=True, wall_seconds=time.time() - t)
    return res


# --------------------------------------------------------------- faiss ----
def faiss_sweep(index, q, gt, nprobes):
    import faiss
    faiss.omp_set_num_threads(1)
    runs = []
    for nprobe in nprobes:
        faiss.extract_index_ivf(index).nprobe = nprobe
        index.search(q[:1], K)
        lat = np.empty(len(q))
        ids = np.empty((len(q), K), dtype=np.int64)
        t0 = time.perf_counter()
        for i in range(len(q)):
            s = time.perf_counter()
            _, I = index.search(q[i: i + 1], K)
            lat[i] = time.perf_counter() - s
            ids[i] = I[0]
        tot = time.perf_counter() - t0
        runs.append({"nprobe": nprobe, "recall": recall_at_k(ids, gt), "qps": len(q) / tot,
                     "mean_us": float(lat.mean() * 1e6), "p99_us": float(np.percentile(lat, 99) * 1e6)})
    return runs


def run_faiss(a, base, q, gt, quiver_bytes):
    import faiss
    # Train and add with every core; search single-threaded (faiss_sweep).
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    n, d = base.shape
    out = {}
    nprobes = [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128]

    # IVFPQ, matched memory: m=192 bytes/vector (largest divisor of d=384 with
    # codes <= quiver's index_bytes), nlist 256 so centroids stay small.
    nlist = 256
    m = max(x for x in range(1, d + 1) if d % x == 0 and n * x <= quiver_bytes)
    t = time.time()
    quant = faiss.IndexFlatIP(d)
    ivfpq = faiss.IndexIVFPQ(quant, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    ivfpq.train(base)
    ivfpq.add(base)
    build = time.time() - t
    mem = n * m + n * 8 + nlist * d * 4 + m * 256 * (d // m) * 4  # codes + ids + centroids + PQ codebooks
    out["faiss IVFPQ"] = {"desc": f"IVF{nlist},PQ{m}x8 (IP), all in RAM", "resident_bytes": mem,
                          "build_seconds": build, "io": "none (in RAM)",
                          "runs": faiss_sweep(ivfpq, q, gt, nprobes)}
    del ivfpq

    # IVFFlat, nlist ~ sqrt(n)*4
    nlist = 1024
    quant = faiss.IndexFlatIP(d)
    ivf = faiss.IndexIVFFlat(quant, d, nlist, faiss.METRIC_INNER_PRODUCT)
    t = time.time()
    ivf.train(base)
    ivf.add(base)
    build = time.time() - t
    out["faiss IVFFlat (RAM)"] = {"desc": f"IVF{nlist},Flat (IP), all vectors in RAM -- NOT matched memory",
                                  "resident_bytes": n * d * 4 + n * 8 + nlist * d * 4,
                                  "build_seconds": build, "io": "none (in RAM)",
                                  "runs": faiss_sweep(ivf, q, gt, nprobes)}

    # same IVFFlat, lists moved to an mmap'd file (OnDiskInvertedLists)
    os.makedirs(a.work, exist_ok=True)
    lists_path = os.path.join(a.work, "faiss_ivfflat.ondisk")
    if os.path.exists(lists_path):
        os.remove(lists_path)
    odl = faiss.OnDiskInvertedLists(nlist, ivf.code_size, lists_path)
    ilv = faiss.InvertedListsPtrVector()
    ilv.push_back(ivf.invlists)
    odl.merge_from_multiple(ilv.data(), ilv.size(), False, False)
    ivf.replace_invlists(odl, False)
    ivf.own_invlists = False
    out["faiss IVFFlat on-disk"] = {
        "desc": f"IVF{nlist},Flat (IP), OnDiskInvertedLists (mmap), warm page cache",
        "resident_bytes": nlist * d * 4 + nlist * 24,  # centroids + list table
        "disk_bytes": os.path.getsize(lists_path), "build_seconds": build,
        "io": "mmap, warm page cache",
        "runs": faiss_sweep(ivf, q, gt, nprobes)}
    return out


# -------------------------------------------------------------- quiver ----
def run_quiver(a, direct):
    d = a.data
    j = os.path.join(a.work, "quiver_direct.json" if direct else "quiver_warm.json")
    cmd = [a.quiver, "bench", "--index", "spann", "--load", a.quiver_index,
           "--base", f"{d}/base.fbin", "--query", f"{d}/query.fbin", "--gt", f"{d}/gt.ibin",
           "--metric", "cosine", "--runs", "3", "--json", j, "--log", "warn"]
    if direct:
        cmd += ["--nprobe", "4,8,12,16,24,32,48", "--direct-io", "--query-limit", "200"]
    else:
        cmd += ["--nprobe", "4,8,12,16,24,32,64,128,256"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit(f"quiver bench failed: {p.stderr[-2000:]}")
    with open(j) as f:
        return json.load(f), " ".join(cmd)


# -------------------------------------------------------------- report ----
def at_target(runs, target=TARGET):
    """interpolate log-QPS and mean latency at recall == target along a curve"""
    pts = sorted((r["recall"], r["qps"], r["mean_us"]) for r in runs)
    best = None
    for (r0, q0, l0), (r1, q1, l1) in zip(pts, pts[1:]):
        if r0 <= target <= r1 and r1 > r0:
            f = (target - r0) / (r1 - r0)
            cand = (math.exp(math.log(q0) + f * (math.log(q1) - math.log(q0))), l0 + f * (l1 - l0))
            if best is None or cand[0] > best[0]:
                best = cand
    for r, qq, l in pts:  # an exact hit, or a point above target faster than any interpolation
        if r >= target and (best is None or qq > best[0]):
            best = (qq, l)
    return best  # None: curve never reaches target


def ios_at(runs, target):
    """reads per query at the first point of the curve reaching target (– if unknown)"""
    for r in sorted(runs, key=lambda r: r["recall"]):
        if r["recall"] >= target:
            return f"{r['mean_ios']:.1f}" if r.get("mean_ios") is not None else "–"
    return "–"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/datasets/minilm-npm-384")
    ap.add_argument("--quiver", default="/work/target-main/release/quiver")
    ap.add_argument("--work", default="/tmp/peer-cmp")
    ap.add_argument("--json", default=None)
    ap.add_argument("--diskann-python", default="/tmp/diskann-venv/bin/python")
    ap.add_argument("--graph-degree", type=int, default=64)
    ap.add_argument("--build-complexity", type=int, default=100)
    ap.add_argument("--build-threads", type=int, default=2)
    ap.add_argument("--build-mem-gb", type=float, default=2.0)
    ap.add_argument("--search-mem-gb", type=float, default=None)
    ap.add_argument("--complexities", default="10,16,24,32,48,64,96,128")
    ap.add_argument("--beam-widths", default="2,4")
    ap.add_argument("--query-limit", type=int, default=500, help="DiskANN disk index: first N queries")
    ap.add_argument("--index-dir", default=None)
    ap.add_argument("--quiver-index", default=None)
    ap.add_argument("--skip-diskann", action="store_true")
    ap.add_argument("--skip-diskann-mem", action="store_true", help="skip the in-memory DiskANN reference")
    ap.add_argument("--search-pool-threads", type=int, default=2,
                    help="StaticDiskIndex num_threads (1 hangs in diskannpy 0.7.0); queries stay sequential")
    ap.add_argument("--worker", default=None)
    a = ap.parse_args()
    a.complexities = [int(x) for x in a.complexities.split(",")]
    a.beam_widths = [int(x) for x in a.beam_widths.split(",")]

    if a.worker:
        {"disk_build": worker_disk_build, "disk_search": worker_disk_search, "mem": worker_mem}[a.worker](a)
        return

    os.makedirs(a.work, exist_ok=True)
    a.quiver_index = a.quiver_index or os.path.join(a.work, "spann-idx")
    base = read_fbin(os.path.join(a.data, "base.fbin"))
    q = read_fbin(os.path.join(a.data, "query.fbin"))
    gt = read_ibin(os.path.join(a.data, "gt.ibin"))
    n, d = base.shape
    res = {"dataset": a.data, "n": n, "dim": d, "queries": len(q), "k": K, "target_recall": TARGET,
           "systems": {}, "notes": []}

    # ---- quiver
    if not os.path.exists(os.path.join(a.quiver_index, "postings.dat")):
        subprocess.run([a.quiver, "index", "--index", "spann", "--base", f"{a.data}/base.fbin",
                        "--metric", "cosine", "--out", a.quiver_index, "--log", "warn"], check=True)
    qw, cmd_w = run_quiver(a, direct=False)
    qd, cmd_d = run_quiver(a, direct=True)
    qbytes = qw["index_bytes"]
    for name, j, io, cmd in (("quiver SPANN (warm)", qw, "buffered pread, warm page cache", cmd_w),
                             ("quiver SPANN (O_DIRECT)", qd, "O_DIRECT, 200 queries", cmd_d)):
        res["systems"][name] = {"resident_bytes": j["index_bytes"], "disk_bytes": j["spann"]["disk_bytes"],
                                "io": io + f", {j['spann']['io_threads']} I/O threads", "command": cmd,
                                "runs": [{"nprobe": r["nprobe"], "recall": r["recall"], "qps": r["qps"],
                                          "mean_us": r["mean_us"], "p99_us": r["p99_us"],
                                          "mean_bytes_read": r.get("mean_bytes_read"),
                                          "mean_ios": r.get("mean_ios"),
                                          "mean_rounds": r.get("mean_rounds")} for r in j["runs"]]}
    print(f"quiver index_bytes = {qbytes} ({qbytes / 2**20:.2f} MiB)", flush=True)

    # ---- DiskANN
    if not a.skip_diskann:
        # DiskANN sizes its PQ as floor(search_memory_maximum[GiB]*2^30 / n) bytes per vector
        # (budgets under ~0.45 GiB); leave room for the PQ pivots (256*d floats) so the total
        # resident set (compressed codes + pivots, no node cache) is about quiver's index_bytes.
        pq_bytes = (qbytes - 256 * d * 4) // n
        a.search_mem_gb = a.search_mem_gb or (pq_bytes * n + n // 2) / 2**30
        idx_dir = a.index_dir or os.path.join(a.work, "diskann-disk")
        os.makedirs(idx_dir, exist_ok=True)
        common = ["--search-pool-threads", str(a.search_pool_threads), "--graph-degree", str(a.graph_degree), "--build-complexity", str(a.build_complexity),
                  "--build-threads", str(a.build_threads), "--complexities", ",".join(map(str, a.complexities)),
                  "--beam-widths", ",".join(map(str, a.beam_widths))]
        ent = {"params": {"graph_degree": a.graph_degree, "build_complexity": a.build_complexity,
                          "search_memory_maximum_gb": a.search_mem_gb, "build_memory_maximum_gb": a.build_mem_gb,
                          "target_pq_bytes": pq_bytes, "metric": "l2 (unit vectors; disk cosine unsupported)",
                          "num_nodes_to_cache": 0, "search_threads": 1}}
        print(f"DiskANN disk build: search_memory_maximum={a.search_mem_gb:.6f} GiB (~{pq_bytes} B/vector PQ)", flush=True)
        if os.path.exists(os.path.join(idx_dir, "ann_disk.index")):  # reuse an earlier build
            b = {"ok": True, "reused": True, "files": {f: os.path.getsize(os.path.join(idx_dir, f))
                                                       for f in sorted(os.listdir(idx_dir))}}
        else:
            b = run_worker(a, "disk_build", common + ["--index-dir", idx_dir, "--search-mem-gb", str(a.search_mem_gb),
                                                  "--build-mem-gb", str(a.build_mem_gb)], timeout=900)
        ent["build"] = b
        if b.get("ok"):
            s = run_worker(a, "disk_search", common + ["--index-dir", idx_dir, "--query-limit", str(a.query_limit)],
                           timeout=900)
            ent["search"] = s
            if s.get("ok"):
                f = b["files"]
                resident = sum(v for k_, v in f.items() if "pq_compressed" in k_ or "pq_pivots" in k_)
                direct = any(x["o_direct"] for x in s["fds"])
                for bw in a.beam_widths:
                    res["systems"][f"DiskANN disk (W={bw})"] = {
                        "resident_bytes": resident,
                        "disk_bytes": sum(v for k_, v in f.items() if k_.endswith("disk.index")),
                        "io": ("O_DIRECT (libaio), no node cache" if direct else "buffered (page cache)")
                              + f"; fdinfo {s['fds']}",
                        "runs": [r for r in s["runs"] if r["beam_width"] == bw]}
                ent["rss_load_delta"] = s["rss_load_delta"]
        res["diskann"] = ent
        mem_dir = os.path.join(a.work, "diskann-mem")
        if not a.skip_diskann_mem:
            os.makedirs(mem_dir, exist_ok=True)
            mres = run_worker(a, "mem", common + ["--index-dir", mem_dir], timeout=900)
            res["diskann_mem"] = mres
            if mres.get("ok"):
                res["systems"]["DiskANN in-memory (ref)"] = {
                    "resident_bytes": sum(mres["files"].values()),
                    "io": "none; all vectors + graph in RAM -- NOT matched", "runs": mres["runs"]}
        print(json.dumps({k_: (v if k_ != "search" else {kk: vv for kk, vv in v.items() if kk != "runs"})
                          for k_, v in ent.items()}, indent=1)[:3000], flush=True)

    # ---- faiss
    res["systems"].update(run_faiss(a, base, q, gt, qbytes))

    # ---- table
    print("\nper-curve sweeps:")
    for name, s in res["systems"].items():
        print(f"  {name}: " + "  ".join(
            f"[{r.get('nprobe', r.get('L'))}] {r['recall']:.3f}/{r['qps']:.0f}" for r in s["runs"]))
    print(f"\n| system | resident MB | I/O | QPS @ recall@10 0.90 | @ 0.95 | reads/query at 0.90 / 0.95 | max recall |")
    print("|---|---:|---|---:|---:|---:|---:|")
    fmt = lambda h: f"{h[0]:.0f}" if h else "not reached"
    for name, s in res["systems"].items():
        hit, hit95 = at_target(s["runs"]), at_target(s["runs"], 0.95)
        mx = max(r["recall"] for r in s["runs"])
        s["at_target"] = {"qps": hit[0], "mean_us": hit[1]} if hit else None
        s["at_095"] = {"qps": hit95[0], "mean_us": hit95[1]} if hit95 else None
        io = s["io"].split("; fdinfo")[0]
        reads = "/".join(ios_at(s["runs"], t) for t in (0.90, 0.95))
        print(f"| {name} | {s['resident_bytes'] / 1e6:.2f} | {io} | {fmt(hit)} | {fmt(hit95)} | {reads} | {mx:.3f} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
