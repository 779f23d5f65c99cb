//! `quiver crash-writer` (hidden): runs the deterministic collection
//! workload with `fsync = always`, printing `ack N unindexed U` after each
//! acknowledged operation (U: points not yet in the graph), until killed. The crash test kills it with SIGKILL at random
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
    /// The collection's `index_buffer_points` [default: the default].
    #[arg(long)]
    index_buffer_points: Option<usize>,
    /// HNSW efConstruction (a large one slows the background graph build).
    #[arg(long)]
    ef_construction: Option<usize>,
    /// Acknowledge after the WAL write, never fsync (SIGKILL keeps what
    /// was written): writes then outrun the graph build.
    #[arg(long)]
    no_fsync: bool,
}

pub fn run(a: CrashWriterArgs) -> anyhow::Result<()> {
    let col = if a.dir.join(quiver::collection::CONFIG_FILE).exists() {
        Collection::open(&a.dir)?
    } else {
        let mut cfg = CollectionConfig {
            memory_tier_points: a.tier,
            fsync: if a.no_fsync {
                FsyncPolicy::Never
            } else {
                FsyncPolicy::Always
            },
            payload_indexes: [("op".to_string(), quiver::filter::FieldType::Integer)].into(),
            ..CollectionConfig::new(a.dim, Metric::L2)
        };
        if let Some(n) = a.index_buffer_points {
            cfg.index_buffer_points = n;
        }
        if let Some(ef) = a.ef_construction {
            cfg.hnsw.ef_construction = ef;
        }
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
        writeln!(out, "ack {i} unindexed {}", col.unindexed())?;
        out.flush()?;
    }
    Ok(())
}
