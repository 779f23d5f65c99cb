//! Filters written as JSON, for the CLI (`quiver query --filter`) and
//! benchmarks (`quiver bench --filters`). The shape mirrors the gRPC
//! `Filter` message:
//!
//! ```json
//! {"must": [{"match": {"key": "scope", "value": "@types"}},
//!           {"range": {"key": "downloads", "gte": 1000000}}],
//!  "must_not": [{"has_id": {"ids": [7, 9]}}]}
//! ```
//!
//! Leaves: `match` (`key`, `value`: string, integer or bool), `match_any`
//! (`key`, `values`), `range` (`key` and any of `gt`, `gte`, `lt`, `lte`),
//! `is_null` / `is_empty` (`key`), `has_id` (`ids`). An object may instead
//! hold any of `must`, `should`, `must_not` (arrays of filters).

use serde_json::{Map, Value as Json};

use super::error::FilterError;
use super::expr::{Filter, MatchValue, Range};

/// Parses and validates a JSON filter; errors name paths under `path`.
pub fn parse(text: &str, path: &str) -> Result<Filter, FilterError> {
    let json: Json = serde_json::from_str(text)
        .map_err(|e| FilterError::invalid(path, format!("not valid JSON: {e}")))?;
    let mut f = from_json(&json, path)?;
    f.validate(path)?;
    Ok(f)
}

/// Builds a filter from parsed JSON (not yet validated).
pub fn from_json(v: &Json, path: &str) -> Result<Filter, FilterError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FilterError::invalid(path, "a filter is a JSON object"))?;
    let combinators = ["must", "should", "must_not"];
    if obj.keys().any(|k| combinators.contains(&k.as_str())) {
        if let Some(k) = obj.keys().find(|k| !combinators.contains(&k.as_str())) {
            return Err(FilterError::invalid(
                format!("{path}.{k}"),
                "a combination holds only must, should and must_not",
            ));
        }
        let list = |name: &str| -> Result<Vec<Filter>, FilterError> {
            match obj.get(name) {
                None => Ok(Vec::new()),
                Some(Json::Array(items)) => items
                    .iter()
                    .enumerate()
                    .map(|(i, f)| from_json(f, &format!("{path}.{name}[{i}]")))
                    .collect(),
                Some(_) => Err(FilterError::invalid(
                    format!("{path}.{name}"),
                    "must be an array of filters",
                )),
            }
        };
        return Ok(Filter::Bool {
            must: list("must")?,
            should: list("should")?,
            must_not: list("must_not")?,
        });
    }
    if obj.is_empty() {
        return Ok(Filter::all());
    }
    if obj.len() != 1 {
        return Err(FilterError::invalid(
            path,
            "a condition object holds exactly one of match, match_any, range, is_null, is_empty, has_id",
        ));
    }
    let (kind, body) = obj.iter().next().expect("one entry");
    let here = format!("{path}.{kind}");
    let body = body
        .as_object()
        .ok_or_else(|| FilterError::invalid(&here, "must be an object"))?;
    let key = || key_of(body, &here);
    Ok(match kind.as_str() {
        "match" => Filter::Match {
            key: key()?,
            value: match_value(field(body, "value", &here)?, &format!("{here}.value"))?,
        },
        "match_any" => {
            let values = field(body, "values", &here)?.as_array().ok_or_else(|| {
                FilterError::invalid(format!("{here}.values"), "must be an array")
            })?;
            Filter::MatchAny {
                key: key()?,
                values: values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| match_value(v, &format!("{here}.values[{i}]")))
                    .collect::<Result<_, _>>()?,
            }
        }
        "range" => {
            let bound = |name: &str| -> Result<Option<f64>, FilterError> {
                match body.get(name) {
                    None | Some(Json::Null) => Ok(None),
                    Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                        FilterError::invalid(format!("{here}.{name}"), "must be a number")
                    }),
                }
            };
            if let Some(k) = body
                .keys()
                .find(|k| !["key", "gt", "gte", "lt", "lte"].contains(&k.as_str()))
            {
                return Err(FilterError::invalid(
                    format!("{here}.{k}"),
                    "unknown range bound (gt, gte, lt, lte)",
                ));
            }
            Filter::Range {
                key: key()?,
                range: Range {
                    gt: bound("gt")?,
                    gte: bound("gte")?,
                    lt: bound("lt")?,
                    lte: bound("lte")?,
                },
            }
        }
        "is_null" => Filter::IsNull { key: key()? },
        "is_empty" => Filter::IsEmpty { key: key()? },
        "has_id" => {
            let ids = field(body, "ids", &here)?
                .as_array()
                .ok_or_else(|| FilterError::invalid(format!("{here}.ids"), "must be an array"))?;
            Filter::HasId {
                ids: ids
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_u64().ok_or_else(|| {
                            FilterError::invalid(
                                format!("{here}.ids[{i}]"),
                                "must be a non-negative integer",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            }
        }
        other => {
            return Err(FilterError::invalid(
                &here,
                format!("unknown condition {other:?}"),
            ))
        }
    })
}

