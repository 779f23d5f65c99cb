#!/usr/bin/env python3
"""Filtered search side by side: quiver vs faiss HNSW + IDSelectorBitmap vs
exact brute force over the matching rows (issue 12).

Data: minilm-npm-384 (base.fbin, query.fbin, attributes.jsonl; line i of the
attributes = base id i). The filters are quiver filter JSON, read from
--filters (default: filtered_filters.json beside this script, a JSON array of
{"name", "filter"}: the very file handed to `quiver bench --filters`).

For every filter the script
  * computes which base rows match, in Python, with quiver's semantics
    (match / match_any / range / is_null / is_empty / has_id, must / should /
    must_not), and prints the selectivity, so it cross-checks quiver's own;
  * computes the exact filtered top-k by brute force (float64) over the
    matching rows: the ground truth of the peers' recall;
  * measures, single thread:
      faiss  IndexHNSWFlat (M, efConstruction, inner product), searched with
             SearchParametersHNSW(sel=IDSelectorBitmap, efSearch=ef) for each ef;
             QPS from one batched call (no Python overhead per query),
             p50/p99 from a second pass of one call per query;
      brute  numpy float32 matrix-vector product over the pre-gathered matching
             rows, one call per query, argpartition for the top k;
      quiver `quiver bench ... --attributes --filters --ef ... --runs 1 --json`,
             one subprocess per round on an index built once (--save, then
             --load); quiver computes its own filtered ground truth.
Each index is built once; then --rounds rounds run every system's sweep, in
an order rotated each round, and the medians per (system, filter, setting)
are reported: the recall/QPS curves, QPS at recall@k = --target (interpolated
on log QPS, "not reached" if never), and quiver / max(faiss at target, brute).

    pip install numpy faiss-cpu
    cargo build --release
    python3 benches/peers/filtered_compare.py \\
        --data ../shared/datasets/minilm-npm-384 \\
        --quiver target/release/quiver --work /tmp/fcmp --json /tmp/fcmp/results.json

Peers only (while quiver's side is not there): add --skip-quiver. While
developing: --query-limit 200 --rounds 1. A full run (1,000 queries, 3 rounds,
peers only) takes about 15 minutes on 2 busy cores; --no-latency halves
faiss's share. If quiver's JSON changes shape, parse_quiver_report() is the
one place to adapt. The faiss index is cached in --work
(faiss_hnsw_M{M}_efc{efC}.index) and reused on the next run unless --rebuild.
"""
import os

# One thread everywhere: must be set before numpy / faiss load their BLAS / OpenMP.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SYSTEMS = ("quiver", "faiss", "brute")
LABEL = {"quiver": "quiver", "faiss": "faiss HNSW + IDSelectorBitmap", "brute": "brute force (numpy)"}


# ---------------------------------------------------------------- data ----
def read_bin(path, dtype):
    with open(path, "rb") as f:
        n, d = np.fromfile(f, dtype=np.uint32, count=2)
        return np.fromfile(f, dtype=dtype, count=int(n) * int(d)).reshape(int(n), int(d))


