//! Checks of `deploy/` without a Docker engine (deploy/test-container.sh
//! builds and runs the image, under `.ci/run`): every YAML
//! file parses (PyYAML's `safe_load_all`; skipped with a note when PyYAML is
//! missing, except under CI), the manifests agree with each other and with
//! the Dockerfile (ports, uid, names, secret keys, probes), and the image's
//! HEALTHCHECK command, run as written, passes against the real server.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::common::{python_has, quiver_bin};
use crate::server::Server;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

/// The Dockerfile with `\`-continued lines joined.
fn dockerfile() -> String {
    read("deploy/Dockerfile").replace("\\\n", " ")
}

/// The JSON-array command of the Dockerfile's HEALTHCHECK.
fn healthcheck_cmd() -> Vec<String> {
    let df = dockerfile();
    let line = df
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK instruction");
    let json = &line[line.find("CMD ").expect("HEALTHCHECK ... CMD [...]") + 4..];
    serde_json::from_str(json.trim()).expect("HEALTHCHECK CMD in exec (JSON) form")
}

/// Every document of each YAML file, converted to JSON by PyYAML.
fn load_yaml(files: &[&str]) -> Vec<Vec<Value>> {
    let script = "import json, sys, yaml\n\
        docs = []\n\
        for p in sys.argv[1:]:\n\
        \x20   with open(p) as f:\n\
        \x20       docs.append([d for d in yaml.safe_load_all(f) if d is not None])\n\
        print(json.dumps(docs))";
    let out = Command::new("python3")
        .args(["-c", script])
        .args(files.iter().map(|f| root().join(f)))
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "YAML does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const K8S: [&str; 4] = [
    "deploy/k8s/kustomization.yaml",
    "deploy/k8s/secret.yaml",
    "deploy/k8s/service.yaml",
    "deploy/k8s/statefulset.yaml",
];

#[test]
fn dockerfile_is_multi_stage_non_root_with_a_healthcheck() {
    let df = dockerfile();
    // One runtime stage, reached two ways: on the host's binary
    // (`runtime-prebuilt`, for machines without a registry) or on one
    // compiled in the `builder` stage (`runtime`, the default target).
    let stages: Vec<&str> = df.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        stages,
        [
            "FROM ${BASE_IMAGE} AS runtime-base",
            "FROM runtime-base AS runtime-prebuilt",
            "FROM rust:${RUST_VERSION}-slim-bookworm AS builder",
            "FROM runtime-base AS runtime",
        ]
    );
    assert!(df.contains("ARG BASE_IMAGE=debian:bookworm-slim"));
    assert!(df.contains("COPY target/release/quiver /usr/local/bin/quiver"));
    assert!(df.contains("COPY --from=builder /out/quiver /usr/local/bin/quiver"));
    assert!(df.contains("cargo build --release --locked --bin quiver"));
    for needle in [
        "QUIVER_DATA=/data",
        "QUIVER_ADDR=0.0.0.0:6334",
        "QUIVER_METRICS_ADDR=0.0.0.0:6335",
        "VOLUME [\"/data\"]",
        "EXPOSE 6334 6335",
        "USER 10001:10001",
        "ENTRYPOINT [\"quiver\"]",
        "CMD [\"serve\"]",
    ] {
        assert!(df.contains(needle), "Dockerfile lacks {needle:?}");
    }
    assert_eq!(&healthcheck_cmd()[..2], ["quiver", "health"]);
    let ignore = read(".dockerignore");
    // The host-built binary is the one file of target/ in the context.
    assert!(ignore.lines().any(|l| l == "!target/release/quiver"));
    for needle in [
        "target/",
        "quiver-data/",
        ".git",
        "examples/python/generated/",
    ] {
        assert!(
            ignore.lines().any(|l| l == needle),
            ".dockerignore lacks {needle}"
        );
    }
    // Paths cargo needs to build the binary must stay in the context.
    for kept in ["benches/", "tests/", "proto/", "storage/"] {
        assert!(
            !ignore.lines().any(|l| l.starts_with(kept)),
            ".dockerignore must keep {kept}"
        );
    }
}

