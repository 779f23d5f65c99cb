//! The point table of a tier: the point id and payload of every slot (HNSW
//! node or SPANN vector id), and its byte encoding inside a quiver-storage
//! data file (docs/FORMAT.md, "Point table"): a u32 count, `count` u64 ids,
//! then per slot a u32 length (`u32::MAX` = no payload) and that many bytes
//! of JSON payload.
//!
//! The table also keeps the payload indexes of its slots
//! ([`PayloadIndex`], rebuilt from the payloads when a table is opened), so
//! every write of a payload updates them under the same lock.
//!
//! Lock order: `index` → `ids` → `payloads`.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;

use super::error::{CollectionError, Result};
use super::point::{decode_payload, Payload, PointId};
use crate::filter::{FieldType, Filter, PayloadIndex, Selection, SelectionCache, SlotSpace};

/// Id of a slot that holds no point (yet).
pub(crate) const NO_POINT: PointId = PointId::MAX;

/// Point id and payload by slot; grows as slots are filled.
#[derive(Default)]
pub(crate) struct PointTable {
    /// Bumped by every change of payloads or indexes (keys the cache).
    version: std::sync::atomic::AtomicU64,
    cache: SelectionCache,
    index: RwLock<PayloadIndex>,
    ids: RwLock<Vec<PointId>>,
    payloads: RwLock<Vec<Option<Arc<Payload>>>>,
}

impl PointTable {
    pub fn from_parts(ids: Vec<PointId>, payloads: Vec<Option<Arc<Payload>>>) -> Self {
        PointTable {
            version: Default::default(),
            cache: SelectionCache::default(),
            index: RwLock::default(),
            ids: RwLock::new(ids),
            payloads: RwLock::new(payloads),
        }
    }

    /// Records the point held by `slot`.
    pub fn set(&self, slot: usize, id: PointId, payload: Option<Arc<Payload>>) {
        let mut index = self.index.write();
        let mut ids = self.ids.write();
        let mut payloads = self.payloads.write();
        if ids.len() <= slot {
            ids.resize(slot + 1, NO_POINT);
            payloads.resize(slot + 1, None);
        }
        if let Some(old) = &payloads[slot] {
            index.update(slot as u32, old, false);
        }
        if let Some(new) = &payload {
            index.update(slot as u32, new, true);
        }
        ids[slot] = id;
        payloads[slot] = payload;
        self.bump();
    }

    fn bump(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Starts indexing each of `fields` (those indexed already are kept).
    pub fn create_indexes<'a>(
        &self,
        fields: impl IntoIterator<Item = (&'a String, &'a FieldType)>,
    ) {
        let mut index = self.index.write();
        let payloads = self.payloads.read();
        for (key, &kind) in fields {
            index.create(
                key,
                kind,
                payloads
                    .iter()
                    .enumerate()
                    .map(|(s, p)| (s as u32, p.as_deref())),
            );
        }
        self.bump();
    }

    /// Stops indexing `key`.
    pub fn drop_index(&self, key: &str) {
        self.index.write().drop_field(key);
        self.bump();
    }

    /// The slots matching `f`; `id_slots` gives the slots of point ids
    /// (for `has_id`).
    pub fn select(
        &self,
        f: &Filter,
        id_slots: &dyn Fn(&[PointId]) -> roaring::RoaringBitmap,
    ) -> Arc<Selection> {
        let index = self.index.read();
        let payloads = self.payloads.read();
        // Read under the index lock: a change bumps it under the write lock.
        let version = self.version.load(std::sync::atomic::Ordering::Acquire);
        self.cache.get(f, version, || {
            SlotSpace {
                index: &index,
                payloads: &payloads,
                id_slots,
            }
            .select(f)
        })
    }

    /// Bytes of the payload indexes of `key` (all fields when `None`) and
    /// the distinct values they hold.
    pub fn index_size(&self, key: Option<&str>) -> (usize, usize) {
        let index = self.index.read();
        index
            .fields()
            .filter(|(k, _)| key.is_none_or(|want| want == *k))
            .fold((0, 0), |(b, v), (_, f)| {
                (b + f.memory_bytes(), v + f.distinct_values())
            })
    }