def read_attributes(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


# ------------------------------------------------- filter semantics ----
# quiver's filter language, evaluated in Python (one boolean mask per node).
# A payload value that is a list matches element-wise; null never matches
# match / match_any / range.

def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _eq(payload, want):
    """Equality on string, integer or bool, of the same type only (a bool never
    equals an integer; a float payload never equals anything)."""
    for t in (bool, int, str):
        if isinstance(want, t):
            return type(payload) is t and payload == want
    return False


def _elements(v):
    """The scalars of a payload value: a list matches element-wise, at any depth."""
    if isinstance(v, list):
        for e in v:
            yield from _elements(e)
    else:
        yield v


def _leaf_mask(kind, body, attrs, path):
    n = len(attrs)
    if kind == "has_id":
        ids = np.asarray(body["ids"], dtype=np.int64)
        m = np.zeros(n, dtype=bool)
        m[ids[(ids >= 0) & (ids < n)]] = True
        return m
    key = body.get("key")
    if not isinstance(key, str):
        raise ValueError(f"{path}.key: missing or not a string")
    vals = [a.get(key, _MISSING) for a in attrs]
    if kind == "match":
        want = body["value"]
        test = lambda v: v is not _MISSING and any(_eq(e, want) for e in _elements(v))  # noqa: E731
    elif kind == "match_any":
        wants = body["values"]
        test = lambda v: v is not _MISSING and any(_eq(e, w) for e in _elements(v) for w in wants)  # noqa: E731
    elif kind == "range":
        bounds = {b: body[b] for b in ("gt", "gte", "lt", "lte") if b in body}
        if not bounds:
            raise ValueError(f"{path}: a range needs gt, gte, lt or lte")
        for b, x in bounds.items():
            if not _is_num(x) or (isinstance(x, float) and math.isnan(x)):
                raise ValueError(f"{path}.{b}: {x!r} is not a number")

        def inside(e):
            if not _is_num(e):
                return False
            return (("gt" not in bounds or e > bounds["gt"]) and ("gte" not in bounds or e >= bounds["gte"])
                    and ("lt" not in bounds or e < bounds["lt"]) and ("lte" not in bounds or e <= bounds["lte"]))
        test = lambda v: v is not _MISSING and any(inside(e) for e in _elements(v))  # noqa: E731
    elif kind == "is_null":
        test = lambda v: v is None  # noqa: E731  (present, value null)
    elif kind == "is_empty":
        test = lambda v: v is _MISSING or v is None or v == []  # noqa: E731
    else:
        raise ValueError(f"{path}: unknown condition {kind!r}")
    return np.fromiter((test(v) for v in vals), dtype=bool, count=n)


_MISSING = object()
LEAVES = ("match", "match_any", "range", "is_null", "is_empty", "has_id")


def filter_mask(flt, attrs, path="filter"):
    """Boolean mask over the base ids of the points that match `flt`."""
    if not isinstance(flt, dict):
        raise ValueError(f"{path}: a filter is a JSON object")
    combinators = [k for k in flt if k in ("must", "should", "must_not")]
    if combinators:
        other = [k for k in flt if k not in combinators]
        if other:
            raise ValueError(f"{path}.{other[0]}: a combination holds only must, should and must_not")
        m = np.ones(len(attrs), dtype=bool)
        for i, sub in enumerate(flt.get("must", [])):
            m &= filter_mask(sub, attrs, f"{path}.must[{i}]")
        if flt.get("should"):
            any_ = np.zeros(len(attrs), dtype=bool)
            for i, sub in enumerate(flt["should"]):
                any_ |= filter_mask(sub, attrs, f"{path}.should[{i}]")
            m &= any_
        for i, sub in enumerate(flt.get("must_not", [])):
            m &= ~filter_mask(sub, attrs, f"{path}.must_not[{i}]")
        return m
    if not flt:
        return np.ones(len(attrs), dtype=bool)  # {} matches everything
    if len(flt) != 1:
        raise ValueError(f"{path}: a condition object holds exactly one of {', '.join(LEAVES)}")
    kind, body = next(iter(flt.items()))
    if kind not in LEAVES:
        raise ValueError(f"{path}.{kind}: unknown condition")
    return _leaf_mask(kind, body, attrs, f"{path}.{kind}")


# ----------------------------------------------------- ground truth ----
def exact_topk(base, ids, query, k, chunk=128):
    """Exact top-k ids (max inner product, float64; ties: smaller id) over
    base[ids] for every query. Rows shorter than k when fewer points match."""
    sub = base[ids].astype(np.float64)
    kk = min(k, len(ids))
    out = np.empty((len(query), kk), dtype=np.int64)
    for s in range(0, len(query), chunk):
        sc = query[s:s + chunk].astype(np.float64) @ sub.T
        for j, row in enumerate(sc):
            c = min(len(ids), kk + 16)
            cand = np.argpartition(-row, c - 1)[:c] if c < len(ids) else np.arange(len(ids))
            order = np.lexsort((ids[cand], -row[cand]))[:kk]
            out[s + j] = ids[cand[order]]
    return out


def recall(found, gt):
    """recall@k: hits / |gt row| (the gt row is shorter than k when fewer than
    k points match), averaged over the queries as one ratio."""
    hits = tot = 0
    for f, g in zip(found, gt):
        hits += len(set(int(x) for x in f if x >= 0) & set(int(x) for x in g))
        tot += len(g)
    return hits / tot if tot else 1.0


def pct(lat, q):
    lat = sorted(lat)
    return lat[min(len(lat) - 1, int(round((len(lat) - 1) * q)))]


# ------------------------------------------------------------ faiss ----
def faiss_build(a, base):
    import faiss
    path = os.path.join(a.work, f"faiss_hnsw_M{a.m}_efc{a.ef_construction}_n{len(base)}.index")
    if os.path.exists(path) and not a.rebuild:
        idx = faiss.read_index(path)
        print(f"faiss: loaded {path} (built earlier; --rebuild to build again)", flush=True)
        return idx, {"loaded_from": path, "build_seconds": None}
    faiss.omp_set_num_threads(a.build_threads)
    idx = faiss.IndexHNSWFlat(base.shape[1], a.m, faiss.METRIC_INNER_PRODUCT)
    idx.hnsw.efConstruction = a.ef_construction
    t = time.perf_counter()
    idx.add(base)
    secs = time.perf_counter() - t
    faiss.omp_set_num_threads(1)
    faiss.write_index(idx, path)
    print(f"faiss: built in {secs:.1f} s on {a.build_threads} thread(s), saved {path}", flush=True)
    return idx, {"build_seconds": secs, "build_threads": a.build_threads, "saved_to": path}


def faiss_sweep(a, idx, query, filters):
    import faiss
    faiss.omp_set_num_threads(1)
    out = {}
    for f in filters:
        bitmap = np.packbits(f["mask"], bitorder="little")  # bit i of byte i>>3 = id i
        sel = faiss.IDSelectorBitmap(len(f["mask"]), faiss.swig_ptr(bitmap))
        rows = []
        for ef in a.ef:
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
            t0 = time.perf_counter()
            _, labels = idx.search(query, a.k, params=params)
            secs = time.perf_counter() - t0
            row = {"ef": ef, "recall": recall(labels, f["gt"]), "qps": len(query) / secs}
            if a.latency:
                lat = []
                for q in query:
                    q = q.reshape(1, -1)
                    t = time.perf_counter()
                    idx.search(q, a.k, params=params)
                    lat.append((time.perf_counter() - t) * 1e6)
                row["p50_us"], row["p99_us"] = pct(lat, 0.50), pct(lat, 0.99)
            rows.append(row)
        del sel, bitmap
        out[f["name"]] = rows
        print(f"  faiss  {f['name'][:40]:<40} " + " ".join(f"{r['recall']:.3f}/{r['qps']:.0f}" for r in rows),
              flush=True)
    return out


# ------------------------------------------------------ brute force ----
def brute_sweep(a, query, filters):
    out = {}
    k = a.k
    for f in filters:
        sub, ids = f["rows"], f["ids"]
        n = len(ids)
        found = np.empty((len(query), min(k, n)), dtype=np.int64)
        lat = np.empty(len(query))
        t0 = time.perf_counter()
        for i, q in enumerate(query):
            t = time.perf_counter()
            s = sub @ q
            if n > k:
                top = np.argpartition(s, n - k)[n - k:]
                top = top[np.argsort(-s[top])]
            else:
                top = np.argsort(-s)
            found[i] = ids[top]
            lat[i] = time.perf_counter() - t
        secs = time.perf_counter() - t0
        row = {"ef": None, "recall": recall(found, f["gt"]), "qps": len(query) / secs,
               "p50_us": float(np.percentile(lat, 50) * 1e6), "p99_us": float(np.percentile(lat, 99) * 1e6)}
        out[f["name"]] = [row]
        print(f"  brute  {f['name'][:40]:<40} {row['recall']:.3f}/{row['qps']:.0f}", flush=True)
    return out


# ----------------------------------------------------------- quiver ----
def quiver_cmd(a, filters_path, out, *, build):
    cmd = [a.quiver, "bench", "--base", a.base, "--query", a.query_file, "--metric", "cosine",
           "--attributes", a.attributes, "--filters", filters_path,
           "--m", str(a.m), "--ef-construction", str(a.ef_construction), "--k", str(a.k),
           "--threads", "1", "--runs", "1", "--json", out, "--log", "warn"]
    if a.query_limit:
        cmd += ["--query-limit", str(a.query_limit)]
    if build:
        cmd += ["--save", a.quiver_index, "--build-threads", str(a.build_threads),
                "--ef", str(a.quiver_ef[0])]
    else:
        cmd += ["--load", a.quiver_index, "--ef", ",".join(map(str, a.quiver_ef))]
    return cmd + a.quiver_arg


def quiver_run(a, filters_path, *, build):
    out = os.path.join(a.work, "quiver_build.json" if build else "quiver_round.json")
    cmd = quiver_cmd(a, filters_path, out, build=build)
    print("  $ " + " ".join(cmd), flush=True)
    t = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"quiver bench failed ({p.returncode}):\n{p.stderr[-4000:]}\n{p.stdout[-2000:]}")
    with open(out) as f:
        rep = json.load(f)
    rep.setdefault("_wall_seconds", wall)
    return rep


