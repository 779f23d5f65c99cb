//! Payload indexes of one slot space (a memory segment's nodes or the SSD
//! tier's vector ids): per indexed field, the slots holding each value as
//! roaring bitmaps. Keywords map to bitmaps, numbers to ordered maps of
//! bitmaps (a range is a union of one map range), bools to two bitmaps;
//! every field also keeps its null, empty and present slots, so each
//! condition is answered exactly from the index, whatever the value types
//! the field holds. The declared [`FieldType`] decides which conditions a
//! request may put on the field (a `range` on a keyword index is an error).

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

use super::expr::{Filter, MatchValue, Range};
use crate::collection::{Payload, Value};

/// The type a payload index is declared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    Keyword,
    Integer,
    Float,
    Bool,
}

impl FieldType {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::Keyword => "keyword",
            FieldType::Integer => "integer",
            FieldType::Float => "float",
            FieldType::Bool => "bool",
        }
    }

    /// Whether a condition may be put on a field indexed with this type;
    /// the error message says why not.
    pub fn check(self, f: &Filter) -> Result<(), String> {
        let value_ok = |v: &MatchValue| match (self, v) {
            (FieldType::Keyword, MatchValue::Keyword(_))
            | (FieldType::Integer, MatchValue::Integer(_))
            | (FieldType::Bool, MatchValue::Bool(_)) => Ok(()),
            (t, v) => Err(format!(
                "the field has a {} index; cannot match it against {}",
                t.as_str(),
                match v {
                    MatchValue::Keyword(_) => "a string",
                    MatchValue::Integer(_) => "an integer",
                    MatchValue::Bool(_) => "a bool",
                }
            )),
        };
        match f {
            Filter::Match { value, .. } => value_ok(value),
            Filter::MatchAny { values, .. } => values.iter().try_for_each(value_ok),
            Filter::Range { .. } => match self {
                FieldType::Integer | FieldType::Float => Ok(()),
                t => Err(format!(
                    "the field has a {} index; range needs an integer or float one",
                    t.as_str()
                )),
            },
            _ => Ok(()),
        }
    }
}

impl std::str::FromStr for FieldType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "keyword" => FieldType::Keyword,
            "integer" => FieldType::Integer,
            "float" => FieldType::Float,
            "bool" => FieldType::Bool,
            other => {
                return Err(format!(
                    "unknown field type {other:?} (keyword, integer, float, bool)"
                ))
            }
        })
    }
}

/// A total order on f64 keys (no NaN is ever stored: payload floats are finite).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
struct FloatKey(f64);
impl Eq for FloatKey {}
impl Ord for FloatKey {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&o.0)
    }
}

/// The union of many bitmaps: one sort of their slots when they are many
/// small ones (a range over distinct numbers), plain ORs otherwise.
fn union<'a>(parts: impl Iterator<Item = &'a RoaringBitmap>) -> RoaringBitmap {
    let parts: Vec<&RoaringBitmap> = parts.collect();
    let total: u64 = parts.iter().map(|b| b.len()).sum();
    if parts.len() < 16 || total > parts.len() as u64 * 64 {
        return parts
            .into_iter()
            .fold(RoaringBitmap::new(), |acc, b| acc | b);
    }
    let mut slots: Vec<u32> = Vec::with_capacity(total as usize);
    for b in parts {
        slots.extend(b.iter());
    }
    slots.sort_unstable();
    slots.dedup();
    RoaringBitmap::from_sorted_iter(slots).unwrap_or_default()
}

/// The index of one field.
#[derive(Debug, Default)]
pub struct FieldIndex {
    kind: Option<FieldType>,
    keywords: HashMap<String, RoaringBitmap>,
    ints: BTreeMap<i64, RoaringBitmap>,
    floats: BTreeMap<FloatKey, RoaringBitmap>,
    bools: [RoaringBitmap; 2],
    nulls: RoaringBitmap,
    /// Null or an empty list.
    empties: RoaringBitmap,
    present: RoaringBitmap,
}

impl FieldIndex {
    fn new(kind: FieldType) -> Self {
        FieldIndex {
            kind: Some(kind),
            ..FieldIndex::default()
        }
    }

    fn update(&mut self, slot: u32, v: &Value, add: bool) {
        fn set(b: &mut RoaringBitmap, slot: u32, add: bool) {
            if add {
                b.insert(slot);
            } else {
                b.remove(slot);
            }
        }
        set(&mut self.present, slot, add);
        match v {
            Value::Null => {
                set(&mut self.nulls, slot, add);
                set(&mut self.empties, slot, add);
            }
            Value::List(l) if l.is_empty() => set(&mut self.empties, slot, add),
            v => self.update_scalars(slot, v, add),
        }
    }

    fn update_scalars(&mut self, slot: u32, v: &Value, add: bool) {
        fn set<K: Ord + Clone>(m: &mut BTreeMap<K, RoaringBitmap>, k: K, slot: u32, add: bool) {
            if add {
                m.entry(k).or_default().insert(slot);
            } else if let Some(b) = m.get_mut(&k) {
                b.remove(slot);
                if b.is_empty() {
                    m.remove(&k);
                }
            }
        }
        match v {
            Value::List(items) => items.iter().for_each(|i| self.update_scalars(slot, i, add)),
            Value::String(s) => {
                if add {
                    self.keywords.entry(s.clone()).or_default().insert(slot);
                } else if let Some(b) = self.keywords.get_mut(s) {
                    b.remove(slot);
                    if b.is_empty() {
                        self.keywords.remove(s);
                    }
                }
            }
            Value::Int(i) => set(&mut self.ints, *i, slot, add),
            Value::Float(f) => set(&mut self.floats, FloatKey(*f), slot, add),
            Value::Bool(b) => {
                let bm = &mut self.bools[usize::from(*b)];
                if add {
                    bm.insert(slot);
                } else {
                    bm.remove(slot);
                }
            }
            Value::Null => {}
        }
    }

