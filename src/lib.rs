//! quiver: an approximate-nearest-neighbour vector database.
//!
//! Module map: [`distance`] (metrics and SIMD kernels), [`quant`] (f16 and SQ8
//! codecs), [`score`] (encodings, prepared queries and distances to codes, for
//! both tiers), [`hnsw`] (the in-memory graph index), [`limits`] (every limit,
//! named), [`dataset`] (ANN dataset file formats and exact ground truth),
//! [`collection`] (durable collections),
//! [`server`] (the gRPC service of `quiver serve`).
#![deny(unsafe_code)]

pub mod cluster;
pub mod collection;
pub mod dataset;
#[allow(unsafe_code)]
pub mod distance;
pub mod filter;
pub mod hnsw;
pub mod limits;
pub mod quant;
pub mod score;
pub mod server;
pub mod spann;
