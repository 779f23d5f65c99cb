//! Payload indexes of a collection: creating and dropping them, and what
//! they hold. The indexed fields are part of `config.json` (rewritten
//! atomically on each change); the indexes themselves live in every tier's
//! point table, built from the payloads when a tier is opened and updated
//! with every write of a payload. A search never depends on an index being
//! there: a tier without one evaluates payloads instead.

use serde::Serialize;

use super::{Collection, CollectionError, Result};
use crate::filter::FieldType;
use crate::limits::MAX_FIELD_INDEXES;

/// One indexed field, with its size over all tiers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldIndexInfo {
    pub key: String,
    pub kind: FieldType,
    /// Bytes of the index's bitmaps and keys over all tiers.
    pub memory_bytes: u64,
    /// Distinct values indexed, summed over tiers.
    pub values: u64,
}

impl Collection {
    /// Indexes payload field `key` as `kind`, building the index over the
    /// points stored so far. Indexing a field again with the same type does
    /// nothing; with another type is an error naming `type`.
    pub fn create_field_index(&self, key: &str, kind: FieldType) -> Result<()> {
        if key.is_empty() {
            return Err(CollectionError::invalid("key", "must not be empty"));
        }
        // The writer lock keeps segments from being created meanwhile, so
        // every one gets the index (a background merge that builds the SSD
        // tier right now may miss it: that tier then evaluates payloads
        // for the field until the collection is reopened).
        let _w = self.writer.lock();
        let mut schema = self.schema.read().clone();
        match schema.get(key) {
            Some(&k) if k == kind => return Ok(()),
            Some(&k) => {
                return Err(CollectionError::invalid(
                    "type",
                    format!(
                        "field {key:?} is indexed as {}; drop that index first",
                        k.as_str()
                    ),
                ))
            }
            None if schema.len() >= MAX_FIELD_INDEXES => {
                return Err(CollectionError::LimitExceeded {
                    field: "key".into(),
                    message: format!("at most {MAX_FIELD_INDEXES} fields may be indexed"),
                })
            }
            None => {}
        }
        schema.insert(key.to_string(), kind);
        self.store_schema(&schema)?;
        let one = [(&key.to_string(), &kind)];
        for s in self.segments.read().iter() {
            s.table().create_indexes(one);
        }
        if let Some(t) = self.ssd.read().clone() {
            t.table().create_indexes(one);
        }
        *self.schema.write() = schema;
        Ok(())
    }

    /// Stops indexing `key`; returns whether it was indexed.
    pub fn drop_field_index(&self, key: &str) -> Result<bool> {
        let _w = self.writer.lock();
        let mut schema = self.schema.read().clone();
        if schema.remove(key).is_none() {
            return Ok(false);
        }
        self.store_schema(&schema)?;
        *self.schema.write() = schema;
        for s in self.segments.read().iter() {
            s.table().drop_index(key);
        }
        if let Some(t) = self.ssd.read().clone() {
            t.table().drop_index(key);
        }
        Ok(true)
    }

    /// The indexed fields, by name, with their sizes.
    pub fn field_indexes(&self) -> Vec<FieldIndexInfo> {
        let schema = self.schema.read().clone();
        let segs = self.segments.read().clone();
        let tier = self.ssd.read().clone();
        schema
            .into_iter()
            .map(|(key, kind)| {
                let (mut bytes, mut values) = (0, 0);
                let tables = segs
                    .iter()
                    .map(|s| s.table())
                    .chain(tier.as_deref().map(|t| t.table()));
                for t in tables {
                    let (b, v) = t.index_size(Some(&key));
                    bytes += b as u64;
                    values += v as u64;
                }
                FieldIndexInfo {
                    key,
                    kind,
                    memory_bytes: bytes,
                    values,
                }
            })
            .collect()
    }

    /// The declared type of indexed field `key`.
    pub(super) fn field_type(&self, key: &str) -> Option<FieldType> {
        self.schema.read().get(key).copied()
    }

    /// Rewrites `config.json` with `schema` as its indexed fields.
    fn store_schema(&self, schema: &std::collections::BTreeMap<String, FieldType>) -> Result<()> {
        let mut cfg = self.config.clone();
        cfg.payload_indexes = schema.clone();
        let backend = self.store.lock().backend().clone();
        cfg.store(&*backend, &self.dir)
    }
}
