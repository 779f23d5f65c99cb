//! Collection settings, fixed at creation and stored as `config.json` in the
//! collection's directory.

use std::path::Path;
use std::time::Duration;

use quiver_storage::Backend;
use serde::{Deserialize, Serialize};

use super::error::{CollectionError, Result};
use crate::distance::Metric;
use crate::hnsw::HnswParams;
use crate::spann::{Encoding, SpannParams};

/// File name of the settings inside a collection directory.
pub const CONFIG_FILE: &str = "config.json";

/// When a write is acknowledged (see `quiver_storage::Fsync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// Acknowledge after fsync: survives kill -9 and power loss.
    Always,
    /// Acknowledge after write; fsync every N ms: a power loss may lose about the last interval.
    IntervalMs(u64),
    /// Acknowledge after write; fsync on rotation and checkpoints only.
    Never,
}

impl FsyncPolicy {
    pub(crate) fn to_storage(self) -> quiver_storage::Fsync {
        match self {
            FsyncPolicy::Always => quiver_storage::Fsync::Always,
            FsyncPolicy::IntervalMs(ms) => {
                quiver_storage::Fsync::Interval(Duration::from_millis(ms.max(1)))
            }
            FsyncPolicy::Never => quiver_storage::Fsync::Never,
        }
    }
}

/// Settings of one collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionConfig {
    /// Vector dimension (1..=65535).
    pub dim: usize,
    pub metric: Metric,
    /// Graph settings of the memory tier.
    pub hnsw: HnswParams,
    /// Default search beam width when a request gives none.
    pub ef_search: usize,
    /// Points the active memory tier takes before it is frozen and a fresh one starts.
    pub memory_tier_points: usize,
    pub fsync: FsyncPolicy,
    /// Largest encoded payload of one point, in bytes.
    pub max_payload_bytes: usize,
    /// The SSD tier that frozen memory segments merge into; `None` keeps
    /// every segment in memory (checkpointed as HNSW files).
    pub ssd: Option<SsdConfig>,
}

/// Settings of a collection's SSD tier (a SPANN index, src/spann).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SsdConfig {
    /// Index settings. Postings are compressed (`f16` or `sq8`), full
    /// vectors kept beside them for re-ranking and `with_vector`.
    pub spann: SpannParams,
    /// Postings read per query when a search gives no `nprobe`.
    pub nprobe: usize,
}

impl Default for SsdConfig {
    fn default() -> Self {
        SsdConfig {
            spann: SpannParams {
                encoding: Encoding::Sq8,
                ..SpannParams::default()
            },
            nprobe: 64,
        }
    }
}

impl Default for CollectionConfig {
    fn default() -> Self {
        Self {
            dim: 0,
            metric: Metric::Cosine,
            hnsw: HnswParams::default(),
            ef_search: 64,
            memory_tier_points: 100_000,
            fsync: FsyncPolicy::Always,
            max_payload_bytes: 64 << 10,
            ssd: Some(SsdConfig::default()),
        }
    }
}

impl CollectionConfig {
    /// A config for `dim`-dimensional vectors under `metric`, other settings default.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Self {
            dim,
            metric,
            ..Default::default()
        }
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if !(1..=65_535).contains(&self.dim) {
            return Err(CollectionError::invalid(
                "dim",
                format!("must be in 1..=65535, got {}", self.dim),
            ));
        }
        self.hnsw
            .validate()
            .map_err(|e| CollectionError::invalid("hnsw", e.to_string()))?;
        if !(1..=100_000).contains(&self.ef_search) {
            return Err(CollectionError::invalid(
                "ef_search",
                format!("must be in 1..=100000, got {}", self.ef_search),
            ));
        }
        if !(1..=50_000_000).contains(&self.memory_tier_points) {
            return Err(CollectionError::invalid(
                "memory_tier_points",
                format!("must be in 1..=50000000, got {}", self.memory_tier_points),
            ));
        }
        if self.max_payload_bytes > 64 << 20 {
            return Err(CollectionError::invalid(
                "max_payload_bytes",
                "must be at most 64 MiB",
            ));
        }
        if let Some(ssd) = &self.ssd {
            ssd.spann
                .validate()
                .map_err(|e| CollectionError::invalid("ssd.spann", e.to_string()))?;
            if ssd.spann.encoding == Encoding::F32 {
                return Err(CollectionError::invalid(
                    "ssd.spann.encoding",
                    "must be f16 or sq8 (the tier keeps full vectors beside compressed postings)",
                ));
            }
            if !(1..=100_000).contains(&ssd.nprobe) {
                return Err(CollectionError::invalid(
                    "ssd.nprobe",
                    format!("must be in 1..=100000, got {}", ssd.nprobe),
                ));
            }
        }
        Ok(())
    }

    /// Reads and validates `config.json` in `dir` through `backend`.
    pub(crate) fn load(backend: &dyn Backend, dir: &Path) -> Result<Self> {
        let file = dir.join(CONFIG_FILE);
        let bytes = backend.read(&file).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => CollectionError::NotFound(dir.to_path_buf()),
            _ => CollectionError::Io {
                file: file.clone(),
                source,
            },
        })?;
        let cfg: CollectionConfig =
            serde_json::from_slice(&bytes).map_err(|e| CollectionError::Corrupt {
                file: file.clone(),
                offset: 0,
                reason: e.to_string(),
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Writes `config.json` in `dir` atomically through `backend`.
    pub(crate) fn store(&self, backend: &dyn Backend, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| CollectionError::invalid("config", e.to_string()))?;
        quiver_storage::write_atomic(backend, dir, CONFIG_FILE, &[&bytes])?;
        Ok(())
    }
}
