//! WAL records of a collection: a batch of upserts or a batch of deletes.
//!
//! Layout (little-endian), after the WAL's own framing (length, CRC, LSN, kind):
//! - kind 1, upsert: `u32 count, u32 dim`, then per point `u64 id, dim × f32,
//!   u32 payload_len` (`u32::MAX` = no payload) and the payload's JSON bytes;
//! - kind 2, delete: `u32 count`, then `count × u64` ids.

use super::point::{decode_payload, Payload, PointId};

pub(crate) const KIND_UPSERT: u8 = 1;
pub(crate) const KIND_DELETE: u8 = 2;
const NO_PAYLOAD: u32 = u32::MAX;

/// One point as logged (payload already encoded and validated).
pub(crate) struct LoggedPoint<'a> {
    pub id: PointId,
    pub vector: &'a [f32],
    pub payload: Option<&'a [u8]>,
}

/// A decoded record.
#[derive(Debug, PartialEq)]
pub(crate) enum Op {
    Upsert(Vec<(PointId, Vec<f32>, Option<Payload>)>),
    Delete(Vec<PointId>),
}

pub(crate) fn encode_upsert(dim: usize, points: &[LoggedPoint<'_>]) -> Vec<u8> {
    let size: usize = points
        .iter()
        .map(|p| 12 + 4 * dim + p.payload.map_or(0, |b| b.len()))
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    for p in points {
        out.extend_from_slice(&p.id.to_le_bytes());
        out.extend_from_slice(bytemuck::cast_slice(p.vector));
        match p.payload {
            Some(b) => {
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&NO_PAYLOAD.to_le_bytes()),
        }
    }
    out
}

pub(crate) fn encode_delete(ids: &[PointId]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 8 * ids.len());
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// Bounds-checked little-endian reader; errors carry the offset.
struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], (usize, String)> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| {
                (
                    self.pos,
                    format!("need {n} bytes, {} left", self.b.len() - self.pos),
                )
            })?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, (usize, String)> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64, (usize, String)> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
}

/// Decodes a record of `kind`; `Err((offset, reason))` when malformed.
pub(crate) fn decode(kind: u8, bytes: &[u8], dim: usize) -> Result<Op, (usize, String)> {
    let mut r = Reader { b: bytes, pos: 0 };
    let op = match kind {
        KIND_UPSERT => {
            let count = r.u32()? as usize;
            let d = r.u32()? as usize;
            if d != dim {
                return Err((
                    4,
                    format!("record dimension {d}, collection dimension {dim}"),
                ));
            }
            let mut points = Vec::with_capacity(count.min(bytes.len() / (12 + 4 * dim)));
            for _ in 0..count {
                let id = r.u64()?;
                let vector: Vec<f32> = r
                    .take(4 * dim)?
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let len = r.u32()?;
                let payload = if len == NO_PAYLOAD {
                    None
                } else {
                    let at = r.pos;
                    Some(
                        decode_payload(r.take(len as usize)?)
                            .map_err(|e| (at, format!("payload of point {id}: {e}")))?,
                    )
                };
                points.push((id, vector, payload));
            }
            Op::Upsert(points)
        }
        KIND_DELETE => {
            let count = r.u32()? as usize;
            let mut ids = Vec::with_capacity(count.min(bytes.len() / 8));
            for _ in 0..count {
                ids.push(r.u64()?);
            }
            Op::Delete(ids)
        }
        other => return Err((0, format!("unknown record kind {other}"))),
    };
    if r.pos != bytes.len() {
        return Err((r.pos, format!("{} trailing bytes", bytes.len() - r.pos)));
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::point::{encode_payload, Value};

    #[test]
    fn round_trip_and_truncation() {
        let mut p = Payload::new();
        p.insert("a".into(), Value::Int(1));
        let pb = encode_payload(&p, "p", 100).unwrap();
        let v1 = [1.0f32, 2.0];
        let v2 = [3.0f32, 4.0];
        let bytes = encode_upsert(
            2,
            &[
                LoggedPoint {
                    id: 7,
                    vector: &v1,
                    payload: Some(&pb),
                },
                LoggedPoint {
                    id: 9,
                    vector: &v2,
                    payload: None,
                },
            ],
        );
        assert_eq!(
            decode(KIND_UPSERT, &bytes, 2).unwrap(),
            Op::Upsert(vec![(7, v1.to_vec(), Some(p)), (9, v2.to_vec(), None)])
        );
        for cut in 0..bytes.len() {
            assert!(decode(KIND_UPSERT, &bytes[..cut], 2).is_err());
        }
        assert!(decode(KIND_UPSERT, &bytes, 3).is_err());
        let d = encode_delete(&[1, 2, 3]);
        assert_eq!(
            decode(KIND_DELETE, &d, 2).unwrap(),
            Op::Delete(vec![1, 2, 3])
        );
        assert!(decode(9, &d, 2).is_err());
    }
}
