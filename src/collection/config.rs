//! Collection settings, fixed at creation and stored as `config.json` in the
//! collection's directory.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use quiver_storage::Backend;
use serde::{Deserialize, Serialize};

use super::error::{CollectionError, Result};
use crate::distance::Metric;
use crate::filter::FieldType;
use crate::hnsw::{HnswError, HnswParams, VectorEncoding};
use crate::limits;
use crate::spann::{Encoding, SpannError, SpannParams};

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

/// Where a lossy memory segment's full vectors live once it is on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RerankVectors {
    /// Copied into memory when the segment is loaded.
    #[default]
    Memory,
    /// Mapped from the segment's vector file (`seg-NNNNNN.vec.qvf`).
    Disk,
}

/// Settings of one collection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionConfig {
    /// Vector dimension (1..=[`limits::MAX_DIMENSION`]).
    pub dim: usize,
    pub metric: Metric,
    /// Graph settings of the memory tier.
    pub hnsw: HnswParams,
    /// How memory segments store vectors for graph traversal: `f32`
    /// (default; also what configs written before this setting mean),
    /// `f16` or `sq8`. Lossy encodings keep the f32 vectors beside the codes
    /// for exact re-ranking and `with_vector`.
    pub hnsw_encoding: VectorEncoding,
    /// Re-rank factor for lossy encodings when a search gives none: the best
    /// `max(k, rerank × k)` candidates on codes are re-scored exactly; 0
    /// turns re-ranking off. Ignored for `f32`.
    pub rerank: usize,
    /// Where checkpointed lossy segments keep their f32 vectors: in memory
    /// (default) or read from the segment's vector file through the page
    /// cache (`disk`). The active segment always keeps them in memory.
    pub rerank_vectors: RerankVectors,
    /// Default search beam width when a request gives none.
    pub ef_search: usize,
    /// Points the active memory tier takes before it is frozen and a fresh one starts.
    pub memory_tier_points: usize,
    /// Most points acknowledged but not yet linked into the graph (the
    /// unindexed buffer, scanned exactly by every search) before writers
    /// wait for the background indexer; 0 makes every write wait for its
    /// graph insert. Configs written before this setting get the default.
    pub index_buffer_points: usize,
    pub fsync: FsyncPolicy,
    /// Largest encoded payload of one point, in bytes.
    pub max_payload_bytes: usize,
    /// The SSD tier that frozen memory segments merge into; `None` keeps
    /// every segment in memory (checkpointed as HNSW files).
    pub ssd: Option<SsdConfig>,
    /// Payload fields with an index, and the type each is declared with
    /// (changed by `Collection::create_field_index` / `drop_field_index`,
    /// which rewrite this file).
    pub payload_indexes: BTreeMap<String, FieldType>,
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
            spann: SpannParams::recommended(),
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
            hnsw_encoding: VectorEncoding::F32,
            rerank: limits::DEFAULT_RERANK,
            rerank_vectors: RerankVectors::Memory,
            ef_search: 64,
            memory_tier_points: limits::DEFAULT_MEMORY_TIER_POINTS,
            index_buffer_points: limits::DEFAULT_INDEX_BUFFER_POINTS,
            fsync: FsyncPolicy::Always,
            max_payload_bytes: limits::DEFAULT_MAX_PAYLOAD_BYTES,
            ssd: Some(SsdConfig::default()),
            payload_indexes: BTreeMap::new(),
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

    /// A builder from `dim`, `metric` and the defaults (the settings a
    /// server `Create` gives for fields it leaves unset).
    pub fn builder(dim: usize, metric: Metric) -> CollectionConfigBuilder {
        CollectionConfigBuilder(Self::new(dim, metric))
    }

    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if !(1..=limits::MAX_DIMENSION).contains(&self.dim) {
            return Err(CollectionError::invalid(
                "dim",
                format!("must be in 1..={}, got {}", limits::MAX_DIMENSION, self.dim),
            ));
        }
        self.hnsw.validate().map_err(|e| hnsw_error("hnsw", e))?;
        if self.rerank > limits::MAX_RERANK {
            return Err(CollectionError::invalid(
                "rerank",
                format!("must be in 0..={}, got {}", limits::MAX_RERANK, self.rerank),
            ));
        }
        if !(1..=limits::MAX_EF).contains(&self.ef_search) {
            return Err(CollectionError::invalid(
                "ef_search",
                format!("must be in 1..={}, got {}", limits::MAX_EF, self.ef_search),
            ));
        }
        if !(1..=limits::MAX_MEMORY_TIER_POINTS).contains(&self.memory_tier_points) {
            return Err(CollectionError::invalid(
                "memory_tier_points",
                format!(
                    "must be in 1..={}, got {}",
                    limits::MAX_MEMORY_TIER_POINTS,
                    self.memory_tier_points
                ),
            ));
        }
        if self.index_buffer_points > limits::MAX_INDEX_BUFFER_POINTS {
            return Err(CollectionError::invalid(
                "index_buffer_points",
                format!(
                    "must be in 0..={}, got {}",
                    limits::MAX_INDEX_BUFFER_POINTS,
                    self.index_buffer_points
                ),
            ));
        }
        if self.max_payload_bytes > limits::MAX_PAYLOAD_BYTES {
            return Err(CollectionError::invalid(
                "max_payload_bytes",
                "must be at most 64 MiB",
            ));
        }
        if let Some(ssd) = &self.ssd {
            ssd.spann.validate().map_err(|e| match e {
                SpannError::InvalidParam { field, message } => {
                    CollectionError::invalid(format!("ssd.spann.{field}"), message)
                }
                SpannError::Heads(e) => hnsw_error("ssd.spann.hnsw", e),
                other => CollectionError::invalid("ssd.spann", other.to_string()),
            })?;
            if ssd.spann.encoding == Encoding::F32 {
                return Err(CollectionError::invalid(
                    "ssd.spann.encoding",
                    "must be f16 or sq8 (the tier keeps full vectors beside compressed postings)",
                ));
            }
            if !(1..=limits::MAX_NPROBE).contains(&ssd.nprobe) {
                return Err(CollectionError::invalid(
                    "ssd.nprobe",
                    format!("must be in 1..={}, got {}", limits::MAX_NPROBE, ssd.nprobe),
                ));
            }
        }
        if self.payload_indexes.len() > limits::MAX_FIELD_INDEXES {
            return Err(CollectionError::LimitExceeded {
                field: "payload_indexes".into(),
                message: format!(
                    "at most {} fields may be indexed",
                    limits::MAX_FIELD_INDEXES
                ),
            });
        }
        if self.payload_indexes.keys().any(String::is_empty) {
            return Err(CollectionError::invalid(
                "payload_indexes",
                "field names must not be empty",
            ));
        }
        Ok(())
    }

    /// The re-rank factor of a search: `requested` (checked against
    /// [`limits::MAX_RERANK`]) or the collection's.
    pub fn rerank_for(&self, requested: Option<usize>) -> Result<usize> {
        match requested {
            Some(r) if r > limits::MAX_RERANK => Err(CollectionError::invalid(
                "rerank",
                format!("must be in 0..={}, got {r}", limits::MAX_RERANK),
            )),
            Some(r) => Ok(r),
            None => Ok(self.rerank),
        }
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

/// An invalid HNSW parameter as the settings field `prefix.field`.
fn hnsw_error(prefix: &str, e: HnswError) -> CollectionError {
    match e {
        HnswError::InvalidParam { field, message } => {
            CollectionError::invalid(format!("{prefix}.{field}"), message)
        }
        other => CollectionError::invalid(prefix, other.to_string()),
    }
}

/// Builds a [`CollectionConfig`] over the defaults; [`build`](Self::build)
/// checks it. Start with [`CollectionConfig::builder`].
#[derive(Clone, Debug)]
pub struct CollectionConfigBuilder(CollectionConfig);

impl CollectionConfigBuilder {
    /// HNSW `M` of the memory tier.
    pub fn hnsw_m(mut self, m: usize) -> Self {
        self.0.hnsw.m = m;
        self
    }

    /// HNSW `efConstruction` of the memory tier.
    pub fn hnsw_ef_construction(mut self, ef: usize) -> Self {
        self.0.hnsw.ef_construction = ef;
        self
    }

    /// How memory segments store vectors (`f32`, `f16`, `sq8`).
    pub fn hnsw_encoding(mut self, encoding: VectorEncoding) -> Self {
        self.0.hnsw_encoding = encoding;
        self
    }

    /// Default re-rank factor of lossy encodings (0: off).
    pub fn rerank(mut self, rerank: usize) -> Self {
        self.0.rerank = rerank;
        self
    }

    /// Where checkpointed lossy segments keep their full vectors.
    pub fn rerank_vectors(mut self, at: RerankVectors) -> Self {
        self.0.rerank_vectors = at;
        self
    }

    /// Default search beam width.
    pub fn ef_search(mut self, ef: usize) -> Self {
        self.0.ef_search = ef;
        self
    }

    /// Points the active memory tier takes before it is frozen.
    pub fn memory_tier_points(mut self, n: usize) -> Self {
        self.0.memory_tier_points = n;
        self
    }

    /// Most acknowledged points waiting for the background graph build
    /// (0: writes wait for their graph insert).
    pub fn index_buffer_points(mut self, n: usize) -> Self {
        self.0.index_buffer_points = n;
        self
    }

    /// When writes are acknowledged.
    pub fn fsync(mut self, fsync: FsyncPolicy) -> Self {
        self.0.fsync = fsync;
        self
    }

    /// Largest encoded payload of one point, in bytes.
    pub fn max_payload_bytes(mut self, n: usize) -> Self {
        self.0.max_payload_bytes = n;
        self
    }

    /// The SSD tier's settings; `None` keeps every segment in memory.
    pub fn ssd(mut self, ssd: Option<SsdConfig>) -> Self {
        self.0.ssd = ssd;
        self
    }

    /// Indexes payload field `key` as `kind` from the start.
    pub fn payload_index(mut self, key: impl Into<String>, kind: FieldType) -> Self {
        self.0.payload_indexes.insert(key.into(), kind);
        self
    }

    /// The checked settings; errors name the field.
    pub fn build(self) -> Result<CollectionConfig> {
        self.0.validate()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hnsw::VectorEncoding;

    /// A `config.json` written before the SSD defaults of issue 17 (SQ8
    /// postings, f32 heads, head_ratio 0.1, no `rng_factor`) still loads
    /// and keeps the settings its index was built with.
    #[test]
    fn configs_from_before_the_new_ssd_defaults_keep_their_settings() {
        let old = SpannParams {
            encoding: Encoding::Sq8,
            ..SpannParams::default()
        };
        let mut v = serde_json::to_value(CollectionConfig {
            ssd: Some(SsdConfig {
                spann: old,
                nprobe: 64,
            }),
            ..CollectionConfig::new(384, Metric::Cosine)
        })
        .unwrap();
        v["ssd"]["spann"]
            .as_object_mut()
            .unwrap()
            .remove("rng_factor");
        let dir = tempfile::tempdir().unwrap();
        let backend = quiver_storage::FsBackend;
        quiver_storage::write_atomic(
            &backend,
            dir.path(),
            CONFIG_FILE,
            &[v.to_string().as_bytes()],
        )
        .unwrap();
        let cfg = CollectionConfig::load(&backend, dir.path()).unwrap();
        let ssd = cfg.ssd.unwrap();
        assert_eq!(ssd.spann, old);
        assert_eq!(ssd.spann.head_encoding, VectorEncoding::F32);
        // New collections get the measured defaults.
        assert_eq!(SsdConfig::default().spann, SpannParams::recommended());
    }
}
