//! The SSD tier of a collection: a SPANN index (src/spann) holding the
//! points merged from frozen memory segments, plus the point table (point
//! id and payload) of every SPANN vector id.
//!
//! Files: the SPANN index in `ssd/` (its own generations, docs/FORMAT.md)
//! and `ssd-G.qvf`, the point table as of SPANN generation G. The
//! collection's manifest names `ssd-G.qvf`, so committing the manifest is
//! what commits generation G; [`SsdTier::open`] opens exactly that
//! generation, and SPANN generations written after it (never committed)
//! are discarded. The SPANN files go through the store's backend.

use std::path::Path;
use std::sync::Arc;

use super::config::{CollectionConfig, SsdConfig};
use super::error::{CollectionError, Result};
use super::point::{Payload, PointId};
use super::point_table::PointTable;
use crate::dataset::VectorSet;
use crate::spann::{OpenParams, SearchParams, Spann, SpannError};
use quiver_storage::manifest::FileEntry;
use quiver_storage::store::Store;
use quiver_storage::Backend;

/// Data-file kind of the SSD point table.
const TABLE_KIND: u32 = 0x5153_5331; // "QSS1"

/// Directory of the SPANN index inside the collection directory.
const SPANN_DIR: &str = "ssd";

/// Parses `ssd-G.qvf` into the SPANN generation G.
pub(crate) fn parse_table_name(name: &str) -> Option<u64> {
    name.strip_prefix("ssd-")?
        .strip_suffix(".qvf")?
        .parse()
        .ok()
}

fn table_name(generation: u64) -> String {
    format!("ssd-{generation}.qvf")
}

fn spann_err(e: SpannError) -> CollectionError {
    CollectionError::Ssd(e)
}

/// The SPANN index and its point table.
pub(crate) struct SsdTier {
    spann: Spann,
    points: PointTable,
    config: SsdConfig,
}

impl SsdTier {
    /// Builds the tier in `dir/ssd` from its first points (vectors laid out
    /// row after row), replacing leftovers of a tier that was never
    /// committed. A bulk build clusters the heads (and trains the SQ8
    /// quantiser) on real data; later points arrive by [`SsdTier::insert`].
    /// SPANN ids are the row numbers.
    pub fn build(
        dir: &Path,
        backend: Arc<dyn Backend>,
        config: &CollectionConfig,
        ssd: SsdConfig,
        ids: &[PointId],
        vectors: Vec<f32>,
        payloads: Vec<Option<Arc<Payload>>>,
    ) -> Result<SsdTier> {
        let path = dir.join(SPANN_DIR);
        let base = VectorSet::new(config.dim, vectors).ok_or_else(|| {
            CollectionError::invalid("ssd", "cannot build the SSD tier from no vectors")
        })?;
        let spann = Spann::build(
            &path,
            base,
            config.metric,
            ssd.spann,
            OpenParams {
                backend,
                ..OpenParams::default()
            },
            false,
        )
        .map_err(spann_err)?;
        let points = PointTable::default();
        for (slot, (&id, payload)) in ids.iter().zip(payloads).enumerate() {
            points.set(slot, id, payload);
        }
        Ok(SsdTier {
            spann,
            points,
            config: ssd,
        })
    }

    /// Opens the tier as of the point table `name` (`ssd-G.qvf`) in `store`.
    pub fn open(store: &Store, name: &str, ssd: SsdConfig) -> Result<SsdTier> {
        let generation = parse_table_name(name).ok_or_else(|| CollectionError::Corrupt {
            file: store.path(name),
            offset: 0,
            reason: "not an SSD point table name".into(),
        })?;
        let (_, bytes) = store.read_file(name)?;
        let points = PointTable::decode(&bytes, &store.path(name))?;
        let spann = Spann::open_generation(
            &store.dir().join(SPANN_DIR),
            generation,
            OpenParams {
                backend: store.backend().clone(),
                ..OpenParams::default()
            },
        )
        .map_err(spann_err)?;
        Ok(SsdTier {
            spann,
            points,
            config: ssd,
        })
    }

    /// `(point id, SPANN id)` of every live vector.
    pub fn live_points(&self) -> Vec<(PointId, u32)> {
        self.points
            .filled(|slot| self.spann.contains(slot as u32))
            .into_iter()
            .map(|(slot, id)| (id, slot as u32))
            .collect()
    }

