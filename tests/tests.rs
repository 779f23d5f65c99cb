//! Integration tests: one binary, a module per topic (real data, CLI).

mod cli;
mod common;
mod hnsw_real_data;
