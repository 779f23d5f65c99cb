#!/usr/bin/env python3
"""Checks that a running server holds the first N rows of an .fbin file.

Used by deploy/test-container.sh after `docker kill -s KILL` + `docker start`:
the collection's Count is exactly N, and a sample of points read back with
Get carries the vectors of their rows (row i has id i, as `quiver import`
writes them; vectors are compared after normalising both sides, since a
cosine collection stores unit vectors).

    check_points.py --stubs DIR --addr HOST:PORT --api-key KEY \
        --collection NAME --fbin base.fbin --n 3000 [--sample 200]

Exits 0 when everything matches, 1 with a message saying what did not.
"""

import argparse
import math
import random
import struct
import sys


def read_rows(path: str, n: int):
    with open(path, "rb") as f:
        rows, dim = struct.unpack("<II", f.read(8))
        if n > rows:
            sys.exit(f"error: {path} has {rows} rows, fewer than --n {n}")
        data = f.read(4 * dim * n)
    flat = struct.unpack(f"<{dim * n}f", data)
    return [flat[i * dim : (i + 1) * dim] for i in range(n)]


def unit(v):
    norm = math.sqrt(sum(x * x for x in v)) or 1.0
    return [x / norm for x in v]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--stubs", required=True)
    p.add_argument("--addr", required=True)
    p.add_argument("--api-key", default="")
    p.add_argument("--collection", required=True)
    p.add_argument("--fbin", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--sample", type=int, default=200)
    a = p.parse_args()

    sys.path.insert(0, a.stubs)
    import grpc
    from quiver.v1 import quiver_pb2 as pb
    from quiver.v1 import quiver_pb2_grpc as rpc

    md = [("authorization", f"Bearer {a.api_key}")] if a.api_key else []
    channel = grpc.insecure_channel(a.addr)
    grpc.channel_ready_future(channel).result(timeout=30)
    points = rpc.PointsStub(channel)

    count = points.Count(pb.CountRequest(collection=a.collection), metadata=md).count
    if count != a.n:
        print(f"FAIL: count {count}, expected {a.n}")
        return 1
    rows = read_rows(a.fbin, a.n)
    ids = sorted(random.Random(7).sample(range(a.n), min(a.sample, a.n)))
    got = points.Get(
        pb.GetRequest(collection=a.collection, ids=ids, with_vector=True), metadata=md
    ).points
    if sorted(p.id for p in got) != ids:
        print(f"FAIL: Get returned {len(got)} of {len(ids)} sampled ids")
        return 1
    for pt in got:
        want, have = unit(rows[pt.id]), unit(pt.vector)
        err = max(abs(x - y) for x, y in zip(want, have)) if len(want) == len(have) else 1.0
        if err > 1e-4:
            print(f"FAIL: point {pt.id}: vector differs from row {pt.id} (max error {err:.2e})")
            return 1
    print(f"ok: count {count}; {len(ids)} sampled vectors match their rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
