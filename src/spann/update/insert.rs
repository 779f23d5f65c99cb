//! Inserting and deleting vectors, and writing the full-precision rows of
//! an index with lossy postings to `vectors.f32`.

use super::{Batch, Counters};
use crate::spann::posting::PAGE;
use crate::spann::{Result, Spann, SpannError};

impl Spann {
    /// Inserts one vector; returns its id.
    pub fn insert(&self, v: &[f32]) -> Result<u32> {
        Ok(self.insert_batch(v)?[0])
    }

    /// Inserts the rows of `data` (row-major); returns their ids, in order.
    /// Safe to call from many threads at once and alongside searches; the
    /// batch's vectors are placed in parallel. When it returns, every
    /// vector is searchable. On error no id of the batch stays live.
    pub fn insert_batch(&self, data: &[f32]) -> Result<Vec<u32>> {
        let dim = self.dim;
        if !data.len().is_multiple_of(dim) {
            return Err(SpannError::Dimension {
                what: "insert batch".into(),
                expected: dim,
                got: data.len() % dim,
            });
        }
        let n = data.len() / dim;
        if n == 0 {
            return Ok(Vec::new());
        }
        let _op = self.ops.enter();
        let mut batch = Batch {
            ids: Vec::with_capacity(n),
            vecs: Vec::with_capacity(data.len()),
            vers: vec![0; n],
        };
        let mut tmp = Vec::with_capacity(dim);
        for (i, v) in data.chunks_exact(dim).enumerate() {
            self.prepare(v, || format!("inserted vector {i}"), &mut tmp)?;
            batch.vecs.extend_from_slice(&tmp);
        }
        let first = self.versions.reserve(n)?;
        batch.ids.extend(first..first + n as u32);
        let ids = batch.ids.clone();
        let placed = self
            .write_rows(first, &batch.vecs)
            .and_then(|()| self.place(batch));
        if let Err(e) = placed {
            for &id in &ids {
                self.versions.delete(id);
            }
            return Err(e);
        }
        Counters::add(&self.stats.inserted, n as u64);
        self.maintain();
        Ok(ids)
    }

    /// Deletes `id` (a tombstone); returns `false` if it was already deleted.
    pub fn delete(&self, id: u32) -> Result<bool> {
        let _op = self.ops.enter();
        let fresh = self.versions.delete(id).ok_or(SpannError::UnknownId(id))?;
        if fresh {
            Counters::add(&self.stats.deleted, 1);
        }
        Ok(fresh)
    }

    /// Writes rows of ids `first..` to `vectors.f32` (lossy postings only).
    fn write_rows(&self, first: u32, vecs: &[f32]) -> Result<()> {
        let Some(vf) = &self.vectors_file else {
            return Ok(());
        };
        let off = PAGE as u64 + u64::from(first) * (self.dim * 4) as u64;
        let bytes: &[u8] = bytemuck::cast_slice(vecs);
        // Grow the file to whole pages first (O_DIRECT reads of the last
        // rows stay inside it); it only ever grows here, so concurrent
        // batches never cut each other's rows.
        let end = (off + bytes.len() as u64).div_ceil(PAGE as u64) * PAGE as u64;
        {
            let mut len = self.vectors_len.lock();
            if end > *len {
                vf.set_len(end)?;
                *len = end;
            }
        }
        vf.write_bytes(off, bytes)
    }
}
