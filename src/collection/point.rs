//! Points (id, vector, payload), payload values, and write validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{CollectionError, Result};

/// A user-facing point id.
pub type PointId = u64;

/// A payload value: null, string, integer, float, boolean, or a list of values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// An explicit null (the field is present, with no value).
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    List(Vec<Value>),
}

/// A point's payload: string keys to values.
pub type Payload = BTreeMap<String, Value>;

/// One point to upsert.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub id: PointId,
    pub vector: Vec<f32>,
    pub payload: Option<Payload>,
}

/// Deepest list nesting accepted in a payload.
const MAX_DEPTH: usize = 8;

fn check_value(v: &Value, field: &str, depth: usize) -> Result<()> {
    match v {
        Value::Float(f) if !f.is_finite() => Err(CollectionError::invalid(
            field,
            "float values must be finite",
        )),
        Value::List(items) => {
            if depth >= MAX_DEPTH {
                return Err(CollectionError::invalid(
                    field,
                    format!("lists nest deeper than {MAX_DEPTH}"),
                ));
            }
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| check_value(item, &format!("{field}[{i}]"), depth + 1))
        }
        _ => Ok(()),
    }
}

/// Encodes a payload (JSON), checking values and the size limit.
pub(crate) fn encode_payload(p: &Payload, field: &str, max_bytes: usize) -> Result<Vec<u8>> {
    for (k, v) in p {
        if k.is_empty() {
            return Err(CollectionError::invalid(
                field,
                "payload keys must not be empty",
            ));
        }
        check_value(v, &format!("{field}.{k}"), 0)?;
    }
    let bytes =
        serde_json::to_vec(p).map_err(|e| CollectionError::invalid(field, e.to_string()))?;
    if bytes.len() > max_bytes {
        return Err(CollectionError::LimitExceeded {
            field: field.to_string(),
            message: format!("payload is {} bytes, the limit is {max_bytes}", bytes.len()),
        });
    }
    Ok(bytes)
}

/// Decodes a payload written by [`encode_payload`].
pub(crate) fn decode_payload(bytes: &[u8]) -> std::result::Result<Payload, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Checks a vector's dimension, values and (for cosine) that its norm is a
/// positive f32; errors name `field`.
pub(crate) fn check_vector(v: &[f32], dim: usize, normalizes: bool, field: &str) -> Result<()> {
    if v.len() != dim {
        return Err(CollectionError::invalid(
            field,
            format!("expected dimension {dim}, got {}", v.len()),
        ));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(CollectionError::invalid(
            field,
            format!("value at index {i} is not finite"),
        ));
    }
    if normalizes {
        // The norm `distance::normalize` divides by: a vector it cannot
        // normalise is the client's to fix, whatever tier would store it.
        let norm = crate::distance::dot(v, v).sqrt();
        if v.iter().all(|&x| x == 0.0) {
            return Err(CollectionError::invalid(
                field,
                "zero vector cannot be normalised for cosine",
            ));
        }
        if !(norm.is_finite() && norm > 0.0) {
            return Err(CollectionError::invalid(
                field,
                format!(
                    "norm {norm} is out of f32 range: values too large (or too small) to normalise for cosine"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip_keeps_types() {
        let mut p = Payload::new();
        p.insert("s".into(), Value::String("x".into()));
        p.insert("i".into(), Value::Int(-3));
        p.insert("f".into(), Value::Float(1.0));
        p.insert("b".into(), Value::Bool(true));
        p.insert(
            "l".into(),
            Value::List(vec![Value::Int(1), Value::String("a".into())]),
        );
        let bytes = encode_payload(&p, "payload", 1 << 10).unwrap();
        assert_eq!(decode_payload(&bytes).unwrap(), p);
    }

    #[test]
    fn a_norm_out_of_f32_range_names_the_field() {
        for v in [vec![3.4e38f32; 4], vec![1e-30f32; 4]] {
            let e = check_vector(&v, 4, true, "points[2].vector").unwrap_err();
            assert!(
                matches!(&e, CollectionError::InvalidArgument { field, .. } if field == "points[2].vector"),
                "{e}"
            );
        }
        // Without normalisation (L2, inner product) such values are accepted.
        check_vector(&[3.4e38f32; 4], 4, false, "vector").unwrap();
        check_vector(&[1.0, 0.0, 0.0, 0.0], 4, true, "vector").unwrap();
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let mut p = Payload::new();
        p.insert("f".into(), Value::List(vec![Value::Float(f64::NAN)]));
        let e = encode_payload(&p, "points[2].payload", 1 << 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("points[2].payload.f[0]"), "{e}");
        let mut big = Payload::new();
        big.insert("k".into(), Value::String("x".repeat(100)));
        assert!(matches!(
            encode_payload(&big, "p", 50),
            Err(CollectionError::LimitExceeded { .. })
        ));
        assert!(check_vector(&[0.0, 0.0], 2, true, "v").is_err());
        assert!(check_vector(&[1.0], 2, false, "v")
            .unwrap_err()
            .to_string()
            .contains("expected dimension 2"));
    }
}
