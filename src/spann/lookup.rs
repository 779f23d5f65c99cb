//! Point lookups outside search: the stored full-precision vector of an id
//! and the number of live ids.

use super::posting::PAGE;
use super::{Result, Spann};

impl Spann {
    /// The stored full-precision vector of `id` (unit length for cosine),
    /// read from `vectors.f32`; `None` for a deleted or unknown id, or an
    /// index with f32 postings (which keeps no separate vector file).
    pub fn vector(&self, id: u32) -> Result<Option<Vec<f32>>> {
        if !self.contains(id) {
            return Ok(None);
        }
        let Some(vf) = self.vectors_file.as_ref() else {
            return Ok(None);
        };
        let row = self.dim * 4;
        let off = PAGE as u64 + u64::from(id) * row as u64;
        vf.read_bytes(off, row, |b| Some(crate::score::f32s(b).collect()))
    }

    /// Live (issued, not deleted) ids; a scan of the version map.
    pub fn live_len(&self) -> usize {
        (0..self.len() as u32)
            .filter(|&id| self.contains(id))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use crate::distance::Metric;
    use crate::spann::{Encoding, OpenParams, Spann, SpannParams};

    #[test]
    fn vector_reads_back_what_was_inserted_until_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let params = SpannParams {
            encoding: Encoding::F16,
            ..SpannParams::default()
        };
        let s = Spann::create(dir.path(), 4, Metric::L2, params, OpenParams::default()).unwrap();
        let data: Vec<f32> = (0..40).map(|i| i as f32 * 0.25).collect();
        let ids = s.insert_batch(&data).unwrap();
        assert_eq!(s.live_len(), 10);
        for (i, &id) in ids.iter().enumerate() {
            assert_eq!(s.vector(id).unwrap().unwrap(), data[i * 4..i * 4 + 4]);
        }
        s.delete(ids[3]).unwrap();
        assert_eq!(s.vector(ids[3]).unwrap(), None);
        assert_eq!(s.vector(1000).unwrap(), None);
        assert_eq!(s.live_len(), 9);
    }
}
