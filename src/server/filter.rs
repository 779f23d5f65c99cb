//! Filters and explains on the wire: `pb::Filter` to [`Filter`] (errors
//! name the path inside the request, e.g. `filter.must[2].range.gte`), and
//! [`Explain`] to `pb::SearchExplain`.

use tonic::Status;

use super::pb;
use super::status::invalid;
use crate::filter::plan::{Explain, TierExplain};
use crate::filter::{FieldType, Filter, FilterError, MatchValue, Range};

/// A request's filter, validated (limits, finite bounds); `None` when unset.
pub fn filter_from_pb(f: Option<pb::Filter>, path: &str) -> Result<Option<Filter>, Status> {
    let Some(f) = f else { return Ok(None) };
    let mut filter = combination(f, path)?;
    filter.validate(path).map_err(filter_status)?;
    Ok(Some(filter))
}

/// The status of a filter error: INVALID_ARGUMENT, or RESOURCE_EXHAUSTED
/// over a limit.
pub fn filter_status(e: FilterError) -> Status {
    match e {
        FilterError::Invalid { field, message } => invalid(&field, message),
        FilterError::TooLarge { field, message } => {
            Status::resource_exhausted(format!("{field}: {message}"))
        }
    }
}

fn combination(f: pb::Filter, path: &str) -> Result<Filter, Status> {
    let list = |cs: Vec<pb::Condition>, name: &str| -> Result<Vec<Filter>, Status> {
        cs.into_iter()
            .enumerate()
            .map(|(i, c)| condition(c, &format!("{path}.{name}[{i}]")))
            .collect()
    };
    Ok(Filter::Bool {
        must: list(f.must, "must")?,
        should: list(f.should, "should")?,
        must_not: list(f.must_not, "must_not")?,
    })
}

fn condition(c: pb::Condition, path: &str) -> Result<Filter, Status> {
    use pb::condition::Condition as C;
    Ok(match c.condition {
        Some(C::Match(m)) => Filter::Match {
            key: m.key,
            value: match_value(m.value, &format!("{path}.match.value"))?,
        },
        Some(C::MatchAny(m)) => Filter::MatchAny {
            key: m.key,
            values: m
                .values
                .into_iter()
                .enumerate()
                .map(|(i, v)| match_value(Some(v), &format!("{path}.match_any.values[{i}]")))
                .collect::<Result<_, _>>()?,
        },
        Some(C::Range(r)) => Filter::Range {
            key: r.key,
            range: Range {
                gt: r.gt,
                gte: r.gte,
                lt: r.lt,
                lte: r.lte,
            },
        },
        Some(C::IsNull(k)) => Filter::IsNull { key: k.key },
        Some(C::IsEmpty(k)) => Filter::IsEmpty { key: k.key },
        Some(C::HasId(h)) => Filter::HasId { ids: h.ids },
        Some(C::Filter(f)) => combination(f, &format!("{path}.filter"))?,
        None => return Err(invalid(path, "condition has nothing set")),
    })
}

fn match_value(v: Option<pb::MatchValue>, path: &str) -> Result<MatchValue, Status> {
    use pb::match_value::Value as V;
    match v.and_then(|v| v.value) {
        Some(V::Keyword(s)) => Ok(MatchValue::Keyword(s)),
        Some(V::Integer(i)) => Ok(MatchValue::Integer(i)),
        Some(V::Boolean(b)) => Ok(MatchValue::Bool(b)),
        None => Err(invalid(path, "a keyword, integer or boolean is required")),
    }
}

/// A field type from the wire; `field` names it in errors.
pub fn field_type_from_pb(t: i32, field: &str) -> Result<FieldType, Status> {
    match pb::FieldType::try_from(t) {
        Ok(pb::FieldType::Keyword) => Ok(FieldType::Keyword),
        Ok(pb::FieldType::Integer) => Ok(FieldType::Integer),
        Ok(pb::FieldType::Float) => Ok(FieldType::Float),
        Ok(pb::FieldType::Bool) => Ok(FieldType::Bool),
        Ok(pb::FieldType::Unspecified) => Err(invalid(
            field,
            "required: FIELD_TYPE_KEYWORD, _INTEGER, _FLOAT or _BOOL",
        )),
        Err(_) => Err(invalid(field, format!("unknown value {t}"))),
    }
}

impl From<FieldType> for pb::FieldType {
    fn from(t: FieldType) -> Self {
        match t {
            FieldType::Keyword => pb::FieldType::Keyword,
            FieldType::Integer => pb::FieldType::Integer,
            FieldType::Float => pb::FieldType::Float,
            FieldType::Bool => pb::FieldType::Bool,
        }
    }
}

impl From<Explain> for pb::SearchExplain {
    fn from(e: Explain) -> Self {
        pb::SearchExplain {
            tiers: e.tiers.into_iter().map(pb::TierExplain::from).collect(),
            matching: e.matching,
            matching_scanned: e.matching_scanned,
        }
    }
}

impl From<TierExplain> for pb::TierExplain {
    fn from(t: TierExplain) -> Self {
        pb::TierExplain {
            tier: t.tier,
            points: t.points,
            matching: t.matching,
            plan: t.plan.map(|p| p.as_str().to_string()).unwrap_or_default(),
            indexed_conditions: t.indexed_conditions,
            payloads_scanned: t.payloads_scanned,
            distances: t.distances,
            visited: t.visited,
            two_hop: t.two_hop,
            postings: t.postings,
            widenings: t.widenings,
            candidates: t.candidates,
        }
    }
}
