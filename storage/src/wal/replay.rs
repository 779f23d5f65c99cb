//! [`Replay`]: streams records back in LSN order, one segment in memory at a time.

use super::record::{
    decode_record, decode_segment_header, DecodeError, Lsn, Record, SEGMENT_HEADER_LEN,
};
use super::segment::SegmentInfo;
use crate::backend::Backend;
use crate::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::Arc;

/// An iterator over the records with LSN in `[from, end]`, in order.
/// Yields an error (and then stops) if a segment cannot be read or decoded.
pub struct Replay {
    backend: Arc<dyn Backend>,
    segments: VecDeque<SegmentInfo>,
    from: Lsn,
    end: Lsn,
    current: Option<(SegmentInfo, Vec<u8>, usize)>,
    done: bool,
}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("from", &self.from)
            .field("end", &self.end)
            .finish()
    }
}

impl Replay {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        segments: Vec<SegmentInfo>,
        from: Lsn,
        end: Lsn,
    ) -> Self {
        // Skip segments entirely below `from`: segment i holds [base_i, base_{i+1}).
        let skip = segments
            .windows(2)
            .take_while(|w| w[1].base <= from)
            .count();
        let segments = segments.into_iter().skip(skip).collect();
        Replay {
            backend,
            segments,
            from,
            end,
            current: None,
            done: end < from,
        }
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            let Some((seg, bytes, off)) = self.current.as_mut() else {
                let Some(seg) = self.segments.pop_front() else {
                    return Ok(None);
                };
                let bytes = self
                    .backend
                    .read(&seg.path)
                    .map_err(|e| Error::io("read", &seg.path, e))?;
                decode_segment_header(&bytes)
                    .map_err(|e| Error::corrupt(&seg.path, 0, format!("segment header: {e}")))?;
                self.current = Some((seg, bytes, SEGMENT_HEADER_LEN));
                continue;
            };
            if *off >= bytes.len() {
                self.current = None;
                continue;
            }
            match decode_record(&bytes[*off..]) {
                Ok((rec, n)) => {
                    *off += n;
                    if rec.lsn > self.end {
                        return Ok(None);
                    }
                    if rec.lsn >= self.from {
                        return Ok(Some(rec.into()));
                    }
                }
                Err(DecodeError::Checksum { expected, got }) => {
                    return Err(Error::ChecksumMismatch {
                        file: seg.path.clone(),
                        offset: *off as u64,
                        expected,
                        got,
                    })
                }
                // A record being written concurrently, past the snapshot end.
                Err(DecodeError::Incomplete { .. }) if self.segments.is_empty() => return Ok(None),
                Err(e) => return Err(Error::corrupt(&seg.path, *off as u64, e.to_string())),
            }
        }
    }
}

impl Iterator for Replay {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.next_record().transpose();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}
