#!/usr/bin/env python3
"""Generate the Python gRPC stubs of the quiver API from proto/.

Runs grpcio-tools' bundled protoc (no system protoc needed) over
proto/quiver/v1/quiver.proto and writes quiver/v1/quiver_pb2.py and
quiver/v1/quiver_pb2_grpc.py under the output directory (default:
examples/python/generated, which git ignores).

    python3 gen_stubs.py [--out DIR]
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
PROTO = "quiver/v1/quiver.proto"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        default=os.path.join(HERE, "generated"),
        help="output directory (default: %(default)s)",
    )
    args = parser.parse_args()

    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        print(
            "error: grpcio-tools is not installed; run "
            "`python3 -m pip install -r requirements.txt`",
            file=sys.stderr,
        )
        return 1

    os.makedirs(args.out, exist_ok=True)
    # protoc's well-known types ship inside grpcio-tools.
    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{well_known}",
            f"--python_out={args.out}",
            f"--grpc_python_out={args.out}",
            os.path.join(PROTO_ROOT, PROTO),
        ]
    )
    if rc != 0:
        print(f"error: protoc failed with exit code {rc}", file=sys.stderr)
        return rc
    print(f"wrote stubs for {PROTO} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
