//! ANN dataset file formats (TEXMEX, big-ann-benchmarks, ann-benchmarks HDF5)
//! and exact ground truth.
