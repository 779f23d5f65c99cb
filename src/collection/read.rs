//! Reads by id: `get`, `scroll`, and the records search results return.
//! A failed read of the SSD tier fails the request (it is not reported as a
//! point without a vector).

use super::segment::Segment;
use super::{Collection, Loc, Payload, PointId, Result, SSD};

/// A point as returned by `get`, `scroll` and `search`.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: PointId,
    /// Distance to the query (lower is closer; `1 - dot` for ip/cosine,
    /// squared L2 for l2); 0 outside search.
    pub distance: f32,
    pub payload: Option<Payload>,
    /// The stored vector (unit length for cosine collections).
    pub vector: Option<Vec<f32>>,
}

/// What a read returns of each point besides its id.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fields {
    pub payload: bool,
    pub vector: bool,
}

impl Record {
    /// The record of `node` in memory segment `s`.
    pub(super) fn in_segment(
        s: &Segment,
        id: PointId,
        node: crate::hnsw::NodeId,
        distance: f32,
        fields: Fields,
    ) -> Record {
        Record {
            id,
            distance,
            payload: if fields.payload {
                s.payload(node).map(|p| (*p).clone())
            } else {
                None
            },
            vector: if fields.vector {
                s.hnsw.vector(node).map(std::borrow::Cow::into_owned)
            } else {
                None
            },
        }
    }
}

impl Collection {
    /// The record of the copy at `loc`; `None` when its segment (or the SSD
    /// tier) is gone, as after a concurrent merge.
    pub(super) fn record(
        &self,
        id: PointId,
        loc: Loc,
        distance: f32,
        fields: Fields,
    ) -> Result<Option<Record>> {
        if loc.seg == SSD {
            let Some(tier) = self.ssd.read().clone() else {
                return Ok(None);
            };
            let slot = loc.node.0;
            return Ok(Some(Record {
                id,
                distance,
                payload: if fields.payload {
                    tier.payload(slot).map(|p| (*p).clone())
                } else {
                    None
                },
                vector: if fields.vector {
                    tier.vector(slot)?
                } else {
                    None
                },
            }));
        }
        Ok(self
            .segment(loc.seg)
            .map(|s| Record::in_segment(&s, id, loc.node, distance, fields)))
    }

    /// The points with these ids (`None` for unknown ids), in request order.
    pub fn get(
        &self,
        ids: &[PointId],
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<Option<Record>>> {
        let fields = Fields {
            payload: with_payload,
            vector: with_vector,
        };
        ids.iter()
            .map(|&id| {
                let loc = self.map.read().get(&id).copied();
                match loc {
                    Some(loc) => self.record(id, loc, 0.0, fields),
                    None => Ok(None),
                }
            })
            .collect()
    }

    /// Up to `limit` points in id order, starting after `after`; also returns
    /// the id to continue from (`None` at the end).
    pub fn scroll(
        &self,
        after: Option<PointId>,
        limit: usize,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<(Vec<Record>, Option<PointId>)> {
        let fields = Fields {
            payload: with_payload,
            vector: with_vector,
        };
        let page: Vec<(PointId, Loc)> = {
            let map = self.map.read();
            let range = match after {
                Some(a) => map.range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
                None => map.range(..),
            };
            range
                .take(limit.saturating_add(1))
                .map(|(&id, &l)| (id, l))
                .collect()
        };
        let more = page.len() > limit;
        let mut records = Vec::with_capacity(page.len().min(limit));
        for &(id, loc) in page.iter().take(limit) {
            records.extend(self.record(id, loc, 0.0, fields)?);
        }
        let next = if more {
            records.last().map(|r| r.id)
        } else {
            None
        };
        Ok((records, next))
    }
}
