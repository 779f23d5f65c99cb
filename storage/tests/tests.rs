//! Integration tests of quiver-storage, one binary with a module per behaviour.

mod common;
mod corpus;
mod random_file;
mod store;
mod wal_basic;
mod wal_crash;
mod wal_faults;
mod wal_recovery;
