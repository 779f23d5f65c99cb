//! Compaction: postings under `min_posting_len` live entries are drained
//! (their vectors placed elsewhere first) and retired; postings holding
//! stale entries are rewritten.

use std::sync::atomic::Ordering;

use super::{Batch, Counters};
use crate::spann::slots::State;
use crate::spann::{Result, Spann};

impl Spann {
    /// Rewrites every posting holding stale entries and dissolves postings
    /// under `min_posting_len` live entries (their vectors are reassigned
    /// first, then the head is retired). Runs alongside inserts and searches.
    pub fn compact(&self) -> Result<()> {
        let _op = self.ops.enter();
        let n = self.heads.read().len();
        for h in 0..n as u32 {
            let pc = self.slots.get(h as usize);
            let cell = pc.get();
            if cell.state != State::Live {
                continue;
            }
            let p = {
                let _pin = self.epochs.pin();
                self.read_posting(h, cell.slot)?
            };
            let small = p.live.len() < self.params.min_posting_len
                && p.leaving.is_empty()
                && self.heads.read().live_len() > 1;
            if small {
                self.merge(h)?;
            } else if p.live.len() + p.leaving.len() < cell.slot.count as usize {
                let _w = pc.write.lock();
                let cell = pc.get();
                if cell.state == State::Live {
                    let p = self.read_posting(h, cell.slot)?;
                    self.rewrite(h, &p.kept())?;
                }
            }
        }
        self.maintain();
        Ok(())
    }

    /// Drains head `h`: new assignments and appends avoid it, its live
    /// vectors are placed elsewhere with new versions, then it is retired.
    /// (Concurrent compactions may drain the same head; one retires it.)
    fn merge(&self, h: u32) -> Result<()> {
        let pc = self.slots.get(h as usize);
        pc.draining.fetch_add(1, Ordering::AcqRel);
        self.draining.fetch_add(1, Ordering::AcqRel);
        let res = (|| -> Result<bool> {
            let moved = {
                let _pin = self.epochs.pin();
                let _w = pc.write.lock();
                let cell = pc.get();
                if cell.state != State::Live {
                    return Ok(false);
                }
                let p = self.read_posting(h, cell.slot)?;
                if !p.leaving.is_empty() {
                    // Its leaving copies may be the last ones searches can
                    // see until their moves complete: merge it next time.
                    return Ok(false);
                }
                match self.requeue(p.live) {
                    Some(moved) => moved,
                    None => return Ok(false),
                }
            };
            self.place(moved)?;
            let _w = pc.write.lock();
            if pc.get().state != State::Live {
                return Ok(false);
            }
            self.retire(h)?;
            Ok(true)
        })();
        self.draining.fetch_sub(1, Ordering::AcqRel);
        if !matches!(res, Ok(true)) {
            pc.draining.fetch_sub(1, Ordering::AcqRel);
        }
        if res? {
            Counters::add(&self.stats.merges, 1);
        }
        Ok(())
    }

    /// Starts moving every vector of `live` that is not deleted, each with
    /// the version its new copies get. `None` (and nothing moved) if one is
    /// already being moved by a split: its copy here may be its last one
    /// visible until that move completes, so the posting must stay.
    pub(super) fn requeue(&self, live: Batch) -> Option<Batch> {
        let dim = self.dim;
        let mut out = Batch::default();
        for i in 0..live.len() {
            let id = live.ids[i];
            match self.versions.start_move(id) {
                Some(to) => out.push(id, live.row(i, dim), to),
                None if self.contains(id) => {
                    for j in 0..out.len() {
                        self.versions.cancel_move(out.ids[j], out.vers[j]);
                    }
                    return None;
                }
                None => {}
            }
        }
        Counters::add(&self.stats.reassigned, out.len() as u64);
        Some(out)
    }
}
