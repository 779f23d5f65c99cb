//! A filter evaluated over one slot space to the bitmap of matching slots:
//! leaves on indexed fields from the [`PayloadIndex`], leaves on other fields
//! by evaluating payloads (only of slots the rest of a `must` left), `has_id`
//! through the caller's id lookup, combinations as bitmap algebra.

use std::sync::Arc;

use roaring::RoaringBitmap;

use super::eval;
use super::expr::Filter;
use super::index::PayloadIndex;
use crate::collection::{Payload, PointId};

/// What one slot space holds: its indexes, and each slot's payload.
pub struct SlotSpace<'a> {
    pub index: &'a PayloadIndex,
    pub payloads: &'a [Option<Arc<Payload>>],
    /// The slots of these point ids (those present in this space).
    pub id_slots: &'a dyn Fn(&[PointId]) -> RoaringBitmap,
}

/// The matching slots as a plain bitset: one load and a mask per lookup,
/// for graph traversals that test every neighbour.
#[derive(Debug, Default)]
pub struct DenseSet {
    words: Vec<u64>,
}

impl DenseSet {
    pub fn from_bitmap(b: &RoaringBitmap) -> Self {
        let len = b.max().map_or(0, |m| m as usize / 64 + 1);
        let mut words = vec![0u64; len];
        for s in b {
            words[s as usize / 64] |= 1 << (s % 64);
        }
        DenseSet { words }
    }

    #[inline(always)]
    pub fn contains(&self, slot: u32) -> bool {
        self.words
            .get(slot as usize / 64)
            .is_some_and(|w| w & (1 << (slot % 64)) != 0)
    }
}

/// The matching slots, and how they were found.
#[derive(Debug, Default)]
pub struct Selection {
    pub slots: RoaringBitmap,
    /// `slots` as a bitset, made on first use (and kept with a cached selection).
    dense: std::sync::OnceLock<DenseSet>,
    /// Payloads evaluated one by one (conditions on fields without an index).
    pub payloads_scanned: usize,
    /// Leaf conditions answered from an index.
    pub indexed_leaves: usize,
}

impl Selection {
    /// This selection without the slots from `end` on, or `None` when it
    /// holds none of them.
    pub fn below(&self, end: u32) -> Option<Selection> {
        let max = self.slots.max()?;
        (max >= end).then(|| {
            let mut slots = self.slots.clone();
            slots.remove_range(end..);
            Selection {
                slots,
                dense: std::sync::OnceLock::new(),
                payloads_scanned: self.payloads_scanned,
                indexed_leaves: self.indexed_leaves,
            }
        })
    }

    /// The matching slots as a bitset.
    pub fn dense(&self) -> &DenseSet {
        self.dense
            .get_or_init(|| DenseSet::from_bitmap(&self.slots))
    }
}

