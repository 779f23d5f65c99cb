//! Tests of the layered server configuration.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::server::auth::ApiKey;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k| map.get(k).cloned()
}

fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("quiver.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn with_file(path: &Path) -> Flags {
    Flags {
        config: Some(path.to_path_buf()),
        ..Flags::default()
    }
}

fn error(flags: &Flags, vars: &[(&str, &str)]) -> String {
    ServerConfig::resolve(flags, &env(vars))
        .unwrap_err()
        .to_string()
}

#[test]
fn no_arguments_means_the_defaults() {
    let c = ServerConfig::resolve(&Flags::default(), &env(&[])).unwrap();
    assert_eq!(c.options.data, PathBuf::from("./quiver-data"));
    assert_eq!(c.options.addr.to_string(), "127.0.0.1:6334");
    assert_eq!(
        c.options.metrics,
        MetricsListen::BestEffort(DEFAULT_METRICS_ADDR.parse().unwrap())
    );
    assert_eq!(c.log_format, LogFormat::Text);
    assert!(!c.options.auth.enabled() && !c.options.auth.allow_anonymous);
    assert_eq!(c.options.tls, None);
    assert_eq!(c.options.limits, Limits::default());
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let (_d, path) = file(
        r#"
        data = "/from/file"
        addr = "127.0.0.1:1001"
        metrics_addr = "127.0.0.1:2001"
        log_format = "json"
        [limits]
        max_batch = 11
        max_k = 12
        [auth]
        api_keys = ["file-key"]
        allow_anonymous = true
        "#,
    );
    let vars = [
        ("QUIVER_ADDR", "127.0.0.1:1002"),
        ("QUIVER_METRICS_ADDR", "off"),
        ("QUIVER_MAX_K", "22"),
        ("QUIVER_API_KEYS", "env-a, env-b,"),
        ("QUIVER_ALLOW_ANONYMOUS", "no"),
        ("QUIVER_DATA", ""),
    ];
    let flags = Flags {
        addr: Some("127.0.0.1:1003".into()),
        log_format: Some("text".into()),
        ..with_file(&path)
    };
    let c = ServerConfig::resolve(&flags, &env(&vars)).unwrap();
    let o = &c.options;
    assert_eq!(o.addr.port(), 1003, "flag wins");
    assert_eq!(c.log_format, LogFormat::Text, "flag wins");
    assert_eq!(o.metrics, MetricsListen::Off, "env wins");
    assert_eq!(o.limits.max_k, 22, "env wins");
    assert_eq!(o.limits.max_batch, 11, "file wins");
    assert_eq!(o.data, PathBuf::from("/from/file"), "empty env is unset");
    assert_eq!(
        o.auth.api_keys,
        [ApiKey::new("env-a").unwrap(), ApiKey::new("env-b").unwrap()]
    );
    assert!(!o.auth.allow_anonymous, "env wins");
    assert_eq!(
        o.limits.max_search_batch,
        Limits::default().max_search_batch
    );

    // Without the flag the environment wins; without both, the file.
    let c = ServerConfig::resolve(&with_file(&path), &env(&vars)).unwrap();
    assert_eq!(c.options.addr.port(), 1002);
    let c = ServerConfig::resolve(&with_file(&path), &env(&[])).unwrap();
    assert_eq!(c.options.addr.port(), 1001);
    assert_eq!(
        c.options.metrics,
        MetricsListen::Required("127.0.0.1:2001".parse().unwrap())
    );
    assert_eq!(c.log_format, LogFormat::Json);
    assert!(c.options.auth.allow_anonymous);
    // QUIVER_CONFIG names the file when --config does not.
    let p = path.display().to_string();
    let c = ServerConfig::resolve(&Flags::default(), &env(&[("QUIVER_CONFIG", &p)])).unwrap();
    assert_eq!(c.options.limits.max_batch, 11);
}

