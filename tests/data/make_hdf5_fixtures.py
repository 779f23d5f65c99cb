#!/usr/bin/env python3
"""Writes the tiny ann-benchmarks HDF5 fixtures that `src/dataset/hdf5.rs`
tests read, with h5py (the library ann-benchmarks itself writes them with).

    pip install h5py numpy
    python3 tests/data/make_hdf5_fixtures.py

The data is seeded, so the files only change when this script does. Values are
multiples of 1/8 so they are exact in f32 and the tests can spell them out.

- ann-angular-20x4.hdf5: h5py defaults (libver "earliest": v0 superblock,
  symbol-table groups, contiguous datasets), `distance` = "angular" as a
  variable-length UTF-8 string, int32 `neighbors` and f32 `distances`.
- ann-euclidean-20x4-gzip.hdf5: the same vectors, every dataset chunked and
  gzip-compressed (`train` in 8-row chunks), int64 `neighbors`, `distance` = "euclidean".
- ann-dot-20x4-latest.hdf5: libver "latest" (v3 superblock, v2 object headers
  with checksums, link-message groups), `distance` = b"dot" as a fixed-length
  ASCII string, int32 `neighbors`, no `distances`.

Neighbours are the exact top 5 under each metric, computed here in float64.
"""

import os

import h5py
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
K = 5

rng = np.random.default_rng(20240601)
train = (rng.integers(-16, 17, size=(20, 4)) / 8.0).astype(np.float32)
test = (rng.integers(-16, 17, size=(3, 4)) / 8.0).astype(np.float32)
# No zero vectors: "angular" is undefined for them.
train[np.all(train == 0, axis=1)] = 0.125
test[np.all(test == 0, axis=1)] = 0.125


def exact(metric):
    """(ids, distances) of the K nearest train rows for each test row."""
    t, q = train.astype(np.float64), test.astype(np.float64)
    if metric == "euclidean":
        d = np.sqrt(((q[:, None, :] - t[None, :, :]) ** 2).sum(-1))
    elif metric == "angular":
        tn = t / np.linalg.norm(t, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1.0 - qn @ tn.T
    elif metric == "dot":
        d = -(q @ t.T)
    # Stable sort: ties go to the lower id, as quiver's ground truth does.
    ids = np.argsort(d, axis=1, kind="stable")[:, :K]
    return ids, np.take_along_axis(d, ids, axis=1).astype(np.float32)


def write(name, metric, ids_dtype, libver="earliest", gzip=False, distances=True, attr=None):
    ids, dist = exact(metric)
    opts = dict(chunks=True, compression="gzip", compression_opts=6) if gzip else {}
    # `train` in chunks of 8 rows, so a row limit can end inside a chunk.
    train_opts = dict(opts, chunks=(8, train.shape[1])) if gzip else {}
    path = os.path.join(HERE, name)
    with h5py.File(path, "w", libver=libver) as f:
        f.attrs["distance"] = metric if attr is None else attr
        f.attrs["point_type"] = "float"
        f.attrs["dimension"] = train.shape[1]
        f.create_dataset("train", data=train, **train_opts)
        f.create_dataset("test", data=test, **opts)
        f.create_dataset("neighbors", data=ids.astype(ids_dtype), **opts)
        if distances:
            f.create_dataset("distances", data=dist, **opts)
    print(f"{name}: {os.path.getsize(path)} bytes, neighbors={ids.tolist()}")


write("ann-angular-20x4.hdf5", "angular", np.int32)
write("ann-euclidean-20x4-gzip.hdf5", "euclidean", np.int64, gzip=True)
write("ann-dot-20x4-latest.hdf5", "dot", np.int32, libver="latest", distances=False,
      attr=np.bytes_(b"dot"))
print("train[0] =", train[0].tolist(), " train[19] =", train[19].tolist())
print("test =", test.tolist())
