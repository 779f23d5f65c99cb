//! Segment files: naming, listing and the open-time scan that applies the recovery rules.

use super::record::{
    decode_segment_header, scan_records, DamageKind, DecodeError, Lsn, ScanEnd, SEGMENT_HEADER_LEN,
};
use super::Recovery;
use crate::backend::Backend;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Segment file suffix.
pub(crate) const SEGMENT_SUFFIX: &str = ".wal";

/// One segment as known to the log.
#[derive(Debug, Clone)]
pub(crate) struct SegmentInfo {
    pub path: PathBuf,
    pub base: Lsn,
}

/// `00000000000000000042.wal` for base LSN 42: names sort in LSN order.
pub(crate) fn segment_name(base: Lsn) -> String {
    format!("{:020}{SEGMENT_SUFFIX}", base.0)
}

/// The segments in `dir`, in LSN order.
pub(crate) fn list_segments(backend: &dyn Backend, dir: &Path) -> Result<Vec<SegmentInfo>> {
    let names = backend.list(dir).map_err(|e| Error::io("list", dir, e))?;
    let mut segs: Vec<SegmentInfo> = names
        .iter()
        .filter_map(|n| {
            let stem = n.strip_suffix(SEGMENT_SUFFIX)?;
            (stem.len() == 20).then_some(())?;
            let base = stem.parse::<u64>().ok()?;
            Some(SegmentInfo {
                path: dir.join(n),
                base: Lsn(base),
            })
        })
        .collect();
    segs.sort_by_key(|s| s.base);
    Ok(segs)
}

/// What opening found and did; logged and returned by [`super::Wal::open_report`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Segments kept.
    pub segments: usize,
    /// Whole records found.
    pub records: u64,
    /// LSN of the last whole record (0 if none).
    pub last_lsn: Lsn,
    /// A torn tail that was cut: file, offset cut at, bytes removed.
    pub torn_tail: Option<(PathBuf, u64, u64)>,
    /// A repair (only with [`Recovery::Repair`]): file and offset truncated at, segments removed after it.
    pub repaired: Option<(PathBuf, u64, usize)>,
}

/// The result of scanning all segments at open.
pub(crate) struct Scanned {
    pub segments: Vec<SegmentInfo>,
    /// Length of the last segment's valid prefix (the append position).
    pub tail_len: u64,
    pub report: OpenReport,
}

fn damage_error(file: &Path, offset: u64, kind: &DamageKind) -> Error {
    match kind {
        DamageKind::Decode(DecodeError::Checksum { expected, got }) => Error::ChecksumMismatch {
            file: file.to_path_buf(),
            offset,
            expected: *expected,
            got: *got,
        },
        DamageKind::Decode(e) => Error::corrupt(file, offset, e.to_string()),
        DamageKind::LsnOrder { lsn, after } => Error::corrupt(
            file,
            offset,
            format!("record lsn {lsn} does not follow lsn {after}"),
        ),
    }
}