#[test]
fn errors_name_the_field_and_the_source() {
    let (_d, path) = file("addr = \"127.0.0.1:1\"\n[limits]\nmax_batch = 0\n");
    let e = error(&with_file(&path), &[]);
    assert!(
        e.contains(&format!("{}: limits.max_batch", path.display())) && e.contains("got 0"),
        "{e}"
    );
    let (_d, path) = file("addr = \"nope\"\n");
    let e = error(&with_file(&path), &[("QUIVER_ADDR", "127.0.0.1:5")]);
    assert!(
        e.contains(": addr: expected an address"),
        "checked though overridden: {e}"
    );
    let e = error(&Flags::default(), &[("QUIVER_MAX_BATCH", "ten")]);
    assert!(
        e.starts_with("QUIVER_MAX_BATCH: expected a whole number"),
        "{e}"
    );
    let e = error(
        &Flags {
            addr: Some("localhost".into()),
            ..Flags::default()
        },
        &[],
    );
    assert!(e.starts_with("--addr: "), "{e}");
    let e = error(&Flags::default(), &[("QUIVER_LOG_FORMAT", "xml")]);
    assert!(
        e.starts_with("QUIVER_LOG_FORMAT: ") && e.contains("xml"),
        "{e}"
    );
    let e = error(&Flags::default(), &[("QUIVER_ALLOW_ANONYMOUS", "maybe")]);
    assert!(e.starts_with("QUIVER_ALLOW_ANONYMOUS: "), "{e}");
    let e = error(&Flags::default(), &[("QUIVER_METRICS_ADDR", "9090")]);
    assert!(
        e.starts_with("QUIVER_METRICS_ADDR: ") && e.contains("off"),
        "{e}"
    );
    let e = error(&Flags::default(), &[("QUIVER_TLS_CERT", "/c.pem")]);
    assert!(e.starts_with("tls: cert and key"), "{e}");
    let e = error(
        &Flags::default(),
        &[("QUIVER_READ_ONLY_KEYS", "ok,bad key")],
    );
    assert!(e.starts_with("QUIVER_READ_ONLY_KEYS: key 2"), "{e}");
    assert!(!e.contains("bad key"), "keys are never printed: {e}");
    let e = error(
        &Flags::default(),
        &[
            ("QUIVER_API_KEYS", "same"),
            ("QUIVER_READ_ONLY_KEYS", "same"),
        ],
    );
    assert!(e.contains("both") && !e.contains("same"), "{e}");
    let e = error(
        &Flags {
            config: Some("/no/such/quiver.toml".into()),
            ..Flags::default()
        },
        &[],
    );
    assert!(
        e.contains("/no/such/quiver.toml") && e.contains("--config"),
        "{e}"
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_errors_naming_the_key() {
    for (text, needle) in [
        ("adress = \"127.0.0.1:1\"\n", "adress"),
        ("[limits]\nmax_batchs = 3\n", "max_batchs"),
        ("[auth]\napi_key = [\"k\"]\n", "api_key"),
        ("[tls]\ncertificate = \"c\"\n", "certificate"),
        ("[metrics]\naddr = \"x\"\n", "metrics"),
        ("[limits]\nmax_batch = \"many\"\n", "max_batch"),
        ("[limits]\nmax_batch = -1\n", "limits.max_batch"),
        ("x = 1\n[auth]\napi_keys = [\"a\"]\n", "x"),
    ] {
        let (_d, path) = file(text);
        let e = error(&with_file(&path), &[]);
        assert!(
            e.contains(needle) && e.contains(&path.display().to_string()),
            "{text:?}: {e}"
        );
    }
}

/// `deploy/quiver.toml` is valid as shipped, and with every `# key = value`
/// line uncommented it is still valid and states the real defaults.
#[test]
fn the_example_file_documents_real_keys_and_defaults() {
    let example = include_str!("../../../deploy/quiver.toml");
    let (_d, path) = file(example);
    let c = ServerConfig::resolve(&with_file(&path), &env(&[])).unwrap();
    assert_eq!(c.options.limits, Limits::default());
    let mut set = 0;
    let uncommented: String = example
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if rest.split_once(" = ").is_some_and(|(k, _)| {
                    k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }) =>
            {
                set += 1;
                format!("{rest}\n")
            }
            _ => format!("{l}\n"),
        })
        .collect();
    assert_eq!(set, 15, "{uncommented}");
    let (_d, path) = file(&uncommented);
    let c = ServerConfig::resolve(&with_file(&path), &env(&[])).unwrap();
    let o = &c.options;
    let defaults = ServeOptions::default();
    assert_eq!(o.data, defaults.data);
    assert_eq!(o.addr, defaults.addr);
    assert_eq!(
        o.metrics,
        MetricsListen::Required(DEFAULT_METRICS_ADDR.parse().unwrap())
    );
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(o.limits, Limits::default());
    assert_eq!(o.auth.api_keys.len(), 1);
    assert!(o.auth.read_only_keys.is_empty() && !o.auth.allow_anonymous);
    assert!(o.tls.is_some());
}

#[test]
fn file_errors_never_quote_a_key() {
    for text in [
        "[auth]\napi_keys = \"sekrit-1\"\n",
        "[auth]\nread_only_keys = [\"sekrit-1\", 5]\n",
        "[auth]\napi_keys = [\"sekrit-1\" \"b\"]\n",
        "[auth]\napi_keys = [\"sekrit-1\n",
        "[auth]\napi_keys = [\n  \"sekrit-1\",\n  \"bad key\",\n]\n",
    ] {
        let (_d, path) = file(text);
        let e = error(&with_file(&path), &[]);
        assert!(
            !e.contains("sekrit") && !e.contains("bad key"),
            "{text:?}: {e}"
        );
        assert!(e.contains("auth"), "{e}");
    }
    let (_d, path) = file("[auth]\napi_keys = \"sekrit-1\"\n");
    let e = error(&with_file(&path), &[]);
    assert!(
        e.contains("auth.api_keys") && e.contains("list of strings"),
        "{e}"
    );
}

#[test]
fn tls_and_every_limit_are_read() {
    let (_d, path) = file(
        r#"
        [tls]
        cert = "/etc/quiver/cert.pem"
        key = "/etc/quiver/key.pem"
        [limits]
        max_batch = 1
        max_search_batch = 2
        max_k = 3
        max_dimension = 4
        max_message_bytes = 5000
        max_concurrent_requests = 6
        "#,
    );
    let c = ServerConfig::resolve(
        &with_file(&path),
        &env(&[
            ("QUIVER_TLS_KEY", "/run/key.pem"),
            ("QUIVER_READ_ONLY_KEYS", "r"),
        ]),
    )
    .unwrap();
    let o = c.options;
    assert_eq!(
        o.tls,
        Some(TlsFiles {
            cert: "/etc/quiver/cert.pem".into(),
            key: "/run/key.pem".into()
        })
    );
    assert_eq!(
        o.limits,
        Limits {
            max_batch: 1,
            max_search_batch: 2,
            max_k: 3,
            max_dimension: 4,
            max_message_bytes: 5000,
            max_concurrent_requests: 6,
        }
    );
    assert!(o.auth.enabled());
}
