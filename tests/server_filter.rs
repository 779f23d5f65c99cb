//! Filtered search through the real server and the generated client: every
//! filter form, explain, Count / Scroll / Delete by filter, payload indexes
//! (at Create, CreateFieldIndex, DropFieldIndex, Describe), and the error
//! paths (INVALID_ARGUMENT naming the path inside the filter, a type clash
//! with an indexed field, RESOURCE_EXHAUSTED over a limit).

use std::collections::BTreeMap;

use pb::collections_client::CollectionsClient;
use pb::points_client::PointsClient;
use quiver::server::pb;
use tonic::Code;

use super::server::{assert_code, Server};

fn kw(s: &str) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::StringValue(s.into())),
    }
}

fn int(i: i64) -> pb::Value {
    pb::Value {
        kind: Some(pb::value::Kind::IntValue(i)),
    }
}

fn cond(c: pb::condition::Condition) -> pb::Condition {
    pb::Condition { condition: Some(c) }
}

fn match_kw(key: &str, v: &str) -> pb::Condition {
    cond(pb::condition::Condition::Match(pb::FieldMatch {
        key: key.into(),
        value: Some(pb::MatchValue {
            value: Some(pb::match_value::Value::Keyword(v.into())),
        }),
    }))
}

fn range(key: &str, gte: Option<f64>, lt: Option<f64>) -> pb::Condition {
    cond(pb::condition::Condition::Range(pb::FieldRange {
        key: key.into(),
        gte,
        lt,
        ..Default::default()
    }))
}

fn must(cs: Vec<pb::Condition>) -> Option<pb::Filter> {
    Some(pb::Filter {
        must: cs,
        ..Default::default()
    })
}