/// Scans every segment, cutting a torn tail and (with `Recovery::Repair`) truncating at corruption.
pub(crate) fn scan_and_recover(
    backend: &dyn Backend,
    dir: &Path,
    recovery: Recovery,
) -> Result<Scanned> {
    let mut segments = list_segments(backend, dir)?;
    let mut report = OpenReport::default();
    let mut prev_last = 0u64;
    let mut tail_len = SEGMENT_HEADER_LEN as u64;
    let mut i = 0;
    while i < segments.len() {
        let seg = segments[i].clone();
        let is_last = i + 1 == segments.len();
        let bytes = backend
            .read(&seg.path)
            .map_err(|e| Error::io("read", &seg.path, e))?;
        // (offset, error, is_torn_tail)
        let damage: Option<(u64, Error, bool)> = match decode_segment_header(&bytes) {
            Err(_) if is_last && bytes.len() <= SEGMENT_HEADER_LEN => {
                // Crash while creating the segment: nothing acknowledged can be in it.
                tracing::warn!(file = %seg.path.display(), len = bytes.len(), "removing torn WAL segment header");
                backend
                    .remove(&seg.path)
                    .map_err(|e| Error::io("remove", &seg.path, e))?;
                backend
                    .sync_dir(dir)
                    .map_err(|e| Error::io("fsync dir", dir, e))?;
                report.torn_tail = Some((seg.path.clone(), 0, bytes.len() as u64));
                segments.pop();
                break;
            }
            Err(DecodeError::Checksum { expected, got }) => Some((
                0,
                Error::ChecksumMismatch {
                    file: seg.path.clone(),
                    offset: 0,
                    expected,
                    got,
                },
                false,
            )),
            Err(e) => Some((
                0,
                Error::corrupt(&seg.path, 0, format!("segment header: {e}")),
                false,
            )),
            Ok(base) if base != seg.base || base.0 <= prev_last => Some((
                0,
                Error::corrupt(
                    &seg.path,
                    0,
                    format!(
                        "segment header base {} does not match its name or follow lsn {prev_last}",
                        base.0
                    ),
                ),
                false,
            )),
            Ok(base) => {
                let mut last = prev_last;
                let mut count = 0u64;
                let mut end = SEGMENT_HEADER_LEN as u64;
                let scan = scan_records(&bytes, base, |rec, off| {
                    last = rec.lsn.0;
                    count += 1;
                    end = off + (rec.payload.len() + super::record::RECORD_HEADER_LEN) as u64;
                });
                report.records += count;
                prev_last = last;
                match scan {
                    ScanEnd::Clean => None,
                    ScanEnd::Damaged {
                        offset,
                        error,
                        resumes,
                    } => {
                        debug_assert_eq!(offset, end);
                        Some((
                            offset,
                            damage_error(&seg.path, offset, &error),
                            is_last && !resumes,
                        ))
                    }
                }
            }
        };
        match damage {
            None => {
                tail_len = bytes.len() as u64;
            }
            Some((offset, _, true)) => {
                let cut = bytes.len() as u64 - offset;
                tracing::warn!(file = %seg.path.display(), offset, bytes = cut, "cutting torn WAL tail");
                truncate(backend, &seg.path, offset)?;
                report.torn_tail = Some((seg.path.clone(), offset, cut));
                tail_len = offset;
            }
            Some((offset, err, false)) => {
                if recovery != Recovery::Repair {
                    return Err(err);
                }
                let dropped: Vec<SegmentInfo> = segments.drain(i + 1..).collect();
                tracing::warn!(error = %err, removed_segments = dropped.len(), "repairing WAL: truncating at corruption");
                for d in &dropped {
                    backend
                        .remove(&d.path)
                        .map_err(|e| Error::io("remove", &d.path, e))?;
                }
                if offset < SEGMENT_HEADER_LEN as u64 {
                    backend
                        .remove(&seg.path)
                        .map_err(|e| Error::io("remove", &seg.path, e))?;
                    segments.pop();
                } else {
                    truncate(backend, &seg.path, offset)?;
                    tail_len = offset;
                }
                backend
                    .sync_dir(dir)
                    .map_err(|e| Error::io("fsync dir", dir, e))?;
                report.repaired = Some((seg.path.clone(), offset, dropped.len()));
                break;
            }
        }
        i += 1;
    }
    report.segments = segments.len();
    report.last_lsn = Lsn(prev_last);
    Ok(Scanned {
        segments,
        tail_len,
        report,
    })
}

fn truncate(backend: &dyn Backend, path: &Path, len: u64) -> Result<()> {
    let mut f = backend.open(path).map_err(|e| Error::io("open", path, e))?;
    f.set_len(len).map_err(|e| Error::io("truncate", path, e))?;
    f.sync().map_err(|e| Error::io("fsync", path, e))
}
