//! The filter semantics on one point: the reference that payload indexes
//! must agree with, and the fallback for fields without an index.

use super::expr::{Filter, MatchValue, Range};
use crate::collection::{Payload, PointId, Value};

/// Whether the point `id` with `payload` matches `f`.
pub fn matches(f: &Filter, id: PointId, payload: Option<&Payload>) -> bool {
    match f {
        Filter::HasId { ids } => ids.binary_search(&id).is_ok(),
        Filter::Bool {
            must,
            should,
            must_not,
        } => {
            must.iter().all(|c| matches(c, id, payload))
                && (should.is_empty() || should.iter().any(|c| matches(c, id, payload)))
                && !must_not.iter().any(|c| matches(c, id, payload))
        }
        leaf => leaf_matches(
            leaf,
            payload.and_then(|p| leaf.key().and_then(|k| p.get(k))),
        ),
    }
}

/// Whether a leaf condition holds for a field whose value is `v` (`None`
/// when the point has no such field). `has_id` and combinations are
/// answered by [`matches`].
pub fn leaf_matches(f: &Filter, v: Option<&Value>) -> bool {
    match f {
        Filter::Match { value, .. } => v.is_some_and(|v| any_scalar(v, &|s| equals(s, value))),
        Filter::MatchAny { values, .. } => {
            v.is_some_and(|v| any_scalar(v, &|s| values.iter().any(|m| equals(s, m))))
        }
        Filter::Range { range, .. } => v.is_some_and(|v| any_scalar(v, &|s| in_range(s, range))),
        Filter::IsNull { .. } => matches!(v, Some(Value::Null)),
        Filter::IsEmpty { .. } => match v {
            None | Some(Value::Null) => true,
            Some(Value::List(l)) => l.is_empty(),
            Some(_) => false,
        },
        Filter::HasId { .. } | Filter::Bool { .. } => false,
    }
}

/// Whether `pred` holds for `v` or, for a list, for one of its scalars at any depth.
fn any_scalar(v: &Value, pred: &dyn Fn(&Value) -> bool) -> bool {
    match v {
        Value::List(items) => items.iter().any(|i| any_scalar(i, pred)),
        scalar => pred(scalar),
    }
}

fn equals(v: &Value, m: &MatchValue) -> bool {
    match (v, m) {
        (Value::String(s), MatchValue::Keyword(k)) => s == k,
        (Value::Int(i), MatchValue::Integer(j)) => i == j,
        (Value::Bool(b), MatchValue::Bool(c)) => b == c,
        _ => false,
    }
}

fn in_range(v: &Value, r: &Range) -> bool {
    match v {
        Value::Int(i) => r.contains(*i as f64),
        Value::Float(f) => r.contains(*f),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(pairs: &[(&str, Value)]) -> Payload {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn lists_match_element_wise_and_nulls_never_match_values() {
        let p = payload(&[
            (
                "tags",
                Value::List(vec![
                    Value::String("a".into()),
                    Value::List(vec![Value::String("b".into())]),
                ]),
            ),
            ("n", Value::Int(5)),
            ("x", Value::Null),
            ("e", Value::List(vec![])),
        ]);
        let m = |key: &str, v: MatchValue| Filter::Match {
            key: key.into(),
            value: v,
        };
        assert!(matches(
            &m("tags", MatchValue::Keyword("a".into())),
            1,
            Some(&p)
        ));
        assert!(matches(
            &m("tags", MatchValue::Keyword("b".into())),
            1,
            Some(&p)
        ));
        assert!(!matches(
            &m("tags", MatchValue::Keyword("c".into())),
            1,
            Some(&p)
        ));
        assert!(!matches(
            &m("n", MatchValue::Keyword("5".into())),
            1,
            Some(&p)
        ));
        assert!(matches(&m("n", MatchValue::Integer(5)), 1, Some(&p)));
        let r = |key: &str, gte: f64| Filter::Range {
            key: key.into(),
            range: Range {
                gte: Some(gte),
                ..Range::default()
            },
        };
        assert!(matches(&r("n", 5.0), 1, Some(&p)));
        assert!(!matches(&r("n", 5.5), 1, Some(&p)));
        assert!(!matches(&r("x", 0.0), 1, Some(&p)));
        let null = |key: &str| Filter::IsNull { key: key.into() };
        let empty = |key: &str| Filter::IsEmpty { key: key.into() };
        assert!(matches(&null("x"), 1, Some(&p)));
        assert!(!matches(&null("missing"), 1, Some(&p)));
        for k in ["x", "e", "missing"] {
            assert!(matches(&empty(k), 1, Some(&p)), "{k}");
        }
        assert!(!matches(&empty("n"), 1, Some(&p)));
        assert!(matches(&empty("n"), 1, None));
        assert!(matches(&Filter::all(), 9, None));
        let not = Filter::Bool {
            must: vec![],
            should: vec![],
            must_not: vec![Filter::HasId { ids: vec![1] }],
        };
        assert!(!matches(&not, 1, Some(&p)));
        assert!(matches(&not, 2, None));
    }
}