/// Point i: vector (i, 0), `cat` = "even"/"odd", `n` = i, `tags` = ["t{i%3}"], `gone` null for i % 10 == 0.
fn point(i: u64) -> pb::Point {
    let mut payload = BTreeMap::new();
    payload.insert(
        "cat".into(),
        kw(if i.is_multiple_of(2) { "even" } else { "odd" }),
    );
    payload.insert("n".into(), int(i as i64));
    payload.insert(
        "tags".into(),
        pb::Value {
            kind: Some(pb::value::Kind::ListValue(pb::ListValue {
                values: vec![kw(&format!("t{}", i % 3))],
            })),
        },
    );
    if i.is_multiple_of(10) {
        payload.insert(
            "gone".into(),
            pb::Value {
                kind: Some(pb::value::Kind::NullValue(0)),
            },
        );
    }
    pb::Point {
        id: i,
        vector: vec![i as f32, 0.0],
        payload,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let ch = server.connect().await;
    let mut cols = CollectionsClient::new(ch.clone());
    let mut pts = PointsClient::new(ch);
    cols.create(pb::CreateCollectionRequest {
        name: "f".into(),
        dimension: 2,
        metric: pb::Metric::L2.into(),
        field_indexes: vec![pb::FieldIndex {
            key: "cat".into(),
            r#type: pb::FieldType::Keyword.into(),
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    pts.upsert(pb::UpsertRequest {
        collection: "f".into(),
        points: (0..200).map(point).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    cols.create_field_index(pb::CreateFieldIndexRequest {
        collection: "f".into(),
        field: Some(pb::FieldIndex {
            key: "n".into(),
            r#type: pb::FieldType::Integer.into(),
        }),
    })
    .await
    .unwrap();
    let info = cols
        .describe(pb::DescribeCollectionRequest { name: "f".into() })
        .await
        .unwrap()
        .into_inner()
        .collection
        .unwrap();
    let keys: Vec<&str> = info.field_indexes.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(keys, ["cat", "n"]);
    assert!(info.field_indexes.iter().all(|f| f.memory_bytes > 0));

    // Search: odd points with 50 <= n < 60, nearest to (0, 0): 51, 53, 55.
    let search = |filter: Option<pb::Filter>, k: u32| pb::SearchRequest {
        collection: "f".into(),
        vector: vec![0.0, 0.0],
        k,
        filter,
        explain: true,
        with_payload: true,
        ..Default::default()
    };
    let r = pts
        .search(search(
            must(vec![
                match_kw("cat", "odd"),
                range("n", Some(50.0), Some(60.0)),
            ]),
            3,
        ))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u64> = r.hits.iter().map(|h| h.id).collect();
    assert_eq!(ids, [51, 53, 55]);
    let explain = r.explain.expect("explain");
    assert_eq!(explain.matching, 5);
    assert_eq!(explain.tiers[0].plan, "exact_scan");
    assert_eq!(explain.tiers[0].indexed_conditions, 2);
    // Element-wise match on a list field (no index: payloads evaluated), is_null, has_id, should, must_not.
    let f = pb::Filter {
        must: vec![match_kw("tags", "t1")],
        should: vec![
            cond(pb::condition::Condition::IsNull(pb::FieldKey {
                key: "gone".into(),
            })),
            cond(pb::condition::Condition::HasId(pb::HasId {
                ids: vec![1, 4, 7],
            })),
        ],
        must_not: vec![cond(pb::condition::Condition::Filter(pb::Filter {
            must: vec![range("n", None, Some(5.0))],
            ..Default::default()
        }))],
    };
    // t1: i % 3 == 1; gone: i % 10 == 0, so i % 30 == 10 (7 points); or ids 1, 4, 7; minus n < 5: 8 points.
    let r = pts
        .search(search(Some(f.clone()), 4))
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u64> = r.hits.iter().map(|h| h.id).collect();
    assert_eq!(ids, [7, 10, 40, 70]);
    assert!(r.explain.unwrap().tiers[0].payloads_scanned > 0);
    let count = |filter: Option<pb::Filter>| pb::CountRequest {
        collection: "f".into(),
        filter,
        ..Default::default()
    };
    assert_eq!(
        pts.count(count(Some(f.clone())))
            .await
            .unwrap()
            .into_inner()
            .count,
        8
    );
    assert_eq!(
        pts.count(count(must(vec![match_kw("cat", "even")])))
            .await
            .unwrap()
            .into_inner()
            .count,
        100
    );
    assert_eq!(
        pts.count(count(must(vec![match_kw("nope", "x")])))
            .await
            .unwrap()
            .into_inner()
            .count,
        0
    );
    let page = pts
        .scroll(pb::ScrollRequest {
            collection: "f".into(),
            limit: 3,
            after: Some(7),
            filter: Some(f.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u64> = page.points.iter().map(|p| p.id).collect();
    assert_eq!(ids, [10, 40, 70]);
    assert_eq!(page.next, Some(70));
    // SearchBatch with a filter per query, exact.
    let b = pts
        .search_batch(pb::SearchBatchRequest {
            collection: "f".into(),
            queries: vec![pb::SearchQuery {
                vector: vec![100.2, 0.0],
                k: 2,
                filter: must(vec![match_kw("cat", "odd")]),
                exact: true,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<u64> = b.results[0].hits.iter().map(|h| h.id).collect();
    assert_eq!(ids, [101, 99]);

    // Errors name the path inside the filter.
    assert_code(
        pts.search(search(
            must(vec![match_kw("a", "b"), range("n", Some(f64::NAN), None)]),
            3,
        ))
        .await,
        Code::InvalidArgument,
        "filter.must[1].range.gte",
    );
    assert_code(
        pts.search(search(must(vec![range("cat", Some(1.0), None)]), 3))
            .await,
        Code::InvalidArgument,
        "filter.must[0].range",
    );
    assert_code(
        pts.search(search(must(vec![pb::Condition { condition: None }]), 3))
            .await,
        Code::InvalidArgument,
        "filter.must[0]",
    );
    let mut deep = pb::Filter::default();
    for _ in 0..20 {
        deep = pb::Filter {
            must: vec![cond(pb::condition::Condition::Filter(deep))],
            ..Default::default()
        };
    }
    assert_code(
        pts.count(count(Some(deep))).await,
        Code::ResourceExhausted,
        "filter.must[0]",
    );
    assert_code(
        pts.search_batch(pb::SearchBatchRequest {
            collection: "f".into(),
            queries: vec![pb::SearchQuery {
                vector: vec![0.0, 0.0],
                k: 1,
                filter: must(vec![range("cat", Some(1.0), None)]),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "queries[0].filter.must[0].range",
    );
    assert_code(
        cols.create_field_index(pb::CreateFieldIndexRequest {
            collection: "f".into(),
            field: Some(pb::FieldIndex {
                key: "cat".into(),
                r#type: pb::FieldType::Integer.into(),
            }),
        })
        .await,
        Code::InvalidArgument,
        "field.type",
    );

    // Delete by filter, then the index is dropped and filters still work.
    let d = pts
        .delete(pb::DeleteRequest {
            collection: "f".into(),
            ids: vec![0],
            filter: must(vec![range("n", Some(190.0), None)]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.deleted, 11);
    cols.drop_field_index(pb::DropFieldIndexRequest {
        collection: "f".into(),
        key: "cat".into(),
    })
    .await
    .unwrap();
    assert_code(
        cols.drop_field_index(pb::DropFieldIndexRequest {
            collection: "f".into(),
            key: "cat".into(),
        })
        .await,
        Code::NotFound,
        "key",
    );
    assert_eq!(
        pts.count(count(must(vec![match_kw("cat", "even")])))
            .await
            .unwrap()
            .into_inner()
            .count,
        94
    );
}