/// The image's HEALTHCHECK, as written, with the image's wildcard
/// QUIVER_ADDR: passes while the server runs, fails once it is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_healthcheck_command_probes_the_server() {
    let cmd = healthcheck_cmd();
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(tmp.path());
    server.connect().await;
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let probe = move || {
        Command::new(quiver_bin())
            .args(&cmd[1..])
            .env("QUIVER_ADDR", format!("0.0.0.0:{port}"))
            .env_remove("QUIVER_API_KEY")
            .output()
            .unwrap()
    };
    let p = probe.clone();
    let o = tokio::task::spawn_blocking(p).await.unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(server.stop().success());
    let o = tokio::task::spawn_blocking(probe).await.unwrap();
    assert!(!o.status.success());
}

#[test]
fn compose_file_parses_and_matches_the_image() {
    if !python_has("yaml") {
        return;
    }
    let docs = load_yaml(&["deploy/docker-compose.yml"]);
    let compose = &docs[0][0];
    let svc = &compose["services"]["quiver"];
    assert_eq!(svc["build"]["context"], "..");
    let dockerfile = svc["build"]["dockerfile"].as_str().unwrap();
    assert!(root().join(dockerfile).exists(), "{dockerfile}");
    assert!(svc["environment"]["QUIVER_API_KEYS"]
        .as_str()
        .unwrap()
        .starts_with("${QUIVER_API_KEYS:?"));
    let ports: Vec<&str> = svc["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(ports.iter().any(|p| p.ends_with(":6334")), "{ports:?}");
    assert!(ports.iter().any(|p| p.ends_with(":6335")), "{ports:?}");
    assert_eq!(svc["volumes"][0], "quiver-data:/data");
    assert!(compose["volumes"]
        .as_object()
        .unwrap()
        .contains_key("quiver-data"));
    // The same probe as the image's HEALTHCHECK.
    let test: Vec<&str> = svc["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(test[0], "CMD");
    assert_eq!(test[1..], healthcheck_cmd());
    assert!(svc["image"].as_str().unwrap().contains("quiver:latest"));
    assert!(svc["stop_grace_period"].as_str().is_some());
}

/// The objects of `docs` of the given kind.
fn of_kind<'a>(docs: &'a [Vec<Value>], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .flatten()
        .filter(|d| d["kind"] == kind)
        .collect()
}

#[test]
fn kubernetes_manifests_parse_and_agree() {
    if !python_has("yaml") {
        return;
    }
    let docs = load_yaml(&K8S);
    // kustomization lists exactly the other files.
    let listed: Vec<&str> = docs[0][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    let files: Vec<&str> = K8S[1..]
        .iter()
        .map(|f| Path::new(f).file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(listed, files);

    let sts = of_kind(&docs, "StatefulSet");
    assert_eq!(sts.len(), 1);
    let sts = sts[0];
    let pod = &sts["spec"]["template"];
    let labels = &pod["metadata"]["labels"];
    assert_eq!(&sts["spec"]["selector"]["matchLabels"], labels);
    let spec = &pod["spec"];
    assert!(spec["terminationGracePeriodSeconds"].as_u64().unwrap() >= 30);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert!(dockerfile().contains(&format!(
        "USER {}:{}",
        spec["securityContext"]["runAsUser"], spec["securityContext"]["runAsGroup"]
    )));
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["requests"]["cpu"].is_string());
    let port_names: Vec<(&str, u64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(port_names, [("grpc", 6334), ("metrics", 6335)]);
    for probe in ["startupProbe", "readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["grpc"]["port"], 6334, "{probe}");
    }
    // The data volume comes from the claim template.
    let claim = &sts["spec"]["volumeClaimTemplates"][0];
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mountPath"] == "/data")
        .expect("a /data mount");
    assert_eq!(mount["name"], claim["metadata"]["name"]);
    assert!(claim["spec"]["resources"]["requests"]["storage"].is_string());

    // Every secret reference resolves; every key of the Secret is used.
    let secrets = of_kind(&docs, "Secret");
    let mut used = Vec::new();
    for e in c["env"].as_array().unwrap() {
        if let Some(r) = e["valueFrom"].get("secretKeyRef") {
            let s = secrets
                .iter()
                .find(|s| s["metadata"]["name"] == r["name"])
                .unwrap_or_else(|| panic!("no Secret {}", r["name"]));
            let key = r["key"].as_str().unwrap();
            assert!(s["stringData"].get(key).is_some(), "Secret lacks {key}");
            used.push(e["name"].as_str().unwrap());
        }
    }
    assert_eq!(used, ["QUIVER_API_KEYS", "QUIVER_READ_ONLY_KEYS"]);

    // Services select the pods and target named container ports; the
    // StatefulSet is governed by the headless one.
    let services = of_kind(&docs, "Service");
    assert_eq!(services.len(), 2);
    for s in &services {
        assert_eq!(&s["spec"]["selector"], labels);
        for p in s["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_str().unwrap();
            let (_, n) = port_names.iter().find(|(n, _)| *n == target).unwrap();
            assert_eq!(&p["port"], n);
        }
    }
    let headless = services
        .iter()
        .find(|s| s["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    assert_eq!(headless["metadata"]["name"], sts["spec"]["serviceName"]);
}

/// The `command`/`args` list of a compose service or container as strings.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The value of `--flag=value` in `args`.
fn flag<'a>(args: &'a [String], name: &str) -> &'a str {
    let prefix = format!("{name}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name}= in {args:?}"))
}

#[test]
fn etcd_dockerfile_builds_on_debian_packages() {
    let df = read("deploy/etcd.Dockerfile").replace("\\\n", " ");
    for needle in [
        "ARG BASE_IMAGE=",
        "apt-get install",
        "etcd-server",
        "etcd-client",
        "USER 10002:10002",
        "EXPOSE 2379 2380",
        "ENTRYPOINT [\"/usr/bin/etcd\"]",
        "VOLUME [\"/var/lib/etcd\"]",
    ] {
        assert!(df.contains(needle), "etcd.Dockerfile lacks {needle:?}");
    }
}

/// The compose `cluster` profile: three etcd members that agree on the
/// initial cluster, three quiver nodes pointing at exactly them, with
/// distinct node ids, advertised names, ports and volumes; the single
/// `quiver` service stays outside the profile.
#[test]
fn compose_cluster_profile_is_consistent() {
    if !python_has("yaml") {
        return;
    }
    let docs = load_yaml(&["deploy/docker-compose.yml"]);
    let compose = &docs[0][0];
    let services = compose["services"].as_object().unwrap();
    let volumes = compose["volumes"].as_object().unwrap();
    assert!(services["quiver"].get("profiles").is_none());
    let in_profile = |name: &str| {
        services[name]["profiles"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p == "cluster"))
    };
    let etcd: Vec<&String> = services.keys().filter(|k| k.starts_with("etcd")).collect();
    assert_eq!(etcd, ["etcd1", "etcd2", "etcd3"]);
    let expected_initial = etcd
        .iter()
        .map(|n| format!("{n}=http://{n}:2380"))
        .collect::<Vec<_>>()
        .join(",");
    for name in &etcd {
        let svc = &services[name.as_str()];
        assert!(in_profile(name), "{name} not in the cluster profile");
        let args = strings(&svc["command"]);
        assert_eq!(flag(&args, "--name"), name.as_str());
        assert_eq!(
            flag(&args, "--advertise-client-urls"),
            format!("http://{name}:2379")
        );
        assert_eq!(
            flag(&args, "--initial-advertise-peer-urls"),
            format!("http://{name}:2380")
        );
        assert_eq!(flag(&args, "--initial-cluster"), expected_initial);
        assert_eq!(flag(&args, "--initial-cluster-state"), "new");
        let vol = svc["volumes"][0].as_str().unwrap();
        let (vname, mount) = vol.split_once(':').unwrap();
        assert_eq!(mount, "/var/lib/etcd");
        assert!(volumes.contains_key(vname), "volume {vname} not declared");
        let build = &svc["build"];
        let file = Path::new("deploy")
            .join(build["context"].as_str().unwrap())
            .join(build["dockerfile"].as_str().unwrap());
        assert!(root().join(&file).exists(), "{}", file.display());
    }
    let expected_cluster = format!(
        "etcd://{}",
        etcd.iter()
            .map(|n| format!("{n}:2379"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let nodes: Vec<&String> = services
        .keys()
        .filter(|k| k.starts_with("quiver") && *k != "quiver")
        .collect();
    assert_eq!(nodes, ["quiver1", "quiver2", "quiver3"]);
    let (mut ports, mut vols) = (Vec::new(), Vec::new());
    for name in &nodes {
        let svc = &services[name.as_str()];
        assert!(in_profile(name), "{name} not in the cluster profile");
        assert_eq!(
            svc["environment"]["QUIVER_CLUSTER"],
            expected_cluster.as_str()
        );
        assert!(svc["environment"]["QUIVER_API_KEYS"]
            .as_str()
            .unwrap()
            .starts_with("${QUIVER_API_KEYS:?"));
        let args = strings(&svc["command"]);
        let after = |f: &str| {
            let i = args
                .iter()
                .position(|a| a == f)
                .unwrap_or_else(|| panic!("{name}: no {f}"));
            args[i + 1].clone()
        };
        assert_eq!(args[0], "serve");
        assert_eq!(after("--node-id"), name.as_str());
        assert_eq!(after("--advertise"), format!("{name}:6334"));
        let deps = strings(&svc["depends_on"]);
        assert!(
            etcd.iter().all(|e| deps.contains(e)),
            "{name} depends on {deps:?}"
        );
        let test = strings(&svc["healthcheck"]["test"]);
        assert_eq!(test[1..], healthcheck_cmd());
        let port = svc["ports"][0].as_str().unwrap().to_string();
        assert!(
            port.starts_with("127.0.0.1:") && port.ends_with(":6334"),
            "{port}"
        );
        ports.push(port);
        let vol = svc["volumes"][0].as_str().unwrap().to_string();
        let vname = vol.split_once(':').unwrap().0;
        assert!(volumes.contains_key(vname), "volume {vname} not declared");
        vols.push(vol);
    }
    for list in [&ports, &vols] {
        let mut d = list.clone();
        d.sort();
        d.dedup();
        assert_eq!(d.len(), list.len(), "not distinct: {list:?}");
    }
}

const K8S_CLUSTER: [&str; 5] = [
    "deploy/k8s/cluster/kustomization.yaml",
    "deploy/k8s/cluster/etcd.yaml",
    "deploy/k8s/cluster/service.yaml",
    "deploy/k8s/cluster/statefulset.yaml",
    "deploy/k8s/secret.yaml",
];

/// The env value of `name` (plain `value`) in a container, if any.
fn env_of<'a>(c: &'a Value, name: &str) -> Option<&'a Value> {
    c["env"].as_array()?.iter().find(|e| e["name"] == name)
}

/// Whether every label of `selector` is in `labels` with the same value.
fn selects(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("a label selector");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_name_from_field_ref(c: &Value) {
    let e = env_of(c, "POD_NAME").expect("POD_NAME env");
    assert_eq!(e["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name");
    let e = env_of(c, "POD_NAMESPACE").expect("POD_NAMESPACE env");
    assert_eq!(
        e["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
}

/// deploy/k8s/cluster: the etcd StatefulSet forms one 3-member cluster
/// under its headless Service, and the quiver StatefulSet points
/// `--cluster` at a Service that selects those etcd pods, names each node
/// by its pod and advertises its stable DNS name.
#[test]
fn kubernetes_cluster_manifests_parse_and_agree() {
    if !python_has("yaml") {
        return;
    }
    let docs = load_yaml(&K8S_CLUSTER);
    let listed = strings(&docs[0][0]["resources"]);
    assert_eq!(listed, ["etcd.yaml", "service.yaml", "statefulset.yaml"]);
    let services = of_kind(&docs, "Service");
    let sts = of_kind(&docs, "StatefulSet");
    assert_eq!(sts.len(), 2);
    let by_name = |n: &str| *sts.iter().find(|s| s["metadata"]["name"] == n).unwrap();
    let service = |n: &str| {
        *services
            .iter()
            .find(|s| s["metadata"]["name"] == n)
            .unwrap_or_else(|| panic!("no Service {n}"))
    };

    // etcd: 3 members started together, named by their pods, agreeing on
    // the initial cluster under the headless Service.
    let etcd = by_name("etcd");
    assert_eq!(etcd["spec"]["replicas"], 3);
    assert_eq!(etcd["spec"]["podManagementPolicy"], "Parallel");
    let headless = service(etcd["spec"]["serviceName"].as_str().unwrap());
    assert_eq!(headless["spec"]["clusterIP"], "None");
    assert_eq!(headless["spec"]["publishNotReadyAddresses"], true);
    let etcd_labels = &etcd["spec"]["selector"]["matchLabels"];
    assert!(selects(
        etcd_labels,
        &etcd["spec"]["template"]["metadata"]["labels"]
    ));
    let ec = &etcd["spec"]["template"]["spec"]["containers"][0];
    pod_name_from_field_ref(ec);
    let args = strings(&ec["args"]);
    assert_eq!(flag(&args, "--name"), "$(POD_NAME)");
    let hl = headless["metadata"]["name"].as_str().unwrap();
    let members: Vec<String> = (0..3)
        .map(|i| format!("etcd-{i}=http://etcd-{i}.{hl}.$(POD_NAMESPACE).svc:2380"))
        .collect();
    assert_eq!(flag(&args, "--initial-cluster"), members.join(","));
    assert_eq!(
        flag(&args, "--initial-advertise-peer-urls"),
        format!("http://$(POD_NAME).{hl}.$(POD_NAMESPACE).svc:2380")
    );
    let etcd_uid = etcd["spec"]["template"]["spec"]["securityContext"]["runAsUser"].clone();
    assert!(read("deploy/etcd.Dockerfile").contains(&format!("USER {etcd_uid}:{etcd_uid}")));
    assert_eq!(
        ec["volumeMounts"][0]["name"],
        etcd["spec"]["volumeClaimTemplates"][0]["metadata"]["name"]
    );

    // quiver: --cluster names a Service that selects the etcd pods on 2379.
    let q = by_name("quiver-cluster");
    assert!(q["spec"]["replicas"].as_u64().unwrap() >= 3);
    let qc = &q["spec"]["template"]["spec"]["containers"][0];
    pod_name_from_field_ref(qc);
    let args = strings(&qc["args"]);
    let after = |f: &str| {
        let i = args
            .iter()
            .position(|a| a == f)
            .unwrap_or_else(|| panic!("no {f} in {args:?}"));
        args[i + 1].as_str()
    };
    assert_eq!(args[0], "serve");
    let cluster = after("--cluster");
    let endpoint = cluster
        .strip_prefix("etcd://")
        .expect("--cluster etcd://...");
    let (svc_name, port) = endpoint.split_once(':').unwrap();
    assert_eq!(port, "2379");
    let etcd_svc = service(svc_name);
    assert_eq!(&etcd_svc["spec"]["selector"], etcd_labels);
    assert!(etcd_svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["port"] == 2379));
    assert_eq!(after("--node-id"), "$(POD_NAME)");
    let qhl = q["spec"]["serviceName"].as_str().unwrap();
    assert_eq!(
        after("--advertise"),
        format!("$(POD_NAME).{qhl}.$(POD_NAMESPACE).svc:6334")
    );
    let qheadless = service(qhl);
    assert_eq!(qheadless["spec"]["clusterIP"], "None");
    let qlabels = &q["spec"]["selector"]["matchLabels"];
    assert!(selects(
        qlabels,
        &q["spec"]["template"]["metadata"]["labels"]
    ));
    for s in &services {
        if s["spec"]["selector"] != *etcd_labels {
            assert_eq!(&s["spec"]["selector"], qlabels, "{}", s["metadata"]["name"]);
        }
    }
    for probe in ["startupProbe", "readinessProbe"] {
        assert_eq!(qc[probe]["grpc"]["port"], 6334, "{probe}");
    }
    // Secret references resolve in deploy/k8s/secret.yaml.
    let secrets = of_kind(&docs, "Secret");
    for e in qc["env"].as_array().unwrap() {
        if let Some(r) = e["valueFrom"].get("secretKeyRef") {
            let s = secrets
                .iter()
                .find(|s| s["metadata"]["name"] == r["name"])
                .unwrap_or_else(|| panic!("no Secret {}", r["name"]));
            assert!(s["stringData"].get(r["key"].as_str().unwrap()).is_some());
        }
    }
}
