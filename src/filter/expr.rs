//! The filter language: conditions on payload fields and point ids,
//! combined with `must` / `should` / `must_not` (nestable), and its
//! validation, whose errors name the path of the bad part inside the filter
//! (`filter.must[2].range.gte`).
//!
//! Semantics, in one place (`eval.rs` implements them, the payload indexes
//! answer them exactly):
//! - `match` (keyword, integer or bool) holds when the field's value equals
//!   it, or, for a list value, when an element (at any depth) does;
//! - `match_any` holds when `match` holds for one of its values;
//! - `range` holds for an integer or float value (or list element) within
//!   every bound given; other types never match;
//! - `is_null` holds when the field is present with value null;
//! - `is_empty` holds when the field is missing, null or an empty list;
//! - `has_id` holds for the listed point ids;
//! - `must` holds when all hold, `should` when one holds (ignored when
//!   empty), `must_not` when none holds; an empty filter matches every point.

use super::error::FilterError;
use crate::collection::PointId;
use crate::limits::{MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, MAX_FILTER_VALUES};

/// A value a `match` compares with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

/// Bounds of a `range` condition; `None` = unbounded on that side.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl Range {
    /// Whether `v` is within every bound.
    pub fn contains(&self, v: f64) -> bool {
        self.gt.is_none_or(|b| v > b)
            && self.gte.is_none_or(|b| v >= b)
            && self.lt.is_none_or(|b| v < b)
            && self.lte.is_none_or(|b| v <= b)
    }
}

/// A filter: a condition, or a combination of filters.
#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Match {
        key: String,
        value: MatchValue,
    },
    MatchAny {
        key: String,
        values: Vec<MatchValue>,
    },
    Range {
        key: String,
        range: Range,
    },
    IsNull {
        key: String,
    },
    IsEmpty {
        key: String,
    },
    /// Point ids, kept sorted and deduplicated by [`Filter::validate`].
    HasId {
        ids: Vec<PointId>,
    },
    Bool {
        must: Vec<Filter>,
        should: Vec<Filter>,
        must_not: Vec<Filter>,
    },
}

impl Filter {
    /// A filter every point matches.
    pub fn all() -> Filter {
        Filter::Bool {
            must: Vec::new(),
            should: Vec::new(),
            must_not: Vec::new(),
        }
    }