    /// The point id in `slot`, once recorded.
    pub fn id(&self, slot: usize) -> Option<PointId> {
        self.ids
            .read()
            .get(slot)
            .copied()
            .filter(|&id| id != NO_POINT)
    }

    pub fn payload(&self, slot: usize) -> Option<Arc<Payload>> {
        self.payloads.read().get(slot).cloned().flatten()
    }

    /// Slots recorded so far (filled or not).
    pub fn len(&self) -> usize {
        self.ids.read().len()
    }

    /// `(slot, point id)` of every filled slot for which `live` holds.
    pub fn filled(&self, live: impl Fn(usize) -> bool) -> Vec<(usize, PointId)> {
        self.ids
            .read()
            .iter()
            .enumerate()
            .filter(|&(slot, &id)| id != NO_POINT && live(slot))
            .map(|(slot, &id)| (slot, id))
            .collect()
    }

    /// Approximate heap bytes (ids and payload pointers; payload bodies not counted).
    pub fn memory_bytes(&self) -> usize {
        self.ids.read().capacity() * 8 + self.payloads.read().capacity() * 8
    }

    /// Encodes the table. A payload that does not serialise is an error,
    /// never written as an empty (undecodable) entry.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let ids = self.ids.read();
        let payloads = self.payloads.read();
        let mut out = Vec::with_capacity(4 + ids.len() * 12);
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for &id in ids.iter() {
            out.extend_from_slice(&id.to_le_bytes());
        }
        for p in payloads.iter() {
            match p {
                Some(p) => {
                    let b = serde_json::to_vec(&**p).map_err(|e| {
                        CollectionError::invalid(
                            "payload",
                            format!("cannot encode for checkpoint: {e}"),
                        )
                    })?;
                    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                    out.extend_from_slice(&b);
                }
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            }
        }
        Ok(out)
    }

    /// Decodes what [`PointTable::encode`] wrote; `file` names errors.
    pub fn decode(bytes: &[u8], file: &Path) -> Result<PointTable> {
        let corrupt = |offset: usize, reason: String| CollectionError::Corrupt {
            file: file.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        let count = bytes
            .get(0..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| corrupt(0, "missing count".into()))? as usize;
        let ids_end = count
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| corrupt(4, "ids truncated".into()))?;
        let ids: Vec<PointId> = bytes[4..ids_end]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let mut payloads = Vec::with_capacity(count);
        let mut pos = ids_end;
        for i in 0..count {
            let len = bytes
                .get(pos..pos + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| corrupt(pos, format!("payload {i} truncated")))?;
            pos += 4;
            if len == u32::MAX {
                payloads.push(None);
                continue;
            }
            let end = pos
                .checked_add(len as usize)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| corrupt(pos, format!("payload {i} truncated")))?;
            let p = decode_payload(&bytes[pos..end])
                .map_err(|e| corrupt(pos, format!("payload {i}: {e}")))?;
            payloads.push(Some(Arc::new(p)));
            pos = end;
        }
        if pos != bytes.len() {
            return Err(corrupt(pos, "trailing bytes".into()));
        }
        Ok(PointTable::from_parts(ids, payloads))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::point::Value;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let t = PointTable::default();
        let mut p = Payload::new();
        p.insert("k".into(), Value::Int(7));
        t.set(0, 42, Some(Arc::new(p)));
        t.set(2, 7, None);
        let bytes = t.encode().unwrap();
        let back = PointTable::decode(&bytes, Path::new("x")).unwrap();
        assert_eq!(back.id(0), Some(42));
        assert_eq!(back.id(1), None);
        assert_eq!(back.id(2), Some(7));
        assert_eq!(back.payload(0).unwrap()["k"], Value::Int(7));
        assert!(back.payload(2).is_none());
        for cut in 0..bytes.len() {
            assert!(
                PointTable::decode(&bytes[..cut], Path::new("x")).is_err(),
                "cut {cut}"
            );
        }
    }
}