def parse_quiver_report(rep):
    """{filter name: {"selectivity", "runs": [{ef, recall, qps, p50_us, p99_us, plans}]}}
    from `quiver bench --filters --json`. Tolerant by design, as the format is
    new: the per-filter list may be the top level or sit under one of a few
    keys; the names of the fields inside are looked up among likely spellings.
    Adapt LIST_KEYS / the aliases here if the report changes."""
    LIST_KEYS = ("filters", "filtered", "filter_runs", "results", "per_filter")
    if isinstance(rep, list):
        items = rep
    else:
        items = next((rep[k] for k in LIST_KEYS if isinstance(rep.get(k), list)), None)
        if items is None and isinstance(rep.get("filters"), dict):  # {name: {...}}
            items = [dict(v, name=k) for k, v in rep["filters"].items()]
        if items is None:
            raise ValueError(f"no per-filter list in quiver's report (keys: {sorted(rep)})")

    def pick(d, *names):
        for n in names:
            if n in d and d[n] is not None:
                return d[n]
        return None

    out = {}
    for it in items:
        name = pick(it, "name", "filter_name", "label")
        runs = []
        for r in pick(it, "runs", "sweep", "rows") or []:
            runs.append({
                "ef": pick(r, "ef", "ef_search", "nprobe"),
                "recall": pick(r, "recall", "recall_at_k", "recall@10"),
                "qps": pick(r, "qps", "QPS"),
                "p50_us": pick(r, "p50_us", "p50"),
                "p99_us": pick(r, "p99_us", "p99"),
                "plans": pick(r, "plans", "plan_mix", "plan", "plans_mix"),
            })
        out[name] = {"selectivity": pick(it, "selectivity", "fraction"),
                     "matching": pick(it, "matching", "matches", "count", "cardinality"),
                     "runs": runs}
    return out


