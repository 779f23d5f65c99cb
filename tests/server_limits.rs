//! The server's limits and error codes through the real binary: a vector
//! whose norm is out of f32 range (INVALID_ARGUMENT naming the field), a
//! request or response over `max_message_bytes` (RESOURCE_EXHAUSTED, as
//! the README says), and reflection in both protocol versions from Rust.

use pb::collections_client::CollectionsClient;
use pb::points_client::PointsClient;
use quiver::server::pb;
use tonic::Code;

use super::server::{assert_code, reflected_services, Server};

const DIM: u32 = 4;

fn create(name: &str, metric: pb::Metric) -> pb::CreateCollectionRequest {
    pb::CreateCollectionRequest {
        name: name.into(),
        dimension: DIM,
        metric: metric.into(),
        ..Default::default()
    }
}

fn upsert(collection: &str, vector: Vec<f32>) -> pb::UpsertRequest {
    pb::UpsertRequest {
        collection: collection.into(),
        points: vec![pb::Point {
            id: 1,
            vector,
            payload: Default::default(),
        }],
        ..Default::default()
    }
}

fn search(collection: &str, vector: Vec<f32>) -> pb::SearchRequest {
    pb::SearchRequest {
        collection: collection.into(),
        vector,
        k: 1,
        ef: None,
        nprobe: None,
        with_payload: false,
        with_vector: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_norm_out_of_f32_range_is_invalid_argument_naming_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let ch = server.connect().await;
    let mut cols = CollectionsClient::new(ch.clone());
    let mut pts = PointsClient::new(ch);
    cols.create(create("cos", pb::Metric::Cosine))
        .await
        .unwrap();
    cols.create(create("l2", pb::Metric::L2)).await.unwrap();

    // Every value finite, the squared norm not: cosine cannot normalise it.
    let huge = vec![3.4e38f32; DIM as usize];
    assert_code(
        pts.upsert(upsert("cos", huge.clone())).await,
        Code::InvalidArgument,
        "points[0].vector",
    );
    assert_code(
        pts.search(search("cos", huge.clone())).await,
        Code::InvalidArgument,
        "vector",
    );
    // Values so small their squared norm underflows to zero: the same.
    let tiny = vec![1e-30f32; DIM as usize];
    assert_code(
        pts.upsert(upsert("cos", tiny)).await,
        Code::InvalidArgument,
        "points[0].vector",
    );
    // L2 stores such a vector as it is.
    pts.upsert(upsert("l2", huge)).await.unwrap();
    // Nothing was written to the cosine collection, and it still works.
    let n = pts
        .count(pb::CountRequest {
            collection: "cos".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .count;
    assert_eq!(n, 0);
    pts.upsert(upsert("cos", vec![1.0, 0.0, 0.0, 0.0]))
        .await
        .unwrap();
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_max_message_bytes_are_resource_exhausted() {
    let tmp = tempfile::tempdir().unwrap();
    let max = 64 << 10;
    let mut server = Server::start_with(
        tmp.path(),
        &["--metrics-addr", "off"],
        &[("QUIVER_MAX_MESSAGE_BYTES", &max.to_string())],
    );
    let ch = server.connect().await;
    let mut cols = CollectionsClient::new(ch.clone());
    // The client's own limits are far above the server's.
    let mut pts = PointsClient::new(ch)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    cols.create(pb::CreateCollectionRequest {
        dimension: 1000,
        ..create("big", pb::Metric::L2)
    })
    .await
    .unwrap();
    let batch = |ids: std::ops::Range<u64>| pb::UpsertRequest {
        collection: "big".into(),
        points: ids
            .map(|id| pb::Point {
                id,
                vector: vec![id as f32; 1000],
                payload: Default::default(),
            })
            .collect(),
        ..Default::default()
    };

    // A unary request over the limit (30 x 4 KB): refused before it is read.
    let e = pts.upsert(batch(0..30)).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("max_message_bytes"), "{e:?}");

    // In a stream, the messages before the big one are acknowledged.
    let stream = tokio_stream::iter(vec![batch(0..5), batch(5..10), batch(10..40)]);
    let mut acks = pts.upsert_stream(stream).await.unwrap().into_inner();
    for _ in 0..2 {
        assert_eq!(acks.message().await.unwrap().unwrap().upserted, 5);
    }
    let e = acks.message().await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");

    // A response over the limit: 30 points of 4 KB each (with vectors).
    for first in (10..30).step_by(5) {
        pts.upsert(batch(first..first + 5)).await.unwrap();
    }
    let get = pb::GetRequest {
        collection: "big".into(),
        ids: (0..30).collect(),
        with_payload: false,
        with_vector: true,
        ..Default::default()
    };
    let e = pts.get(get.clone()).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(e.message().contains("max_message_bytes"), "{e:?}");
    let e = pts
        .scroll(pb::ScrollRequest {
            collection: "big".into(),
            after: None,
            limit: 30,
            with_payload: false,
            with_vector: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // Without vectors it fits.
    let got = pts
        .get(pb::GetRequest {
            with_vector: false,
            ..get
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points.len(), 30);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_answers_v1_and_v1alpha() {
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;

    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    let ch = server.connect().await;
    let v1 = reflected_services(ch.clone(), None).await.unwrap();
    assert!(v1.iter().any(|s| s == "quiver.v1.Points"), "{v1:?}");

    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = ServerReflectionClient::new(ch)
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies
        .message()
        .await
        .unwrap()
        .expect("a reflection reply");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply {reply:?}");
    };
    let v1alpha: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for s in [
        "quiver.v1.Collections",
        "quiver.v1.Points",
        "grpc.health.v1.Health",
    ] {
        assert!(v1alpha.iter().any(|n| n == s), "{s} not in {v1alpha:?}");
    }
    assert!(server.stop().success());
}
