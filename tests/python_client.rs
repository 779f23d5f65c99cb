//! The Python client example (`examples/python/`) against the real server:
//! generates the stubs with grpcio-tools into a temporary directory, runs
//! `quiver_client.py` and checks every step it reports. Skipped with a note
//! when grpcio / grpcio-tools are missing, except under CI. Also the
//! reflection clients of Python (`tests/python/reflection.py`, needs
//! grpcio-reflection).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::python_has;
use crate::server::Server;

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/python")
}

async fn python(script: &Path, args: Vec<String>) -> Output {
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .args(args)
        .env_remove("QUIVER_ADDR")
        .env_remove("QUIVER_API_KEY");
    tokio::task::spawn_blocking(move || cmd.output().expect("run python3"))
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_example_runs_against_the_server() {
    if !python_has("grpc, grpc_tools") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let stubs = tmp.path().join("stubs");
    let o = python(
        &example_dir().join("gen_stubs.py"),
        vec!["--out".into(), stubs.display().to_string()],
    )
    .await;
    assert!(o.status.success(), "gen_stubs.py: {}", text(&o));
    assert!(stubs.join("quiver/v1/quiver_pb2_grpc.py").exists());

    // The key is configured on the server and sent by the client, so the
    // bearer-key path is exercised wherever the server enforces keys.
    let key = "python-example-key";
    let mut server = Server::start_with(
        &tmp.path().join("data"),
        &["--metrics-addr", "off"],
        &[("QUIVER_API_KEYS", key)],
    );
    server.connect().await;
    let client = example_dir().join("quiver_client.py");
    let args = |collection: &str| {
        vec![
            "--addr".to_string(),
            server.addr.clone(),
            "--stubs".into(),
            stubs.display().to_string(),
            "--api-key".into(),
            key.into(),
            "--collection".into(),
            collection.into(),
        ]
    };
    let o = python(&client, args("py_example")).await;
    assert!(o.status.success(), "quiver_client.py: {}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for line in [
        "create: py_example (dimension 8, metric L2)",
        "upsert: 100 points",
        "search: top hit 42 (doc 42)",
        "get: ids [7, 8]",
        "delete: 10 points, 90 left",
        "scroll: 90 points in 4 pages",
        "drop: py_example",
    ] {
        assert!(stdout.contains(line), "missing {line:?}: {}", text(&o));
    }
    assert_eq!(stdout.lines().last(), Some("ok"), "{}", text(&o));

    // A server error surfaces as a gRPC code and exit status 2.
    let o = python(&client, args("bad/name")).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("INVALID_ARGUMENT"),
        "{}",
        text(&o)
    );
    assert!(server.stop().success());
}

/// Python's reflection clients: grpcio-reflection (v1alpha only) lists the
/// services and resolves a method's types; the same request on the v1 path
/// lists them too (`tests/python/reflection.py`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_reflection_clients_speak_v1alpha_and_v1() {
    if !python_has("grpc, grpc_reflection") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    server.connect().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/reflection.py");
    let o = python(&script, vec!["--addr".into(), server.addr.clone()]).await;
    assert!(o.status.success(), "reflection.py: {}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let services = |prefix: &str| -> Vec<String> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line: {}", text(&o)))
            .split(',')
            .map(str::to_string)
            .collect()
    };
    for version in ["v1alpha services: ", "v1 services: "] {
        let listed = services(version);
        for s in [
            "quiver.v1.Collections",
            "quiver.v1.Points",
            "grpc.health.v1.Health",
        ] {
            assert!(
                listed.iter().any(|n| n == s),
                "{version}{s} not in {listed:?}"
            );
        }
    }
    assert!(
        stdout.contains("v1alpha Points.Search input: quiver.v1.SearchRequest"),
        "{}",
        text(&o)
    );
    assert_eq!(stdout.lines().last(), Some("ok"), "{}", text(&o));
    assert!(server.stop().success());
}