def fmt_plans(p):
    if p is None:
        return ""
    if isinstance(p, dict):
        tot = sum(v for v in p.values() if isinstance(v, (int, float)))
        if tot and tot > 1.000001:  # counts: show shares
            return ", ".join(f"{k} {v / tot:.0%}" for k, v in p.items() if v)
        return ", ".join(f"{k} {v:.0%}" if isinstance(v, float) else f"{k} {v}" for k, v in p.items() if v)
    if isinstance(p, list):
        return ", ".join(map(str, p))
    return str(p)


# ---------------------------------------------------------- summary ----
def median_runs(rounds):
    """rounds: list (one per round) of lists of rows with the same settings in
    the same order -> one row per setting, medians of the numbers."""
    rows = []
    for same in zip(*rounds):
        row = dict(same[0])
        for key in ("recall", "qps", "p50_us", "p99_us"):
            xs = [r.get(key) for r in same if r.get(key) is not None]
            row[key] = float(np.median(xs)) if xs else None
        rows.append(row)
    return rows


def qps_at(runs, target):
    """QPS at recall >= target: the best of the sweep points that reach it and
    of log-QPS interpolation on each segment (in sweep order) that crosses it;
    None when the curve never reaches it."""
    best = None
    pts = [(r["recall"], r["qps"]) for r in runs if r.get("recall") is not None and r.get("qps")]
    for r, q in pts:
        if r >= target:
            best = max(best or 0.0, q)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if min(r0, r1) < target <= max(r0, r1):
            w = (target - r0) / (r1 - r0)
            q = float(np.exp(np.log(q0) + w * (np.log(q1) - np.log(q0))))
            best = max(best or 0.0, q)
    return best