fn field<'a>(body: &'a Map<String, Json>, name: &str, here: &str) -> Result<&'a Json, FilterError> {
    body.get(name)
        .ok_or_else(|| FilterError::invalid(format!("{here}.{name}"), "missing"))
}

fn key_of(body: &Map<String, Json>, here: &str) -> Result<String, FilterError> {
    field(body, "key", here)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| FilterError::invalid(format!("{here}.key"), "must be a string"))
}

fn match_value(v: &Json, path: &str) -> Result<MatchValue, FilterError> {
    match v {
        Json::String(s) => Ok(MatchValue::Keyword(s.clone())),
        Json::Bool(b) => Ok(MatchValue::Bool(*b)),
        Json::Number(n) => n.as_i64().map(MatchValue::Integer).ok_or_else(|| {
            FilterError::invalid(
                path,
                "match takes a string, an integer or a bool (use range for floats)",
            )
        }),
        _ => Err(FilterError::invalid(
            path,
            "match takes a string, an integer or a bool",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let f = parse(
            r#"{"must": [{"match": {"key": "scope", "value": "@types"}},
                         {"range": {"key": "downloads", "gte": 1000000}}],
                "should": [{"match_any": {"key": "major", "values": [0, 1]}},
                           {"is_null": {"key": "major"}}, {"is_empty": {"key": "t"}}],
                "must_not": [{"has_id": {"ids": [9, 7]}}]}"#,
            "filter",
        )
        .unwrap();
        let Filter::Bool {
            must,
            should,
            must_not,
        } = f
        else {
            panic!("not a combination")
        };
        assert_eq!(must.len(), 2);
        assert_eq!(should.len(), 3);
        assert_eq!(must_not, vec![Filter::HasId { ids: vec![7, 9] }]);
        assert_eq!(parse("{}", "f").unwrap(), Filter::all());
    }

    #[test]
    fn errors_name_the_path() {
        for (text, field) in [
            (
                r#"{"must": [{"match": {"key": "a", "value": 1}}, {"range": {"key": "b", "gte": "x"}}]}"#,
                "filter.must[1].range.gte",
            ),
            (r#"{"must": {"match": {}}}"#, "filter.must"),
            (
                r#"{"should": [{"match": {"key": "a"}}]}"#,
                "filter.should[0].match.value",
            ),
            (
                r#"{"match": {"key": "a", "value": 1.5}}"#,
                "filter.match.value",
            ),
            (r#"{"nope": {"key": "a"}}"#, "filter.nope"),
            (r#"{"has_id": {"ids": [-1]}}"#, "filter.has_id.ids[0]"),
            (r#"[1]"#, "filter"),
        ] {
            assert_eq!(parse(text, "filter").unwrap_err().field(), field, "{text}");
        }
    }
}
