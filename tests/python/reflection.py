"""Lists a quiver server's services through gRPC server reflection, the way
Python clients do: v1alpha through grpcio-reflection's descriptor database
(the only version grpcio-reflection ships), then v1 by sending the same
messages (v1 and v1alpha are identical on the wire) on the v1 method path.

Prints one line per check; exits non-zero on any failure.
"""

import argparse
import sys

import grpc
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

V1_METHOD = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--addr", required=True, help="host:port of the server")
    args = parser.parse_args()
    with grpc.insecure_channel(args.addr) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(db.get_services())
        print("v1alpha services:", ",".join(services))
        pool = DescriptorPool(db)
        search = pool.FindServiceByName("quiver.v1.Points").FindMethodByName("Search")
        print("v1alpha Points.Search input:", search.input_type.full_name)

        info = channel.stream_stream(
            V1_METHOD,
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        replies = list(info(iter([request]), timeout=10))
        names = sorted(s.name for s in replies[0].list_services_response.service)
        print("v1 services:", ",".join(names))
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
