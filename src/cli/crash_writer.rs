//! `quiver crash-writer` (hidden): runs the deterministic collection
//! workload with `fsync = always`, printing `ack N` after each acknowledged
//! operation, until killed. The crash test kills it with SIGKILL at random
//! moments and checks the reopened collection against the acknowledged ops.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use quiver::collection::workload::{self, WorkOp};
use quiver::collection::{Collection, CollectionConfig, FsyncPolicy};
use quiver::distance::Metric;

#[derive(Args)]
pub struct CrashWriterArgs {
    /// Collection directory (created if absent).
    #[arg(long)]
    dir: PathBuf,
    /// First operation number to run (the ops before it were acknowledged earlier).
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Vector dimension.
    #[arg(long, default_value_t = 8)]
    dim: usize,
    /// Points per memory tier (small, so freezes and checkpoints happen often).
    #[arg(long, default_value_t = 150)]
    tier: usize,
}

pub fn run(a: CrashWriterArgs) -> anyhow::Result<()> {
    let col = if a.dir.join(quiver::collection::CONFIG_FILE).exists() {
        Collection::open(&a.dir)?
    } else {
        let cfg = CollectionConfig {
            memory_tier_points: a.tier,
            fsync: FsyncPolicy::Always,
            payload_indexes: [("op".to_string(), quiver::filter::FieldType::Integer)].into(),
            ..CollectionConfig::new(a.dim, Metric::L2)
        };
        Collection::create(&a.dir, cfg)?
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    for i in a.start.. {
        match workload::op(i, a.dim) {
            WorkOp::Upsert(points) => {
                col.upsert(points).with_context(|| format!("op {i}"))?;
            }
            WorkOp::Delete(ids) => {
                col.delete(&ids).with_context(|| format!("op {i}"))?;
            }
        }
        writeln!(out, "ack {i}")?;
        out.flush()?;
    }
    Ok(())
}
