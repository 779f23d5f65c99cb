"""A small client of one quiver node for the cluster tests.

Wraps the generated stubs: Create with the cluster fields, Upsert/Delete
with a write consistency, Get/Search/Count/Scroll with a read consistency
and allow_partial, Describe's shard map as plain dicts, and the gRPC
health check (raw bytes of grpc.health.v1, so grpcio-health-checking is
not needed).  Payload values convert to and from Python values.
"""

import os
import sys

import grpc

# Payload values convert as the Python example client converts them.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "python"))
from quiver_client import from_value, to_value  # noqa: E402

WRITE = {"one": 1, "majority": 2, "all": 3}
READ = {"leader": 1, "any": 2}


def decode_payload(payload):
    return {k: from_value(v) for k, v in payload.items()}


class Client:
    def __init__(self, addr, stubs, timeout=5.0):
        self.pb, grpc_mod = stubs
        self.addr = addr
        self.timeout = timeout
        self.channel = grpc.insecure_channel(addr, options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 500),
            # Straight to the test host, whatever proxy the environment names.
            ("grpc.enable_http_proxy", 0),
        ])
        self.collections = grpc_mod.CollectionsStub(self.channel)
        self.points = grpc_mod.PointsStub(self.channel)
        self._health = self.channel.unary_unary("/grpc.health.v1.Health/Check",
                                                request_serializer=lambda b: b,
                                                response_deserializer=lambda b: b)

    def close(self):
        self.channel.close()

    # --- health --------------------------------------------------------------
    def health(self, timeout=1.0):
        """'SERVING', 'NOT_SERVING', or the error ('UNAVAILABLE', ...)."""
        try:
            raw = self._health(b"", timeout=timeout)
        except grpc.RpcError as e:
            return e.code().name
        # HealthCheckResponse{status = 1}: a varint field; 1 SERVING, 2 NOT_SERVING.
        status = raw[1] if len(raw) >= 2 and raw[0] == 0x08 else 0
        return {1: "SERVING", 2: "NOT_SERVING"}.get(status, f"STATUS_{status}")

    # --- collections ---------------------------------------------------------
    def create(self, name, dim, metric="l2", shards=None, rf=None, wc=None,
               keyword_index=None, timeout=None):
        pb = self.pb
        req = pb.CreateCollectionRequest(
            name=name, dimension=dim,
            metric={"l2": pb.METRIC_L2, "cosine": pb.METRIC_COSINE,
                    "ip": pb.METRIC_INNER_PRODUCT}[metric])
        if shards is not None:
            req.shards = shards
        if rf is not None:
            req.replication_factor = rf
        if wc is not None:
            req.write_consistency = WRITE[wc]
        if keyword_index:
            req.field_indexes.append(pb.FieldIndex(key=keyword_index, type=pb.FIELD_TYPE_INTEGER))
        return self.collections.Create(req, timeout=timeout or 30)

    def describe(self, name, timeout=None):
        return self.collections.Describe(self.pb.DescribeCollectionRequest(name=name),
                                         timeout=timeout or self.timeout).collection

    def layout(self, name, timeout=None):
        """The shard map: {shard: {"term", "leader", "replicas": [{node, address, role, lsn}]}}."""
        c = self.describe(name, timeout).cluster
        return {
            s.shard: {
                "term": s.term,
                "leader": s.leader,
                "replicas": [{"node": r.node, "address": r.address, "role": r.role,
                              "lsn": r.lsn} for r in s.replicas],
            }
            for s in c.shard_states
        }

    # --- points --------------------------------------------------------------
    def upsert(self, name, points, wc=None, timeout=None):
        """points: [(id, vector, payload dict)]."""
        pb = self.pb
        req = pb.UpsertRequest(collection=name, points=[
            pb.Point(id=i, vector=v, payload={k: to_value(pb, x) for k, x in p.items()})
            for i, v, p in points])
        if wc:
            req.write_consistency = WRITE[wc]
        return self.points.Upsert(req, timeout=timeout or self.timeout)

    def delete(self, name, ids, wc=None, timeout=None):
        req = self.pb.DeleteRequest(collection=name, ids=ids)
        if wc:
            req.write_consistency = WRITE[wc]
        return self.points.Delete(req, timeout=timeout or self.timeout)

    def get(self, name, ids, rc="leader", allow_partial=False, timeout=None):
        """{id: (vector, payload)} and the response's missing shards."""
        r = self.points.Get(self.pb.GetRequest(
            collection=name, ids=ids, with_payload=True, with_vector=True,
            read_consistency=READ[rc], allow_partial=allow_partial),
            timeout=timeout or self.timeout)
        return ({p.id: (list(p.vector), decode_payload(p.payload)) for p in r.points},
                list(r.missing_shards))

    def search(self, name, vector, k=10, flt=None, rc="leader", allow_partial=False,
               timeout=None):
        r = self.points.Search(self.pb.SearchRequest(
            collection=name, vector=vector, k=k, with_payload=True, filter=flt,
            read_consistency=READ[rc], allow_partial=allow_partial),
            timeout=timeout or self.timeout)
        return r

    def count(self, name, rc="leader", allow_partial=False, timeout=None):
        r = self.points.Count(self.pb.CountRequest(
            collection=name, read_consistency=READ[rc], allow_partial=allow_partial),
            timeout=timeout or self.timeout)
        return r.count, list(r.missing_shards)

    def scroll_ids(self, name, rc="leader", page=1000, timeout=None):
        """Every point id, paging with Scroll."""
        ids, after = [], None
        while True:
            req = self.pb.ScrollRequest(collection=name, limit=page, read_consistency=READ[rc])
            if after is not None:
                req.after = after
            r = self.points.Scroll(req, timeout=timeout or self.timeout * 4)
            ids.extend(p.id for p in r.points)
            if not r.HasField("next"):
                return ids
            after = r.next

    def match_filter(self, key, integer):
        pb = self.pb
        return pb.Filter(must=[pb.Condition(match=pb.FieldMatch(
            key=key, value=pb.MatchValue(integer=integer)))])
