//! Cluster mode across real hosts: `tests/cluster/run.py` (Python, the
//! repository's generated stubs) builds network namespaces joined by a
//! bridge, starts a 3-member etcd (Debian's etcd-server) and quiver nodes
//! of the built binary with `--cluster`, each in its own namespace, and
//! runs the scenarios of issue 15: the harness self-test (etcd alone), the
//! chaos test (SIGKILL a leader and a follower, partition a node, kill an
//! etcd member, restart everything, under majority writes and filtered
//! searches; then every acknowledged write exact, no deleted id back,
//! replicas converged), the bad-input cases, and rebalancing (a fourth
//! node joins and takes replicas, then one of the first three leaves and
//! its replicas are re-created elsewhere).
//!
//! Needs root (namespaces), `ip`, etcd and grpcio/grpcio-tools: without
//! them the test prints a note and returns, except under CI (`.ci/run`
//! installs them), where that is a failure. A binary without `--cluster`
//! runs the self-test only (the scenarios need the cluster code).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{python_has, quiver_bin};

/// A missing prerequisite: a failure under CI, a note (and `false`) otherwise.
fn have(ok: bool, what: &str) -> bool {
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI: {what}; .ci/run must provide it"
        );
        eprintln!("skipping the cluster tests: {what}");
    }
    ok
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn works(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether `quiver serve` takes `--cluster` (the cluster code is built in).
fn has_cluster_mode(bin: &Path) -> bool {
    let out = Command::new(bin)
        .args(["serve", "--help"])
        .output()
        .expect("run quiver serve --help");
    String::from_utf8_lossy(&out.stdout).contains("--cluster")
}

#[test]
fn cluster_scenarios_on_namespaced_hosts() {
    if !have(is_root(), "not root (network namespaces need it)")
        || !have(works("ip", &["-V"]), "`ip` (iproute2) is missing")
        || !have(
            Path::new("/usr/bin/etcd").exists() || works("etcd", &["--version"]),
            "etcd is missing (apt-get install etcd-server)",
        )
        || !python_has("grpc, grpc_tools")
    {
        return;
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let bin = quiver_bin();
    let mut scenarios = vec!["selftest"];
    if has_cluster_mode(&bin) {
        scenarios.extend(["chaos", "bad_input", "rebalance"]);
    } else {
        eprintln!("note: `quiver serve` has no --cluster: only the harness self-test runs");
    }
    let stubs = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(root.join("tests/cluster/run.py"))
        .arg("--bin")
        .arg(&bin)
        .arg("--stubs")
        .arg(stubs.path())
        .args(&scenarios)
        // The debug binary under a parallel test run: allow for slow starts.
        .env("QUIVER_TEST_SLOW", "1")
        .current_dir(&root)
        .output()
        .expect("run python3 tests/cluster/run.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary (failover times) goes to the test's output either way.
    eprintln!("{text}");
    assert!(
        out.status.success(),
        "tests/cluster/run.py {scenarios:?} exited with {}:\n{text}",
        out.status
    );
    for s in &scenarios {
        assert!(
            text.contains(&format!("--- {s}: passed")),
            "scenario {s} did not pass:\n{text}"
        );
    }
}