impl SlotSpace<'_> {
    /// The slots matching `f`.
    pub fn select(&self, f: &Filter) -> Selection {
        let universe = self.universe();
        let mut sel = Selection::default();
        sel.slots = self.eval(f, &universe, &mut sel);
        sel
    }

    fn universe(&self) -> RoaringBitmap {
        let mut u = RoaringBitmap::new();
        u.insert_range(0..self.payloads.len() as u32);
        u
    }

    /// The slots of `within` that match `f`.
    fn eval(&self, f: &Filter, within: &RoaringBitmap, sel: &mut Selection) -> RoaringBitmap {
        match f {
            Filter::HasId { ids } => (self.id_slots)(ids) & within,
            Filter::Bool {
                must,
                should,
                must_not,
            } => {
                let mut cur = within.clone();
                // Indexed conditions first: they narrow the slots that
                // unindexed ones evaluate payloads for.
                let (fast, slow): (Vec<&Filter>, Vec<&Filter>) =
                    must.iter().partition(|c| self.is_indexed(c));
                for c in fast.into_iter().chain(slow) {
                    if cur.is_empty() {
                        break;
                    }
                    cur = self.eval(c, &cur, sel);
                }
                if !should.is_empty() && !cur.is_empty() {
                    let mut any = RoaringBitmap::new();
                    for c in should {
                        any |= self.eval(c, &cur, sel);
                    }
                    cur = any;
                }
                for c in must_not {
                    if cur.is_empty() {
                        break;
                    }
                    let hit = self.eval(c, &cur, sel);
                    cur -= hit;
                }
                cur
            }
            leaf => match self.index.leaf(leaf, within) {
                Some(b) => {
                    sel.indexed_leaves += 1;
                    b & within
                }
                None => {
                    let key = leaf.key().unwrap_or_default();
                    sel.payloads_scanned += within.len() as usize;
                    within
                        .iter()
                        .filter(|&s| {
                            let v = self
                                .payloads
                                .get(s as usize)
                                .and_then(|p| p.as_ref())
                                .and_then(|p| p.get(key));
                            eval::leaf_matches(leaf, v)
                        })
                        .collect()
                }
            },
        }
    }

    /// Whether `f` is answered without evaluating payloads.
    fn is_indexed(&self, f: &Filter) -> bool {
        match f {
            Filter::HasId { .. } => true,
            Filter::Bool { .. } => f.children().all(|c| self.is_indexed(c)),
            leaf => leaf
                .key()
                .is_some_and(|k| self.index.field_type(k).is_some()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::Value;
    use crate::filter::index::FieldType;
    use crate::filter::json;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            (0i64..4).prop_map(Value::Int),
            (0u8..4).prop_map(|f| Value::Float(f as f64 * 0.5)),
            (0u8..3).prop_map(|s| Value::String(format!("s{s}"))),
            any::<bool>().prop_map(Value::Bool),
        ];
        scalar.prop_recursive(2, 8, 3, |inner| {
            prop::collection::vec(inner, 0..3).prop_map(Value::List)
        })
    }

    fn payload() -> impl Strategy<Value = Option<Payload>> {
        prop::option::of(prop::collection::btree_map(
            prop_oneof![Just("a".to_string()), Just("b".to_string())],
            value(),
            0..3,
        ))
    }

    fn leaf() -> impl Strategy<Value = String> {
        let key = prop_oneof![Just("a"), Just("b"), Just("c")];
        (key, 0u8..7, 0i64..4, 0u8..3).prop_map(|(k, kind, n, s)| match kind {
            0 => format!(r#"{{"match": {{"key": "{k}", "value": "s{s}"}}}}"#),
            1 => format!(r#"{{"match": {{"key": "{k}", "value": {n}}}}}"#),
            2 => format!(r#"{{"match_any": {{"key": "{k}", "values": [true, {n}, "s{s}"]}}}}"#),
            3 => format!(
                r#"{{"range": {{"key": "{k}", "gte": {}, "lt": {n}}}}}"#,
                s as f64 * 0.7
            ),
            4 => format!(r#"{{"is_null": {{"key": "{k}"}}}}"#),
            5 => format!(r#"{{"is_empty": {{"key": "{k}"}}}}"#),
            _ => format!(r#"{{"has_id": {{"ids": [{n}, {}]}}}}"#, n * 3 + 1),
        })
    }

    fn filter() -> impl Strategy<Value = String> {
        leaf().prop_recursive(3, 16, 3, |inner| {
            (
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::vec(inner.clone(), 0..3),
                prop::collection::vec(inner, 0..2),
            )
                .prop_map(|(m, s, n)| {
                    format!(
                        r#"{{"must": [{}], "should": [{}], "must_not": [{}]}}"#,
                        m.join(","),
                        s.join(","),
                        n.join(",")
                    )
                })
        })
    }

    proptest! {
        /// The index answers every filter as evaluating each payload does,
        /// whichever fields are indexed and however payloads were updated.
        #[test]
        fn selection_equals_evaluation(
            payloads in prop::collection::vec(payload(), 0..40),
            replaced in prop::collection::vec((0usize..40, payload()), 0..8),
            indexed in prop::collection::vec(any::<bool>(), 2),
            text in filter(),
        ) {
            let mut payloads: Vec<Option<Arc<Payload>>> =
                payloads.into_iter().map(|p| p.map(Arc::new)).collect();
            let ids: Vec<PointId> = (0..payloads.len() as u64).map(|i| i * 2 + 1).collect();
            let mut index = PayloadIndex::default();
            for (key, on) in ["a", "b"].iter().zip(&indexed) {
                if *on {
                    index.create(key, FieldType::Keyword, payloads.iter().enumerate().map(|(s, p)| (s as u32, p.as_deref())));
                }
            }
            for (slot, p) in replaced {
                if slot >= payloads.len() { continue; }
                if let Some(old) = &payloads[slot] { index.update(slot as u32, old, false); }
                if let Some(new) = &p { index.update(slot as u32, new, true); }
                payloads[slot] = p.map(Arc::new);
            }
            let f = json::parse(&text, "filter").unwrap();
            let id_slots = |want: &[PointId]| -> RoaringBitmap {
                ids.iter().enumerate().filter(|(_, id)| want.contains(id)).map(|(s, _)| s as u32).collect()
            };
            let space = SlotSpace { index: &index, payloads: &payloads, id_slots: &id_slots };
            let got: Vec<u32> = space.select(&f).slots.iter().collect();
            let want: Vec<u32> = (0..payloads.len())
                .filter(|&s| eval::matches(&f, ids[s], payloads[s].as_deref()))
                .map(|s| s as u32)
                .collect();
            prop_assert_eq!(got, want, "{}", text);
        }
    }
}
