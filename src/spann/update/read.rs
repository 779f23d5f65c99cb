//! A posting's entries as updates see them: one per id (the newest copy),
//! members apart from leaving copies, with their full vectors.

use std::collections::HashMap;

use super::{Batch, Posting};
use crate::spann::posting::PAGE;
use crate::spann::versions;
use crate::spann::{PostingSlot, Result, Spann};

impl Spann {
    /// The entries of posting `h` at `slot` that are not garbage, one per
    /// id (the newest copy), split into members and leaving copies, with
    /// their full vectors (decoded from f32 codes, else read from
    /// `vectors.f32`). The caller holds a pin or `h`'s writer lock.
    pub(in crate::spann) fn read_posting(&self, h: u32, slot: PostingSlot) -> Result<Posting> {
        let mut out = Posting::default();
        if slot.bytes == 0 {
            return Ok(out);
        }
        let dim = self.dim;
        let file = &self.postings_file;
        let pages = (slot.bytes as usize).div_ceil(PAGE);
        let mut tmp = Vec::with_capacity(dim);
        let lossy = self.codec.lossy();
        file.read_pages(slot.first_page, pages, |buf| -> Result<()> {
            let view = self.checked_posting(h, slot, buf)?;
            // id -> (is leaving, index)
            let mut at: HashMap<u32, (bool, usize)> = HashMap::with_capacity(view.len());
            for (i, e) in view.iter().enumerate() {
                let w = self.entry_word(slot, i, e.id)?;
                if versions::garbage(e.version, w) {
                    continue;
                }
                let leaving = versions::leaving(e.version, w);
                match at.get(&e.id).copied() {
                    // Two copies in one posting (a move landed where the id
                    // was): keep the newer; a member beats a leaving copy.
                    Some((false, j)) => {
                        if !leaving && versions::newer(e.version, out.live.vers[j]) {
                            out.live.vers[j] = e.version;
                        }
                        continue;
                    }
                    Some((true, j)) if leaving => {
                        if versions::newer(e.version, out.leaving.vers[j]) {
                            out.leaving.vers[j] = e.version;
                        }
                        continue;
                    }
                    Some((true, j)) => {
                        // Promote: drop the leaving copy, keep this member.
                        out.leaving.ids[j] = u32::MAX;
                    }
                    None => {}
                }
                let b = if leaving {
                    &mut out.leaving
                } else {
                    &mut out.live
                };
                at.insert(e.id, (leaving, b.len()));
                b.ids.push(e.id);
                b.vers.push(e.version);
                if !lossy {
                    self.codec.decode_bytes(e.code, &mut tmp);
                    b.vecs.extend_from_slice(&tmp);
                }
            }
            Ok(())
        })??;
        if out.leaving.ids.contains(&u32::MAX) {
            let mut kept = Batch::default();
            for j in 0..out.leaving.len() {
                if out.leaving.ids[j] != u32::MAX {
                    if lossy {
                        kept.ids.push(out.leaving.ids[j]);
                        kept.vers.push(out.leaving.vers[j]);
                    } else {
                        kept.push(
                            out.leaving.ids[j],
                            out.leaving.row(j, dim),
                            out.leaving.vers[j],
                        );
                    }
                }
            }
            out.leaving = kept;
        }
        if let Some(vf) = &self.vectors_file {
            let row = dim * 4;
            for b in [&mut out.live, &mut out.leaving] {
                for &id in &b.ids {
                    vf.read_bytes(PAGE as u64 + u64::from(id) * row as u64, row, |r| {
                        b.vecs.extend(
                            r.chunks_exact(4)
                                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                        )
                    })?;
                }
            }
        }
        Ok(out)
    }
}