    /// Inserts points (vectors laid out row after row in `vectors`); returns
    /// their SPANN ids in order. Runs concurrently with searches and deletes.
    pub fn insert(
        &self,
        ids: &[PointId],
        vectors: &[f32],
        payloads: Vec<Option<Arc<Payload>>>,
    ) -> Result<Vec<u32>> {
        let slots = self.spann.insert_batch(vectors).map_err(spann_err)?;
        for ((&slot, &id), payload) in slots.iter().zip(ids).zip(payloads) {
            self.points.set(slot as usize, id, payload);
        }
        Ok(slots)
    }

    /// Deletes SPANN vector `slot`.
    pub fn delete(&self, slot: u32) -> Result<()> {
        self.spann.delete(slot).map_err(spann_err)?;
        Ok(())
    }

    /// The `k` nearest live vectors: `(distance, SPANN id)`, nearest first.
    pub fn search(
        &self,
        query: crate::score::Prepared<'_>,
        k: usize,
        nprobe: Option<usize>,
    ) -> Result<Vec<(f32, u32)>> {
        if self.spann.is_empty() {
            return Ok(Vec::new());
        }
        let sp = SearchParams {
            nprobe: nprobe.unwrap_or(self.config.nprobe),
            rerank: SearchParams::rerank_for(self.spann.params().encoding),
            ..SearchParams::default()
        };
        let (hits, _) = self
            .spann
            .search_prepared(query, k, &sp)
            .map_err(spann_err)?;
        Ok(hits.into_iter().map(|h| (h.distance, h.id)).collect())
    }

    /// Postings read per search by default.
    pub fn default_nprobe(&self) -> usize {
        self.config.nprobe
    }

    /// Heads (postings) of the index.
    pub fn heads(&self) -> usize {
        self.spann.heads()
    }

    /// [`SsdTier::search`] admitting only SPANN ids in `allow`, with what it cost.
    pub fn search_allowed(
        &self,
        query: crate::score::Prepared<'_>,
        k: usize,
        nprobe: usize,
        allow: &roaring::RoaringBitmap,
    ) -> Result<(Vec<(f32, u32)>, crate::spann::SearchStats)> {
        if self.spann.is_empty() {
            return Ok((Vec::new(), Default::default()));
        }
        let sp = SearchParams {
            nprobe,
            rerank: SearchParams::rerank_for(self.spann.params().encoding),
            ..SearchParams::default()
        };
        let (hits, st) = self
            .spann
            .search_allowed(query, k, &sp, allow)
            .map_err(spann_err)?;
        Ok((hits.into_iter().map(|h| (h.distance, h.id)).collect(), st))
    }

    /// The `k` nearest of the SPANN ids in `ids`, exactly (their full
    /// vectors read), with what it cost.
    pub fn search_among(
        &self,
        query: crate::score::Prepared<'_>,
        k: usize,
        ids: &roaring::RoaringBitmap,
    ) -> Result<(Vec<(f32, u32)>, crate::spann::SearchStats)> {
        let (hits, st) = self.spann.search_among(query, k, ids).map_err(spann_err)?;
        Ok((hits.into_iter().map(|h| (h.distance, h.id)).collect(), st))
    }

    /// The point ids, payloads and payload indexes of the SPANN ids.
    pub fn table(&self) -> &PointTable {
        &self.points
    }

    pub fn point_id(&self, slot: u32) -> Option<PointId> {
        self.points.id(slot as usize)
    }

    pub fn payload(&self, slot: u32) -> Option<Arc<Payload>> {
        self.points.payload(slot as usize)
    }

    /// The stored full-precision vector of `slot`.
    pub fn vector(&self, slot: u32) -> Result<Option<Vec<f32>>> {
        self.spann.vector(slot).map_err(spann_err)
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.spann.live_len()
    }

    /// Resident memory: SPANN heads and maps plus the point table.
    pub fn memory_bytes(&self) -> usize {
        self.spann.memory_bytes() + self.points.memory_bytes()
    }

    /// Bytes of the tier's files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.spann.disk_bytes()
    }

    /// Writes a consistent snapshot: a new SPANN generation G and its point
    /// table `ssd-G.qvf`. Nothing is committed until the caller's manifest
    /// names the returned entry; then call [`SsdTier::committed`].
    pub fn persist(&self, store: &Store) -> Result<(u64, FileEntry)> {
        let generation = self.spann.checkpoint().map_err(spann_err)?;
        // The table may hold slots past the snapshot (none today: merges
        // and checkpoints are serialised); open ignores slots SPANN lacks.
        let entry = store.write_file(
            &table_name(generation),
            TABLE_KIND,
            1,
            &self.points.encode()?,
        )?;
        Ok((generation, entry))
    }

    /// Generation `generation` is committed: older SPANN files and pages may go.
    pub fn committed(&self, generation: u64) -> Result<()> {
        self.spann.release_before(generation).map_err(spann_err)
    }
}
