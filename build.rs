//! Generates the gRPC code of `quiver serve` from `proto/` with protox (a
//! pure-Rust .proto compiler, so no system `protoc` is needed) and writes the
//! encoded descriptor set that server reflection serves (the public API
//! only). Also compiles the node-to-node API of cluster mode and a client of
//! the part of etcd's v3 API that cluster mode uses (`proto/etcd/rpc.proto`).

use std::path::PathBuf;

use protox::prost::Message as _;

const PROTO: &str = "proto/quiver/v1/quiver.proto";
const INTERNAL: &str = "proto/quiver/internal/v1/replica.proto";
const ETCD: &str = "proto/etcd/rpc.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let public = protox::compile([PROTO], ["proto"])?;
    std::fs::write(
        out_dir.join("quiver_descriptor.bin"),
        public.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .btree_map(".")
        .compile_fds(protox::compile([PROTO, INTERNAL], ["proto"])?)?;
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(protox::compile([ETCD], ["proto"])?)?;
    Ok(())
}