    /// The `must`, `should` and `must_not` lists of a combination, by name
    /// (none for a leaf).
    pub fn lists(&self) -> [(&'static str, &[Filter]); 3] {
        match self {
            Filter::Bool {
                must,
                should,
                must_not,
            } => [("must", must), ("should", should), ("must_not", must_not)],
            _ => [("must", &[]), ("should", &[]), ("must_not", &[])],
        }
    }

    /// The filters a combination holds (none for a leaf).
    pub fn children(&self) -> impl Iterator<Item = &Filter> {
        self.lists().into_iter().flat_map(|(_, l)| l.iter())
    }

    /// The payload field a leaf condition reads (`None` for `has_id` and
    /// combinations).
    pub fn key(&self) -> Option<&str> {
        match self {
            Filter::Match { key, .. }
            | Filter::MatchAny { key, .. }
            | Filter::Range { key, .. }
            | Filter::IsNull { key }
            | Filter::IsEmpty { key } => Some(key),
            Filter::HasId { .. } | Filter::Bool { .. } => None,
        }
    }

    /// Checks the filter against the limits and value rules, naming the path
    /// of the first bad part under `path` (e.g. `filter`); sorts and
    /// deduplicates `has_id` lists.
    pub fn validate(&mut self, path: &str) -> Result<(), FilterError> {
        let mut budget = Budget {
            conditions: 0,
            values: 0,
        };
        self.check(path, 1, &mut budget)
    }

    fn check(&mut self, path: &str, depth: usize, b: &mut Budget) -> Result<(), FilterError> {
        if depth > MAX_FILTER_DEPTH {
            return Err(FilterError::too_large(
                path,
                format!("filters nest at most {MAX_FILTER_DEPTH} deep"),
            ));
        }
        b.conditions += 1;
        if b.conditions > MAX_FILTER_CONDITIONS {
            return Err(FilterError::too_large(
                path,
                format!("a filter holds at most {MAX_FILTER_CONDITIONS} conditions"),
            ));
        }
        let check_key = |key: &str, what: &str| {
            if key.is_empty() {
                Err(FilterError::invalid(
                    format!("{path}.{what}.key"),
                    "must not be empty",
                ))
            } else {
                Ok(())
            }
        };
        match self {
            Filter::Match { key, .. } => check_key(key, "match"),
            Filter::MatchAny { key, values } => {
                check_key(key, "match_any")?;
                b.add_values(values.len(), &format!("{path}.match_any.values"))
            }
            Filter::Range { key, range } => {
                check_key(key, "range")?;
                for (name, bound) in [
                    ("gt", range.gt),
                    ("gte", range.gte),
                    ("lt", range.lt),
                    ("lte", range.lte),
                ] {
                    if let Some(v) = bound.filter(|v| !v.is_finite()) {
                        return Err(FilterError::invalid(
                            format!("{path}.range.{name}"),
                            format!("{v}: bounds must be finite numbers"),
                        ));
                    }
                }
                Ok(())
            }
            Filter::IsNull { key } => check_key(key, "is_null"),
            Filter::IsEmpty { key } => check_key(key, "is_empty"),
            Filter::HasId { ids } => {
                b.add_values(ids.len(), &format!("{path}.has_id.ids"))?;
                ids.sort_unstable();
                ids.dedup();
                Ok(())
            }
            Filter::Bool {
                must,
                should,
                must_not,
            } => {
                for (name, list) in [("must", must), ("should", should), ("must_not", must_not)] {
                    for (i, f) in list.iter_mut().enumerate() {
                        f.check(&format!("{path}.{name}[{i}]"), depth + 1, b)?;
                    }
                }
                Ok(())
            }
        }
    }

    /// Checks each condition on an indexed field against the type the field
    /// is indexed with (`kind_of`), naming the path of a clash under `path`.
    pub fn check_types(
        &self,
        path: &str,
        kind_of: &dyn Fn(&str) -> Option<super::FieldType>,
    ) -> Result<(), FilterError> {
        match self {
            Filter::Bool { .. } => {
                for (name, list) in self.lists() {
                    for (i, f) in list.iter().enumerate() {
                        f.check_types(&format!("{path}.{name}[{i}]"), kind_of)?;
                    }
                }
                Ok(())
            }
            leaf => {
                let Some(kind) = leaf.key().and_then(kind_of) else {
                    return Ok(());
                };
                let what = match leaf {
                    Filter::Match { .. } => "match",
                    Filter::MatchAny { .. } => "match_any",
                    Filter::Range { .. } => "range",
                    _ => return Ok(()),
                };
                kind.check(leaf)
                    .map_err(|m| FilterError::invalid(format!("{path}.{what}"), m))
            }
        }
    }

    /// Every point id a `has_id` condition names.
    pub fn ids(&self) -> Vec<PointId> {
        let mut out = Vec::new();
        self.collect_ids(&mut out);
        out
    }

    fn collect_ids(&self, out: &mut Vec<PointId>) {
        match self {
            Filter::HasId { ids } => out.extend_from_slice(ids),
            f => f.children().for_each(|c| c.collect_ids(out)),
        }
    }
}

struct Budget {
    conditions: usize,
    values: usize,
}

impl Budget {
    fn add_values(&mut self, n: usize, path: &str) -> Result<(), FilterError> {
        self.values += n;
        if self.values > MAX_FILTER_VALUES {
            return Err(FilterError::too_large(
                path,
                format!("a filter lists at most {MAX_FILTER_VALUES} values and ids in all"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(key: &str, gte: f64) -> Filter {
        Filter::Range {
            key: key.into(),
            range: Range {
                gte: Some(gte),
                ..Range::default()
            },
        }
    }

    #[test]
    fn errors_name_the_path() {
        let mut f = Filter::Bool {
            must: vec![range("a", 1.0), range("b", 2.0), range("c", f64::NAN)],
            should: vec![],
            must_not: vec![],
        };
        let e = f.validate("filter").unwrap_err();
        assert_eq!(e.field(), "filter.must[2].range.gte");
        assert!(!e.is_limit());
        let mut f = Filter::Match {
            key: String::new(),
            value: MatchValue::Bool(true),
        };
        assert_eq!(
            f.validate("filter").unwrap_err().field(),
            "filter.match.key"
        );
    }

    #[test]
    fn limits_are_resource_errors() {
        let mut deep = range("a", 0.0);
        for _ in 0..MAX_FILTER_DEPTH {
            deep = Filter::Bool {
                must: vec![deep],
                should: vec![],
                must_not: vec![],
            };
        }
        assert!(deep.validate("filter").unwrap_err().is_limit());
        let mut many = Filter::HasId {
            ids: (0..=MAX_FILTER_VALUES as u64).collect(),
        };
        assert!(many.validate("filter").unwrap_err().is_limit());
        let mut ok = Filter::HasId { ids: vec![3, 1, 3] };
        ok.validate("filter").unwrap();
        assert_eq!(ok, Filter::HasId { ids: vec![1, 3] });
    }
}
