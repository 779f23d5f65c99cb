//! Generates the gRPC code of `quiver serve` from `proto/` with protox (a
//! pure-Rust .proto compiler, so no system `protoc` is needed) and writes the
//! encoded descriptor set that server reflection serves.

use std::path::PathBuf;

use protox::prost::Message as _;

const PROTO: &str = "proto/quiver/v1/quiver.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let fds = protox::compile([PROTO], ["proto"])?;
    std::fs::write(out_dir.join("quiver_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .btree_map(".")
        .compile_fds(fds)?;
    Ok(())
}
