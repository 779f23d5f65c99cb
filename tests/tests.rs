//! Integration tests: one binary, a module per topic (real data, CLI).

mod cli;
mod cluster;
mod collection_behaviour;
mod collection_codes;
mod collection_crash;
mod collection_faults;
mod collection_tiers;
mod common;
mod deploy_files;
mod filtered;
mod fuzz_corpus;
mod health;
mod hnsw_real_data;
mod load;
mod offline_index;
mod python_client;
mod server;
mod server_filter;
mod server_limits;
mod server_ops;
mod spann;
mod spann_concurrent;
mod spann_head_encoding;
