//! Integration tests: one binary, a module per topic (real data, CLI).

mod cli;
mod collection_behaviour;
mod collection_crash;
mod common;
mod fuzz_corpus;
mod hnsw_real_data;
mod server;
mod spann;
mod spann_head_encoding;
