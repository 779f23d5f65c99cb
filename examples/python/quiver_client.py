#!/usr/bin/env python3
"""A walk through the quiver gRPC API from Python.

Creates a collection, upserts points with payloads, searches, gets, deletes,
scrolls and finally drops the collection, printing one line per step and
checking every answer (exit code 1 on a wrong answer, 2 on an RPC error).

    python3 gen_stubs.py                      # once: writes ./generated
    python3 quiver_client.py [--addr 127.0.0.1:6334] [--api-key KEY]

The API key (or env QUIVER_API_KEY) is sent as `authorization: Bearer KEY`
metadata on every call.
"""

import argparse
import os
import random
import sys

try:
    import grpc
except ImportError:
    sys.exit("error: grpcio is not installed; run `python3 -m pip install -r requirements.txt`")

HERE = os.path.dirname(os.path.abspath(__file__))

DIM = 8
N = 100


class Mismatch(Exception):
    """A server answer that differs from what the example expects."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Mismatch(what)


def to_value(pb, v):
    """A Python value as a quiver.v1.Value (str, int, float, bool or list)."""
    if isinstance(v, bool):  # before int: bool is an int subclass
        return pb.Value(bool_value=v)
    if isinstance(v, int):
        return pb.Value(int_value=v)
    if isinstance(v, float):
        return pb.Value(double_value=v)
    if isinstance(v, str):
        return pb.Value(string_value=v)
    if isinstance(v, (list, tuple)):
        return pb.Value(list_value=pb.ListValue(values=[to_value(pb, x) for x in v]))
    raise TypeError(f"unsupported payload value {v!r}")


def from_value(v):
    """A quiver.v1.Value as a Python value."""
    kind = v.WhichOneof("kind")
    if kind == "list_value":
        return [from_value(x) for x in v.list_value.values]
    if kind in (None, "null_value"):
        return None
    return getattr(v, kind)


def payload_of(pb, fields: dict) -> dict:
    return {k: to_value(pb, v) for k, v in fields.items()}


def decode(payload) -> dict:
    return {k: from_value(v) for k, v in sorted(payload.items())}


def make_points(n: int, seed: int = 7):
    """Deterministic vectors and payloads: point i has group i % 3."""
    rng = random.Random(seed)
    vectors = [[rng.uniform(-1.0, 1.0) for _ in range(DIM)] for _ in range(n)]
    payloads = [
        {
            "title": f"doc {i}",
            "group": i % 3,
            "score": i / 10,
            "even": i % 2 == 0,
            "tags": ["example", f"g{i % 3}"],
        }
        for i in range(n)
    ]
    return vectors, payloads


def run(args) -> None:
    sys.path.insert(0, args.stubs)
    try:
        from quiver.v1 import quiver_pb2 as pb
        from quiver.v1 import quiver_pb2_grpc as rpc
    except ImportError as e:
        sys.exit(f"error: {e}: run gen_stubs.py first (stubs expected in {args.stubs})")

    md = [("authorization", f"Bearer {args.api_key}")] if args.api_key else []
    channel = grpc.insecure_channel(args.addr)
    try:
        grpc.channel_ready_future(channel).result(timeout=args.timeout)
    except grpc.FutureTimeoutError:
        sys.exit(f"error: cannot reach {args.addr} within {args.timeout} s")
    collections = rpc.CollectionsStub(channel)
    points = rpc.PointsStub(channel)
    name = args.collection

    # 1. Create: 8-dimensional vectors, squared-L2 distance.
    info = collections.Create(
        pb.CreateCollectionRequest(name=name, dimension=DIM, metric=pb.METRIC_L2),
        metadata=md,
    ).collection
    check(info.settings.dimension == DIM, f"created dimension {info.settings.dimension}")
    print(f"create: {name} (dimension {info.settings.dimension}, metric L2)")

    # 2. Upsert points with payloads, in two batches.
    vectors, payloads = make_points(N)
    written = 0
    for lo in range(0, N, 50):
        batch = [
            pb.Point(id=i, vector=vectors[i], payload=payload_of(pb, payloads[i]))
            for i in range(lo, min(lo + 50, N))
        ]
        ack = points.Upsert(pb.UpsertRequest(collection=name, points=batch), metadata=md)
        written += ack.upserted
    check(written == N, f"upserted {written} of {N}")
    print(f"upsert: {written} points")

    # 3. Search with point 42's own vector: it is its own nearest neighbour.
    res = points.Search(
        pb.SearchRequest(
            collection=name, vector=vectors[42], k=5, ef=200, with_payload=True
        ),
        metadata=md,
    )
    hits = res.hits
    check(len(hits) == 5, f"search returned {len(hits)} hits")
    check(hits[0].id == 42 and hits[0].distance < 1e-4, f"top hit {hits[0].id}")
    check(decode(hits[0].payload) == payloads[42], "top hit payload")
    exact = sorted(range(N), key=lambda i: sum((a - b) ** 2 for a, b in zip(vectors[i], vectors[42])))
    check([h.id for h in hits] == exact[:5], f"hits {[h.id for h in hits]} != exact {exact[:5]}")
    print(
        f"search: top hit {hits[0].id} ({decode(hits[0].payload)['title']}), "
        f"ids {[h.id for h in hits]}, {res.time_us} us on the server"
    )

    # 3b. Filtered search: only group 1 with score >= 5, by an indexed field.
    collections.CreateFieldIndex(
        pb.CreateFieldIndexRequest(
            collection=name, field=pb.FieldIndex(key="group", type=pb.FIELD_TYPE_INTEGER)
        ),
        metadata=md,
    )
    flt = pb.Filter(
        must=[
            pb.Condition(match=pb.FieldMatch(key="group", value=pb.MatchValue(integer=1))),
            pb.Condition(range=pb.FieldRange(key="score", gte=5.0)),
        ]
    )
    res = points.Search(
        pb.SearchRequest(collection=name, vector=vectors[42], k=5, filter=flt, explain=True),
        metadata=md,
    )
    allowed = [i for i in range(N) if i % 3 == 1 and i / 10 >= 5.0]
    exact = sorted(allowed, key=lambda i: sum((a - b) ** 2 for a, b in zip(vectors[i], vectors[42])))
    check([h.id for h in res.hits] == exact[:5], f"filtered hits {[h.id for h in res.hits]} != {exact[:5]}")
    n = points.Count(pb.CountRequest(collection=name, filter=flt), metadata=md).count
    check(n == len(allowed), f"filtered count {n} != {len(allowed)}")
    plan = res.explain.tiers[0].plan
    print(f"filtered search: ids {[h.id for h in res.hits]} of {n} matching, plan {plan}")

    # 4. Get by id; unknown ids are left out.
    got = points.Get(
        pb.GetRequest(collection=name, ids=[7, 999, 8], with_payload=True, with_vector=True),
        metadata=md,
    ).points
    check([p.id for p in got] == [7, 8], f"get ids {[p.id for p in got]}")
    check(decode(got[0].payload) == payloads[7], "get payload")
    check(
        all(abs(a - b) < 1e-6 for a, b in zip(got[0].vector, vectors[7])), "get vector"
    )
    print(f"get: ids {[p.id for p in got]}, point 7 payload {decode(got[0].payload)}")

    # 5. Delete ten points.
    deleted = points.Delete(
        pb.DeleteRequest(collection=name, ids=list(range(10))), metadata=md
    ).deleted
    count = points.Count(pb.CountRequest(collection=name), metadata=md).count
    check(deleted == 10 and count == N - 10, f"deleted {deleted}, count {count}")
    print(f"delete: {deleted} points, {count} left")

    # 6. Scroll through what is left, 25 per page.
    seen, after, pages = [], None, 0
    while True:
        req = pb.ScrollRequest(collection=name, limit=25, with_payload=True)
        if after is not None:
            req.after = after
        page = points.Scroll(req, metadata=md)
        seen.extend(p.id for p in page.points)
        pages += 1
        if not page.HasField("next"):
            break
        after = page.next
    check(seen == list(range(10, N)), f"scroll saw {len(seen)} ids")
    print(f"scroll: {len(seen)} points in {pages} pages")

    # 7. Drop.
    collections.Drop(pb.DropCollectionRequest(name=name), metadata=md)
    names = collections.List(pb.ListCollectionsRequest(), metadata=md).names
    check(name not in names, f"{name} still listed after drop")
    print(f"drop: {name}")
    print("ok")


def main() -> int:
    parser = argparse.ArgumentParser(description="quiver gRPC API walk-through")
    parser.add_argument(
        "--addr",
        default=os.environ.get("QUIVER_ADDR", "127.0.0.1:6334"),
        help="server address (default: env QUIVER_ADDR or %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("QUIVER_API_KEY"),
        help="API key sent as `authorization: Bearer KEY` (default: env QUIVER_API_KEY)",
    )
    parser.add_argument("--collection", default="python_example", help="collection to create")
    parser.add_argument(
        "--stubs",
        default=os.path.join(HERE, "generated"),
        help="directory gen_stubs.py wrote to (default: %(default)s)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="connect timeout, seconds")
    args = parser.parse_args()
    try:
        run(args)
    except Mismatch as e:
        print(f"error: unexpected answer: {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