    fn matching(&self, v: &MatchValue) -> RoaringBitmap {
        match v {
            MatchValue::Keyword(k) => self.keywords.get(k).cloned().unwrap_or_default(),
            MatchValue::Integer(i) => self.ints.get(i).cloned().unwrap_or_default(),
            MatchValue::Bool(b) => self.bools[usize::from(*b)].clone(),
        }
    }

    fn range(&self, r: &Range) -> RoaringBitmap {
        let lo = match (r.gt, r.gte) {
            (Some(a), Some(b)) if a >= b => Bound::Excluded(a),
            (_, Some(b)) => Bound::Included(b),
            (Some(a), None) => Bound::Excluded(a),
            (None, None) => Bound::Unbounded,
        };
        let hi = match (r.lt, r.lte) {
            (Some(a), Some(b)) if a <= b => Bound::Excluded(a),
            (_, Some(b)) => Bound::Included(b),
            (Some(a), None) => Bound::Excluded(a),
            (None, None) => Bound::Unbounded,
        };
        if let (Bound::Included(l) | Bound::Excluded(l), Bound::Included(h) | Bound::Excluded(h)) =
            (lo, hi)
        {
            if l > h {
                return RoaringBitmap::new();
            }
        }
        let fk = |b: Bound<f64>| b.map(FloatKey);
        // Integers compare as f64 (exact below 2^53): the i64 range covering
        // the bounds, then each key checked against them.
        let ik = |b: Bound<f64>, up: bool| match b {
            Bound::Unbounded => Bound::Unbounded,
            Bound::Included(x) | Bound::Excluded(x) => Bound::Included(
                if up { x.ceil() } else { x.floor() }.clamp(i64::MIN as f64, i64::MAX as f64)
                    as i64,
            ),
        };
        let parts = self.floats.range((fk(lo), fk(hi))).map(|(_, b)| b).chain(
            self.ints
                .range((ik(lo, false), ik(hi, true)))
                .filter(|(k, _)| r.contains(**k as f64))
                .map(|(_, b)| b),
        );
        union(parts)
    }

    /// Bytes of the bitmaps and keys, roughly.
    pub fn memory_bytes(&self) -> usize {
        let bm = |b: &RoaringBitmap| b.serialized_size() + 16;
        self.keywords
            .iter()
            .map(|(k, b)| k.len() + 24 + bm(b))
            .sum::<usize>()
            + self.ints.values().map(|b| 8 + bm(b)).sum::<usize>()
            + self.floats.values().map(|b| 8 + bm(b)).sum::<usize>()
            + [
                &self.bools[0],
                &self.bools[1],
                &self.nulls,
                &self.empties,
                &self.present,
            ]
            .into_iter()
            .map(bm)
            .sum::<usize>()
    }

    /// Distinct values held.
    pub fn distinct_values(&self) -> usize {
        self.keywords.len()
            + self.ints.len()
            + self.floats.len()
            + self.bools.iter().filter(|b| !b.is_empty()).count()
    }
}

/// The indexes of one slot space, by field name.
#[derive(Debug, Default)]
pub struct PayloadIndex {
    fields: HashMap<String, FieldIndex>,
}

impl PayloadIndex {
    /// Whether `key` is indexed (and with which type).
    pub fn field_type(&self, key: &str) -> Option<FieldType> {
        self.fields.get(key).and_then(|f| f.kind)
    }

    pub fn fields(&self) -> impl Iterator<Item = (&str, &FieldIndex)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Starts indexing `key` as `kind` over `payloads` (slot order); a
    /// field indexed already keeps its index.
    pub fn create<'a>(
        &mut self,
        key: &str,
        kind: FieldType,
        payloads: impl Iterator<Item = (u32, Option<&'a Payload>)>,
    ) {
        if self.fields.contains_key(key) {
            return;
        }
        let mut f = FieldIndex::new(kind);
        for (slot, p) in payloads {
            if let Some(v) = p.and_then(|p| p.get(key)) {
                f.update(slot, v, true);
            }
        }
        self.fields.insert(key.to_string(), f);
    }

    pub fn drop_field(&mut self, key: &str) {
        self.fields.remove(key);
    }

    /// Indexes `payload` at `slot` (`add`), or removes it from the indexes.
    pub fn update(&mut self, slot: u32, payload: &Payload, add: bool) {
        for (key, f) in self.fields.iter_mut() {
            if let Some(v) = payload.get(key) {
                f.update(slot, v, add);
            }
        }
    }

    /// The slots a leaf condition on an indexed field holds for, among
    /// `universe` (`None` when `f`'s field is not indexed or `f` is not a
    /// field condition).
    pub fn leaf(&self, f: &Filter, universe: &RoaringBitmap) -> Option<RoaringBitmap> {
        let idx = self.fields.get(f.key()?)?;
        Some(match f {
            Filter::Match { value, .. } => idx.matching(value),
            Filter::MatchAny { values, .. } => values
                .iter()
                .map(|v| idx.matching(v))
                .fold(RoaringBitmap::new(), |a, b| a | b),
            Filter::Range { range, .. } => idx.range(range),
            Filter::IsNull { .. } => idx.nulls.clone(),
            Filter::IsEmpty { .. } => (universe - &idx.present) | &idx.empties,
            Filter::HasId { .. } | Filter::Bool { .. } => return None,
        })
    }

    pub fn memory_bytes(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, f)| k.len() + f.memory_bytes())
            .sum()
    }
}
