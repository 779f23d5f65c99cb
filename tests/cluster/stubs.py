"""Loads the Python gRPC stubs of the repository's proto.

`load(dir)` imports quiver/v1/quiver_pb2(_grpc) from `dir`, generating them
there first with examples/python/gen_stubs.py (grpcio-tools' bundled
protoc) when they are missing.  QUIVER_PROTO_ROOT overrides the proto
directory (for trying a proto that is not committed yet).
"""

import os
import subprocess
import sys

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def load(out_dir):
    """Returns (quiver_pb2, quiver_pb2_grpc), generating them into out_dir if needed."""
    target = os.path.join(out_dir, "quiver", "v1", "quiver_pb2_grpc.py")
    if not os.path.exists(target):
        root = os.environ.get("QUIVER_PROTO_ROOT")
        if root:
            from grpc_tools import protoc
            import grpc_tools
            os.makedirs(out_dir, exist_ok=True)
            well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
            rc = protoc.main(["protoc", f"-I{root}", f"-I{well_known}",
                              f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
                              os.path.join(root, "quiver/v1/quiver.proto")])
            if rc != 0:
                raise RuntimeError(f"protoc failed on {root} ({rc})")
        else:
            gen = os.path.join(REPO, "examples", "python", "gen_stubs.py")
            p = subprocess.run([sys.executable, gen, "--out", out_dir],
                               capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"gen_stubs.py failed:\n{p.stdout}{p.stderr}")
    if out_dir not in sys.path:
        sys.path.insert(0, out_dir)
    from quiver.v1 import quiver_pb2, quiver_pb2_grpc  # noqa: E402
    return quiver_pb2, quiver_pb2_grpc