def cell(text):
    return str(text).replace("|", "\\|")


def fmt_qps(q):
    return "not reached" if q is None else f"{q:,.0f}"


def markdown(a, filters, res, meta):
    ef_cols = sorted(set(a.ef) | (set(a.quiver_ef) if "quiver" in res else set()))
    t = a.target
    lines = []
    lines.append(f"Recall@{a.k} / QPS, single thread, {meta['queries']} queries, "
                 f"medians of {a.rounds} interleaved round(s).")
    lines.append("")
    cols = [(sysname, title) for sysname, title in (("quiver", f"quiver QPS @{t}"),
                                                    ("faiss", f"faiss-filtered QPS @{t}"),
                                                    ("brute", "brute force QPS")) if sysname in res]
    hdr = ["filter", "selectivity"] + [title for _, title in cols]
    if "quiver" in res:
        hdr.append("quiver / best peer")
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for f in filters:
        s = f["summary"]
        cells = [cell(f["name"]), f"{100 * f['selectivity']:.2f} %"]
        cells += [fmt_qps(s.get(sysname)) for sysname, _ in cols]
        if "quiver" in res:
            if s.get("ratio") is not None:
                cells.append(f"{s['ratio']:.2f}x")
            else:
                cells.append("not reached" if s.get("quiver") is None else "no peer reached it")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Curves (recall / QPS per ef; brute force is exact, one point):")
    lines.append("")
    hdr = ["filter (selectivity)", "system"] + [f"ef={e}" for e in ef_cols]
    lines.append("| " + " | ".join(hdr) + " |")
    lines.append("|" + "---|" * len(hdr))
    for f in filters:
        first = True
        for sysname in ("quiver", "faiss"):
            if sysname not in res:
                continue
            by_ef = {r["ef"]: r for r in f["systems"][sysname]["runs"]}
            cells = [cell(f"{f['name']} ({100 * f['selectivity']:.2f} %)") if first else "", LABEL[sysname]]
            first = False
            for e in ef_cols:
                r = by_ef.get(e)
                cells.append("" if r is None else f"{r['recall']:.3f} / {r['qps']:,.0f}")
            lines.append("| " + " | ".join(cells) + " |")
        if "brute" in res:
            r = f["systems"]["brute"]["runs"][0]
            lines.append("| " + " | ".join(["" if not first else cell(f["name"]), LABEL["brute"],
                                             f"{r['recall']:.3f} / {r['qps']:,.0f} (exact)"]
                                            + [""] * (len(ef_cols) - 1)) + " |")
    if "quiver" in res:
        lines.append("")
        lines.append("quiver plan mix per ef:")
        lines.append("")
        lines.append("| filter | " + " | ".join(f"ef={e}" for e in a.quiver_ef) + " |")
        lines.append("|---|" + "---|" * len(a.quiver_ef))
        for f in filters:
            by_ef = {r["ef"]: r for r in f["systems"]["quiver"]["runs"]}
            lines.append(f"| {cell(f['name'])} | " + " | ".join(cell(fmt_plans((by_ef.get(e) or {}).get("plans")))
                                                        for e in a.quiver_ef) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------- main ----
def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(HERE, "..", "..", "..", "shared", "datasets", "minilm-npm-384"),
                   help="folder with base.fbin, query.fbin, gt.ibin, attributes.jsonl")
    p.add_argument("--base", help="default DATA/base.fbin")
    p.add_argument("--query", dest="query_file", help="default DATA/query.fbin")
    p.add_argument("--gt", help="default DATA/gt.ibin (unfiltered; only to check this script's ground truth)")
    p.add_argument("--attributes", help="default DATA/attributes.jsonl")
    p.add_argument("--filters", default=os.path.join(HERE, "filtered_filters.json"),
                   help='JSON array of {"name", "filter"} (quiver filter JSON)')
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument("--ef", default="16,32,64,128,256,512,1024", help="faiss efSearch sweep")
    p.add_argument("--quiver-ef", help="quiver ef sweep (default: --ef)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--target", type=float, default=0.95, help="recall for the QPS comparison")
    p.add_argument("--query-limit", type=int, help="use the first N queries")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--build-threads", type=int, default=1, help="faiss and quiver index builds")
    p.add_argument("--no-latency", dest="latency", action="store_false",
                   help="skip faiss's per-query pass (p50/p99); QPS comes from the batched pass anyway")
    p.add_argument("--quiver", default="target/release/quiver")
    p.add_argument("--quiver-arg", action="append", default=[],
                   help="extra argument for `quiver bench` (repeat), e.g. --quiver-arg=--log --quiver-arg=info")
    p.add_argument("--skip-quiver", action="store_true", help="peers only")
    p.add_argument("--skip-faiss", action="store_true")
    p.add_argument("--work", help="scratch folder: indexes, quiver's JSON (default: a new temp folder)")
    p.add_argument("--rebuild", action="store_true", help="build faiss again even if --work has it")
    p.add_argument("--json", help="write everything here")
    p.add_argument("--markdown", help="also write the Markdown tables here")
    a = p.parse_args()
    a.data = os.path.abspath(a.data)
    a.base = a.base or os.path.join(a.data, "base.fbin")
    a.query_file = a.query_file or os.path.join(a.data, "query.fbin")
    a.gt = a.gt or os.path.join(a.data, "gt.ibin")
    a.attributes = a.attributes or os.path.join(a.data, "attributes.jsonl")
    a.ef = [int(x) for x in a.ef.split(",")]
    a.quiver_ef = [int(x) for x in a.quiver_ef.split(",")] if a.quiver_ef else list(a.ef)
    a.work = a.work or tempfile.mkdtemp(prefix="filtered_compare.")
    os.makedirs(a.work, exist_ok=True)
    a.quiver_index = os.path.join(a.work, "quiver.idx")
    systems = [s for s in SYSTEMS if not (s == "quiver" and a.skip_quiver) and not (s == "faiss" and a.skip_faiss)]

    base = read_bin(a.base, np.float32)
    query = read_bin(a.query_file, np.float32)
    if a.query_limit:
        query = query[: a.query_limit]
    query = np.ascontiguousarray(query)
    attrs = read_attributes(a.attributes)
    if len(attrs) != len(base):
        sys.exit(f"{a.attributes}: {len(attrs)} lines for {len(base)} base vectors")
    with open(a.filters) as f:
        filters = json.load(f)
    print(f"{len(base)} x {base.shape[1]} base, {len(query)} queries, {len(filters)} filters, "
          f"systems {', '.join(systems)}, work {a.work}", flush=True)

    # The ground-truth code checked against the dataset's unfiltered gt.ibin.
    gt_check = None
    if os.path.exists(a.gt):
        ref = read_bin(a.gt, np.int32)[: len(query), : a.k]
        mine = exact_topk(base, np.arange(len(base)), query, a.k)
        gt_check = recall(mine, ref)
        print(f"ground truth check, no filter, against {os.path.basename(a.gt)}: recall {gt_check:.4f}", flush=True)
        if gt_check < 0.999:
            sys.exit("this script's exact top-k disagrees with gt.ibin")

    print(f"\n{'filter':<55} {'matching':>9} {'selectivity':>11}")
    for f in filters:
        f["mask"] = filter_mask(f["filter"], attrs)
        f["ids"] = np.flatnonzero(f["mask"]).astype(np.int64)
        f["matching"] = int(f["mask"].sum())
        f["selectivity"] = f["matching"] / len(base)
        print(f"{f['name']:<55} {f['matching']:>9} {100 * f['selectivity']:>10.2f}%", flush=True)
    t = time.perf_counter()
    for f in filters:
        f["gt"] = exact_topk(base, f["ids"], query, a.k)
        f["rows"] = np.ascontiguousarray(base[f["ids"]])  # pre-gathered for brute force
    print(f"filtered ground truth: {time.perf_counter() - t:.1f} s", flush=True)

    # Build every index once.
    meta = {"queries": len(query), "n": len(base), "dim": int(base.shape[1])}
    builds = {}
    if "faiss" in systems:
        import faiss
        meta["faiss_version"] = faiss.__version__
        fidx, builds["faiss"] = faiss_build(a, base)
    if "quiver" in systems:
        qf = os.path.join(a.work, "filters.json")
        with open(qf, "w") as fh:  # exactly {"name", "filter"}, as quiver reads it
            json.dump([{"name": f["name"], "filter": f["filter"]} for f in filters], fh)
        print("quiver: building the index once (--save)", flush=True)
        rep = quiver_run(a, qf, build=True)
        builds["quiver"] = {"build_seconds": rep.get("build_seconds"), "wall_seconds": rep.get("_wall_seconds"),
                            "index": a.quiver_index, "command": quiver_cmd(a, qf, "OUT", build=True)}
        print(f"quiver: built in {rep.get('build_seconds')} s", flush=True)

    # Interleaved rounds.
    res = {s: [] for s in systems}  # system -> list per round of {filter name: rows}
    raw_quiver = []
    orders = []
    for rnd in range(a.rounds):
        order = systems[rnd % len(systems):] + systems[: rnd % len(systems)]
        orders.append(order)
        print(f"\nround {rnd + 1}/{a.rounds}: {' -> '.join(order)}", flush=True)
        for s in order:
            t = time.perf_counter()
            if s == "faiss":
                res[s].append(faiss_sweep(a, fidx, query, filters))
            elif s == "brute":
                res[s].append(brute_sweep(a, query, filters))
            else:
                rep = quiver_run(a, qf, build=False)
                raw_quiver.append(rep)
                parsed = parse_quiver_report(rep)
                res[s].append({k: v["runs"] for k, v in parsed.items()})
                for f in filters:
                    got = parsed.get(f["name"])
                    if got is None:
                        sys.exit(f"quiver's report has no filter named {f['name']!r} (has {sorted(parsed)})")
                    f["quiver_selectivity"], f["quiver_matching"] = got["selectivity"], got["matching"]
                    if got["matching"] is not None and got["matching"] != f["matching"]:
                        print(f"  WARNING matching count of {f['name']!r}: quiver {got['matching']}, "
                              f"this script {f['matching']}", flush=True)
                    elif got["selectivity"] is not None and abs(got["selectivity"] - f["selectivity"]) > 0.5 / len(base):
                        print(f"  WARNING selectivity of {f['name']!r}: quiver {got['selectivity']:.6f}, "
                              f"this script {f['selectivity']:.6f}", flush=True)
                    print(f"  quiver {f['name'][:40]:<40} " +
                          " ".join(f"{r['recall']:.3f}/{r['qps']:.0f}" for r in got["runs"]), flush=True)
            print(f"  ({s}: {time.perf_counter() - t:.1f} s)", flush=True)

    # Medians and the comparison at the target recall.
    for f in filters:
        f["systems"] = {}
        f["summary"] = {}
        for s in systems:
            rows = median_runs([r[f["name"]] for r in res[s]])
            f["systems"][s] = {"runs": rows, "rounds": [r[f["name"]] for r in res[s]]}
            f["summary"][s] = qps_at(rows, a.target)
        best_peer = max([q for q in (f["summary"].get("faiss"), f["summary"].get("brute")) if q] or [0]) or None
        qv = f["summary"].get("quiver")
        f["summary"]["best_peer"] = best_peer
        f["summary"]["ratio"] = qv / best_peer if qv and best_peer else None

    md = markdown(a, filters, res, meta)
    print("\n" + md)
    if a.markdown:
        with open(a.markdown, "w") as fh:
            fh.write(md + "\n")
    if a.json:
        try:
            from threadpoolctl import threadpool_info
            pools = threadpool_info()
        except ImportError:
            pools = None
        out = {
            "config": {k: v for k, v in vars(a).items()},
            "machine": {"python": platform.python_version(), "numpy": np.__version__,
                        "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(), **meta},
            "threadpools": pools,
            "ground_truth_check_vs_gt_ibin": gt_check,
            "builds": builds,
            "round_orders": orders,
            "filters": [{k: v for k, v in f.items() if k not in ("mask", "ids", "gt", "rows")} for f in filters],
            "quiver_raw": raw_quiver,
            "markdown": md,
        }
        with open(a.json, "w") as fh:
            json.dump(out, fh, indent=2)
        print(f"\nwrote {a.json}")


if __name__ == "__main__":
    main()
