//! Conversions between the protobuf messages (`pb`) and the collection
//! types. Incoming messages are checked here (`TryFrom`, errors are
//! INVALID_ARGUMENT statuses naming the request field); what only the
//! collection can check (dimension, NaN, k) is checked by the collection,
//! whose errors name the same fields.

use std::collections::BTreeMap;

use tonic::Status;

use super::filter::{field_type_from_pb, filter_from_pb};
use super::pb;
use super::status::invalid;
use crate::collection::{
    Collection, CollectionConfig, CollectionError, FsyncPolicy, Payload, Point, Record,
    SearchRequest, SsdConfig, Stats, Value,
};
use crate::distance::Metric;
use crate::filter::plan::PlanChoice;
use crate::hnsw::HnswParams;
use crate::spann::SpannParams;

/// A validated `CreateCollectionRequest`.
#[derive(Debug)]
pub struct NewCollection {
    pub name: String,
    pub config: CollectionConfig,
}

fn to_usize(field: &str, v: u64) -> Result<usize, Status> {
    usize::try_from(v).map_err(|_| invalid(field, format!("{v} is too large")))
}

impl TryFrom<pb::CreateCollectionRequest> for NewCollection {
    type Error = Status;

    fn try_from(r: pb::CreateCollectionRequest) -> Result<Self, Status> {
        let metric = match pb::Metric::try_from(r.metric) {
            Ok(pb::Metric::L2) => Metric::L2,
            Ok(pb::Metric::InnerProduct) => Metric::InnerProduct,
            Ok(pb::Metric::Cosine) => Metric::Cosine,
            Ok(pb::Metric::Unspecified) => return Err(invalid("metric", "required")),
            Err(_) => return Err(invalid("metric", format!("unknown value {}", r.metric))),
        };
        let fsync = match pb::FsyncMode::try_from(r.fsync) {
            Ok(pb::FsyncMode::Unspecified | pb::FsyncMode::Always) => FsyncPolicy::Always,
            Ok(pb::FsyncMode::Never) => FsyncPolicy::Never,
            Ok(pb::FsyncMode::Interval) => match r.fsync_interval_ms {
                Some(ms) if ms > 0 => FsyncPolicy::IntervalMs(ms),
                _ => {
                    return Err(invalid(
                        "fsync_interval_ms",
                        "a positive interval is required with FSYNC_MODE_INTERVAL",
                    ))
                }
            },
            Err(_) => return Err(invalid("fsync", format!("unknown value {}", r.fsync))),
        };
        let defaults = CollectionConfig::default();
        let config = CollectionConfig {
            dim: r.dimension as usize,
            metric,
            hnsw: HnswParams {
                m: r.hnsw_m.map_or(defaults.hnsw.m, |m| m as usize),
                ef_construction: r
                    .hnsw_ef_construction
                    .map_or(defaults.hnsw.ef_construction, |e| e as usize),
                ..defaults.hnsw
            },
            hnsw_encoding: match r.hnsw_encoding.as_deref() {
                None => defaults.hnsw_encoding,
                Some(e) => e.parse().map_err(|err: crate::hnsw::ParseEncodingError| {
                    invalid("hnsw_encoding", err.to_string())
                })?,
            },
            rerank: r.rerank.map_or(defaults.rerank, |n| n as usize),
            rerank_vectors: defaults.rerank_vectors,
            ef_search: r.ef_search.map_or(defaults.ef_search, |e| e as usize),
            memory_tier_points: match r.memory_tier_points {
                Some(n) => to_usize("memory_tier_points", n)?,
                None => defaults.memory_tier_points,
            },
            index_buffer_points: match r.index_buffer_points {
                Some(n) => to_usize("index_buffer_points", n)?,
                None => defaults.index_buffer_points,
            },
            fsync,
            max_payload_bytes: match r.max_payload_bytes {
                Some(n) => to_usize("max_payload_bytes", n)?,
                None => defaults.max_payload_bytes,
            },
            ssd: if r.ssd_tier.unwrap_or(true) {
                let d = SsdConfig::default();
                let encoding = match r.ssd_encoding.as_deref() {
                    None => d.spann.encoding,
                    Some(e) => e.parse().map_err(|err: crate::hnsw::ParseEncodingError| {
                        invalid("ssd_encoding", err.to_string())
                    })?,
                };
                Some(SsdConfig {
                    spann: SpannParams {
                        encoding,
                        head_ratio: r.ssd_head_ratio.unwrap_or(d.spann.head_ratio),
                        ..d.spann
                    },
                    nprobe: r.ssd_nprobe.map_or(d.nprobe, |n| n as usize),
                })
            } else {
                None
            },
            payload_indexes: r
                .field_indexes
                .into_iter()
                .enumerate()
                .map(|(i, f)| {
                    let kind = field_type_from_pb(f.r#type, &format!("field_indexes[{i}].type"))?;
                    if f.key.is_empty() {
                        return Err(invalid(
                            &format!("field_indexes[{i}].key"),
                            "must not be empty",
                        ));
                    }
                    Ok((f.key, kind))
                })
                .collect::<Result<_, Status>>()?,
        };
        config.validate().map_err(|e| match e {
            CollectionError::InvalidArgument { field, message } => {
                invalid(request_field(&field), message)
            }
            other => Status::from(other),
        })?;
        Ok(NewCollection {
            name: r.name,
            config,
        })
    }
}

/// The `CreateCollectionRequest` field that sets the settings field
/// `field` (as [`CollectionConfig::validate`] names it).
fn request_field(field: &str) -> &str {
    match field {
        "dim" => "dimension",
        "hnsw.m" => "hnsw_m",
        "hnsw.ef_construction" => "hnsw_ef_construction",
        "ssd.nprobe" => "ssd_nprobe",
        "ssd.spann.encoding" => "ssd_encoding",
        "ssd.spann.head_ratio" => "ssd_head_ratio",
        "payload_indexes" => "field_indexes",
        other => other,
    }
}

/// A payload value; `field` names it in errors.
pub fn value_from_pb(v: pb::Value, field: &str) -> Result<Value, Status> {
    use pb::value::Kind;
    Ok(match v.kind {
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::IntValue(i)) => Value::Int(i),
        Some(Kind::DoubleValue(f)) => Value::Float(f),
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::ListValue(l)) => Value::List(
            l.values
                .into_iter()
                .enumerate()
                .map(|(i, v)| value_from_pb(v, &format!("{field}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Some(Kind::NullValue(_)) => Value::Null,
        None => return Err(invalid(field, "value has no kind set")),
    })
}

/// A payload map (empty = no payload); `field` names it in errors.
pub fn payload_from_pb(
    p: BTreeMap<String, pb::Value>,
    field: &str,
) -> Result<Option<Payload>, Status> {
    if p.is_empty() {
        return Ok(None);
    }
    p.into_iter()
        .map(|(k, v)| {
            let v = value_from_pb(v, &format!("{field}.{k}"))?;
            Ok((k, v))
        })
        .collect::<Result<Payload, Status>>()
        .map(Some)
}

/// A point to write; `field` names it in errors (`points[3]`).
pub fn point_from_pb(p: pb::Point, field: &str) -> Result<Point, Status> {
    Ok(Point {
        id: p.id,
        vector: p.vector,
        payload: payload_from_pb(p.payload, &format!("{field}.payload"))?,
    })
}

/// Points of an upsert batch.
pub fn points_from_pb(points: Vec<pb::Point>) -> Result<Vec<Point>, Status> {
    points
        .into_iter()
        .enumerate()
        .map(|(i, p)| point_from_pb(p, &format!("points[{i}]")))
        .collect()
}

/// One query of a `SearchBatch`; errors name fields under `queries[i]` (`prefix`).
pub fn search_query_from_pb(q: pb::SearchQuery, prefix: &str) -> Result<SearchRequest, Status> {
    Ok(SearchRequest {
        vector: q.vector,
        k: q.k as usize,
        ef: q.ef.map(|e| e as usize),
        nprobe: q.nprobe.map(|n| n as usize),
        with_payload: q.with_payload,
        with_vector: q.with_vector,
        filter: filter_from_pb(q.filter, &format!("{prefix}filter"))?,
        plan: plan_choice(q.exact),
        explain: q.explain,
        rerank: q.rerank.map(|n| n as usize),
    })
}

/// A `Search` request.
pub fn search_from_pb(q: pb::SearchRequest) -> Result<SearchRequest, Status> {
    Ok(SearchRequest {
        vector: q.vector,
        k: q.k as usize,
        ef: q.ef.map(|e| e as usize),
        nprobe: q.nprobe.map(|n| n as usize),
        with_payload: q.with_payload,
        with_vector: q.with_vector,
        filter: filter_from_pb(q.filter, "filter")?,
        plan: plan_choice(q.exact),
        explain: q.explain,
        rerank: q.rerank.map(|n| n as usize),
    })
}

fn plan_choice(exact: bool) -> PlanChoice {
    if exact {
        PlanChoice::Exact
    } else {
        PlanChoice::Auto
    }
}

impl From<Value> for pb::Value {
    fn from(v: Value) -> Self {
        use pb::value::Kind;
        let kind = match v {
            Value::Null => Kind::NullValue(pb::NullValue::NullValue as i32),
            Value::String(s) => Kind::StringValue(s),
            Value::Int(i) => Kind::IntValue(i),
            Value::Float(f) => Kind::DoubleValue(f),
            Value::Bool(b) => Kind::BoolValue(b),
            Value::List(l) => Kind::ListValue(pb::ListValue {
                values: l.into_iter().map(pb::Value::from).collect(),
            }),
        };
        pb::Value { kind: Some(kind) }
    }
}

fn payload_to_pb(p: Option<Payload>) -> BTreeMap<String, pb::Value> {
    p.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect()
}

impl From<Record> for pb::ScoredPoint {
    fn from(r: Record) -> Self {
        pb::ScoredPoint {
            id: r.id,
            distance: r.distance,
            payload: payload_to_pb(r.payload),
            vector: r.vector.unwrap_or_default(),
        }
    }
}

impl From<Record> for pb::RetrievedPoint {
    fn from(r: Record) -> Self {
        pb::RetrievedPoint {
            id: r.id,
            vector: r.vector.unwrap_or_default(),
            payload: payload_to_pb(r.payload),
        }
    }
}

impl From<Metric> for pb::Metric {
    fn from(m: Metric) -> Self {
        match m {
            Metric::L2 => pb::Metric::L2,
            Metric::InnerProduct => pb::Metric::InnerProduct,
            Metric::Cosine => pb::Metric::Cosine,
        }
    }
}

impl From<&CollectionConfig> for pb::CollectionSettings {
    fn from(c: &CollectionConfig) -> Self {
        let metric = pb::Metric::from(c.metric);
        let (fsync, fsync_interval_ms) = match c.fsync {
            FsyncPolicy::Always => (pb::FsyncMode::Always, 0),
            FsyncPolicy::IntervalMs(ms) => (pb::FsyncMode::Interval, ms),
            FsyncPolicy::Never => (pb::FsyncMode::Never, 0),
        };
        pb::CollectionSettings {
            dimension: c.dim as u32,
            metric: metric.into(),
            hnsw_m: c.hnsw.m as u32,
            hnsw_ef_construction: c.hnsw.ef_construction as u32,
            ef_search: c.ef_search as u32,
            memory_tier_points: c.memory_tier_points as u64,
            fsync: fsync.into(),
            fsync_interval_ms,
            max_payload_bytes: c.max_payload_bytes as u64,
            ssd_tier: c.ssd.is_some(),
            ssd_nprobe: c.ssd.map_or(0, |s| s.nprobe as u32),
            ssd_encoding: c
                .ssd
                .map_or(String::new(), |s| s.spann.encoding.to_string()),
            ssd_head_ratio: c.ssd.map_or(0.0, |s| s.spann.head_ratio),
            hnsw_encoding: c.hnsw_encoding.to_string(),
            rerank: c.rerank as u32,
            index_buffer_points: c.index_buffer_points as u64,
        }
    }
}

impl From<Stats> for pb::CollectionStats {
    fn from(s: Stats) -> Self {
        pb::CollectionStats {
            points: s.points as u64,
            segments: s.segments as u64,
            active_points: s.active_points as u64,
            index_memory_bytes: s.index_memory_bytes as u64,
            checkpoint_lsn: s.checkpoint_lsn,
            last_lsn: s.last_lsn,
            ssd_points: s.ssd_points as u64,
            ssd_bytes: s.ssd_bytes,
            merges: s.merges,
            last_merge_seconds: s.last_merge_seconds,
            unindexed_points: s.unindexed_points as u64,
        }
    }
}

/// Name, settings and live statistics of a collection.
pub fn collection_info(name: &str, c: &Collection) -> pb::CollectionInfo {
    pb::CollectionInfo {
        cluster: None,
        name: name.to_string(),
        settings: Some(c.config().into()),
        stats: Some(c.stats().into()),
        field_indexes: c
            .field_indexes()
            .into_iter()
            .map(|f| pb::FieldIndexInfo {
                key: f.key,
                r#type: pb::FieldType::from(f.kind) as i32,
                memory_bytes: f.memory_bytes,
                values: f.values,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(dimension: u32, metric: pb::Metric) -> pb::CreateCollectionRequest {
        pb::CreateCollectionRequest {
            name: "c".into(),
            dimension,
            metric: metric.into(),
            ..Default::default()
        }
    }

    #[test]
    fn create_request_errors_name_the_field() {
        let e = NewCollection::try_from(create(0, pb::Metric::L2)).unwrap_err();
        assert!(e.message().starts_with("dimension:"), "{}", e.message());
        let e = NewCollection::try_from(create(4, pb::Metric::Unspecified)).unwrap_err();
        assert!(e.message().starts_with("metric:"), "{}", e.message());
        let mut r = create(4, pb::Metric::L2);
        r.hnsw_m = Some(1);
        let e = NewCollection::try_from(r).unwrap_err();
        assert!(e.message().starts_with("hnsw_m:"), "{}", e.message());
        let mut r = create(4, pb::Metric::L2);
        r.hnsw_ef_construction = Some(0);
        let e = NewCollection::try_from(r).unwrap_err();
        assert!(
            e.message().starts_with("hnsw_ef_construction:"),
            "{}",
            e.message()
        );
        let mut r = create(4, pb::Metric::L2);
        r.ssd_head_ratio = Some(2.0);
        let e = NewCollection::try_from(r).unwrap_err();
        assert!(
            e.message().starts_with("ssd_head_ratio:"),
            "{}",
            e.message()
        );
        let mut r = create(4, pb::Metric::L2);
        r.ssd_nprobe = Some(0);
        let e = NewCollection::try_from(r).unwrap_err();
        assert!(e.message().starts_with("ssd_nprobe:"), "{}", e.message());
        let mut r = create(4, pb::Metric::L2);
        r.ssd_encoding = Some("f32".into());
        let e = NewCollection::try_from(r).unwrap_err();
        assert!(e.message().starts_with("ssd_encoding:"), "{}", e.message());
        let e = NewCollection::try_from(create(70_000, pb::Metric::L2)).unwrap_err();
        assert!(
            e.message().starts_with("dimension: must be in 1..=65535"),
            "{}",
            e.message()
        );
        let mut r = create(4, pb::Metric::L2);
        r.fsync = pb::FsyncMode::Interval.into();
        let e = NewCollection::try_from(r).unwrap_err();
        assert!(
            e.message().starts_with("fsync_interval_ms:"),
            "{}",
            e.message()
        );
    }

    #[test]
    fn values_round_trip() {
        let v = Value::List(vec![
            Value::Int(-3),
            Value::Float(0.5),
            Value::String("x".into()),
            Value::Bool(true),
        ]);
        assert_eq!(value_from_pb(pb::Value::from(v.clone()), "p").unwrap(), v);
        let e = value_from_pb(pb::Value { kind: None }, "points[2].payload.tag").unwrap_err();
        assert!(
            e.message().starts_with("points[2].payload.tag:"),
            "{}",
            e.message()
        );
    }
}
