//! `quiver serve` settings from four layers: built-in defaults, a TOML file
//! (`--config` / `QUIVER_CONFIG`), environment variables, command-line flags;
//! a later layer wins field by field. Every value given anywhere is checked,
//! even one a higher layer overrides, and an error names the field and its
//! source (`QUIVER_ADDR: ...`, `quiver.toml: limits.max_batch: ...`). The
//! file rejects unknown keys. An empty environment variable counts as unset.
//! See `deploy/quiver.toml` for every key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::auth::{ApiKey, AuthConfig};
use super::tls::TlsFiles;
use super::{Limits, MetricsListen, ServeOptions};

/// Default metrics address (Prometheus HTTP, path `/metrics`).
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:6335";

/// How log lines are written (to stderr).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Everything `quiver serve` runs with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub options: ServeOptions,
    pub log_format: LogFormat,
}

/// Values given as command-line flags (`None` / `false`: not given).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    pub config: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub addr: Option<String>,
    pub metrics_addr: Option<String>,
    pub log_format: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_anonymous: bool,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("reading config file {} (from {origin}): {source}", path.display())]
    Read {
        path: PathBuf,
        origin: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// Malformed TOML, a value of the wrong type, or an unknown key.
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A value that parsed but is not acceptable; `origin` names field and source.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

type Result<T> = std::result::Result<T, ConfigError>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    data: Option<PathBuf>,
    addr: Option<String>,
    metrics_addr: Option<String>,
    log_format: Option<String>,
    #[serde(default)]
    auth: FileAuth,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuth {
    #[serde(default, deserialize_with = "secret_list")]
    api_keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "secret_list")]
    read_only_keys: Option<Vec<String>>,
    allow_anonymous: Option<bool>,
}

/// A list of strings whose errors never quote a value (they are keys).
fn secret_list<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Vec<String>>, D::Error> {
    struct Secret(String);
    impl<'de> Deserialize<'de> for Secret {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Secret, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Secret;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a string")
                }
                fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Secret, E> {
                    Ok(Secret(v.to_string()))
                }
            }
            d.deserialize_str(V)
        }
    }
    struct List;
    impl<'de> serde::de::Visitor<'de> for List {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of strings")
        }
        fn visit_str<E: serde::de::Error>(self, _: &str) -> std::result::Result<Vec<String>, E> {
            Err(E::custom(
                "expected a list of strings, like [\"key\"], not a single string",
            ))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> std::result::Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some(Secret(k)) = seq.next_element()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    d.deserialize_any(List).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_batch: Option<u64>,
    max_search_batch: Option<u64>,
    max_k: Option<u64>,
    max_dimension: Option<u64>,
    max_message_bytes: Option<u64>,
    max_concurrent_requests: Option<u64>,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    Flag(&'static str),
    Env(&'static str),
    File(PathBuf, &'static str),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(name) => write!(f, "{name}"),
            Origin::Env(name) => write!(f, "{name}"),
            Origin::File(path, key) => write!(f, "{}: {key}", path.display()),
        }
    }
}

fn invalid(origin: &Origin, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        origin: origin.to_string(),
        message: message.into(),
    }
}

/// The file and the environment, for resolving fields one by one.
struct Layers<'a> {
    path: Option<PathBuf>,
    file: File,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Layers<'_> {
    fn env(&self, name: &'static str) -> Option<(String, Origin)> {
        (self.env)(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (v, Origin::Env(name)))
    }

    fn file_origin(&self, key: &'static str) -> Origin {
        Origin::File(self.path.clone().unwrap_or_default(), key)
    }

    /// A text field: every given value parsed, the flag's, else the
    /// environment's, else the file's returned.
    fn text<T>(
        &self,
        flag: Option<(&'static str, &str)>,
        env: &'static str,
        file: Option<(&'static str, &str)>,
        parse: impl Fn(&str) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        let flag = flag.map(|(name, v)| (v.to_string(), Origin::Flag(name)));
        let file = file.map(|(key, v)| (v.to_string(), self.file_origin(key)));
        let mut winner = None;
        for (value, origin) in [flag, self.env(env), file].into_iter().flatten() {
            let parsed = parse(value.trim()).map_err(|m| invalid(&origin, m))?;
            winner.get_or_insert(parsed);
        }
        Ok(winner)
    }

    /// A whole-number field (environment or file), checked by `check`.
    fn number<T>(
        &self,
        env: &'static str,
        key: &'static str,
        file: Option<u64>,
        check: impl Fn(u64) -> std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        let mut winner = None;
        if let Some((v, origin)) = self.env(env) {
            let n = v
                .trim()
                .parse::<u64>()
                .map_err(|_| invalid(&origin, format!("expected a whole number, got {v:?}")))?;
            winner = Some(check(n).map_err(|m| invalid(&origin, m))?);
        }
        if let Some(n) = file {
            let parsed = check(n).map_err(|m| invalid(&self.file_origin(key), m))?;
            winner.get_or_insert(parsed);
        }
        Ok(winner)
    }

    /// A list of API keys: the environment's (comma-separated) else the file's.
    fn keys(
        &self,
        env: &'static str,
        key: &'static str,
        file: Option<&[String]>,
    ) -> Result<Option<Vec<ApiKey>>> {
        let parse = |items: Vec<&str>, origin: &Origin| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, k)| {
                    ApiKey::new(k).map_err(|m| invalid(origin, format!("key {}: {m}", i + 1)))
                })
                .collect::<Result<Vec<_>>>()
        };
        let mut winner = None;
        if let Some((v, origin)) = self.env(env) {
            let items = v.split(',').map(str::trim).filter(|k| !k.is_empty());
            winner = Some(parse(items.collect(), &origin)?);
        }
        if let Some(list) = file {
            let keys = parse(
                list.iter().map(String::as_str).collect(),
                &self.file_origin(key),
            )?;
            winner.get_or_insert(keys);
        }
        Ok(winner)
    }

    /// A boolean: the flag (when set), else the environment's, else the file's.
    fn boolean(&self, flag: bool, env: &'static str, file: Option<bool>) -> Result<Option<bool>> {
        let from_env = match self.env(env) {
            Some((v, origin)) => Some(parse_bool(&v).map_err(|m| invalid(&origin, m))?),
            None => None,
        };
        Ok(flag.then_some(true).or(from_env).or(file))
    }

    /// A path (any value is one): the flag's, else the environment's, else the file's.
    fn path(
        &self,
        flag: &Option<PathBuf>,
        env: &'static str,
        file: &Option<PathBuf>,
    ) -> Option<PathBuf> {
        flag.clone()
            .or_else(|| self.env(env).map(|(v, _)| PathBuf::from(v)))
            .or_else(|| file.clone())
    }
}

fn parse_bool(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

fn parse_addr(v: &str) -> std::result::Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("expected an address like 127.0.0.1:6334, got {v:?}"))
}

fn parse_metrics_addr(v: &str) -> std::result::Result<Option<SocketAddr>, String> {
    if v.eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        parse_addr(v)
            .map(Some)
            .map_err(|e| format!("{e} or \"off\""))
    }
}

fn parse_log_format(v: &str) -> std::result::Result<LogFormat, String> {
    match v.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected \"text\" or \"json\", got {v:?}")),
    }
}

/// A limit in `min..=max`.
fn within(min: u64, max: u64) -> impl Fn(u64) -> std::result::Result<usize, String> {
    move |n| {
        if (min..=max).contains(&n) {
            usize::try_from(n).map_err(|_| format!("{n} is too large for this machine"))
        } else {
            Err(format!("must be in {min}..={max}, got {n}"))
        }
    }
}

impl ServerConfig {
    /// Resolves the configuration from `flags`, the environment (looked up
    /// through `env`) and the config file named by `--config` or
    /// `QUIVER_CONFIG`, over the built-in defaults.
    pub fn resolve(flags: &Flags, env: &dyn Fn(&str) -> Option<String>) -> Result<ServerConfig> {
        let path = match (
            &flags.config,
            env("QUIVER_CONFIG").filter(|v| !v.is_empty()),
        ) {
            (Some(p), _) => Some((p.clone(), "--config")),
            (None, Some(p)) => Some((PathBuf::from(p), "QUIVER_CONFIG")),
            (None, None) => None,
        };
        let file = match &path {
            Some((p, origin)) => read_file(p, origin)?,
            None => File::default(),
        };
        let l = Layers {
            path: path.map(|(p, _)| p),
            file,
            env,
        };
        let f = &l.file;
        let defaults = ServeOptions::default();

        let data = l
            .path(&flags.data, "QUIVER_DATA", &f.data)
            .unwrap_or(defaults.data);
        let addr = l
            .text(
                flags.addr.as_deref().map(|a| ("--addr", a)),
                "QUIVER_ADDR",
                f.addr.as_deref().map(|a| ("addr", a)),
                parse_addr,
            )?
            .unwrap_or(defaults.addr);
        let metrics = match l.text(
            flags.metrics_addr.as_deref().map(|a| ("--metrics-addr", a)),
            "QUIVER_METRICS_ADDR",
            f.metrics_addr.as_deref().map(|a| ("metrics_addr", a)),
            parse_metrics_addr,
        )? {
            None => defaults.metrics,
            Some(None) => MetricsListen::Off,
            Some(Some(a)) => MetricsListen::Required(a),
        };
        let log_format = l
            .text(
                flags.log_format.as_deref().map(|v| ("--log-format", v)),
                "QUIVER_LOG_FORMAT",
                f.log_format.as_deref().map(|v| ("log_format", v)),
                parse_log_format,
            )?
            .unwrap_or_default();

        let auth = AuthConfig {
            api_keys: l
                .keys(
                    "QUIVER_API_KEYS",
                    "auth.api_keys",
                    f.auth.api_keys.as_deref(),
                )?
                .unwrap_or_default(),
            read_only_keys: l
                .keys(
                    "QUIVER_READ_ONLY_KEYS",
                    "auth.read_only_keys",
                    f.auth.read_only_keys.as_deref(),
                )?
                .unwrap_or_default(),
            allow_anonymous: l
                .boolean(
                    flags.allow_anonymous,
                    "QUIVER_ALLOW_ANONYMOUS",
                    f.auth.allow_anonymous,
                )?
                .unwrap_or(false),
        };
        if auth
            .read_only_keys
            .iter()
            .any(|k| auth.api_keys.contains(k))
        {
            return Err(ConfigError::Invalid {
                origin: "auth".into(),
                message: "a key is in both api_keys and read_only_keys".into(),
            });
        }

        let cert = l.path(&flags.tls_cert, "QUIVER_TLS_CERT", &f.tls.cert);
        let key = l.path(&flags.tls_key, "QUIVER_TLS_KEY", &f.tls.key);
        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    origin: "tls".into(),
                    message: "cert and key must be given together (QUIVER_TLS_CERT and QUIVER_TLS_KEY, or [tls] cert and key)".into(),
                })
            }
        };

        let d = Limits::default();
        let fl = &f.limits;
        let limits = Limits {
            max_batch: l
                .number(
                    "QUIVER_MAX_BATCH",
                    "limits.max_batch",
                    fl.max_batch,
                    within(1, 1 << 24),
                )?
                .unwrap_or(d.max_batch),
            max_search_batch: l
                .number(
                    "QUIVER_MAX_SEARCH_BATCH",
                    "limits.max_search_batch",
                    fl.max_search_batch,
                    within(1, 1 << 24),
                )?
                .unwrap_or(d.max_search_batch),
            max_k: l
                .number(
                    "QUIVER_MAX_K",
                    "limits.max_k",
                    fl.max_k,
                    within(1, crate::collection::MAX_K as u64),
                )?
                .unwrap_or(d.max_k),
            max_dimension: l
                .number(
                    "QUIVER_MAX_DIMENSION",
                    "limits.max_dimension",
                    fl.max_dimension,
                    within(1, 65_535),
                )?
                .unwrap_or(d.max_dimension),
            max_message_bytes: l
                .number(
                    "QUIVER_MAX_MESSAGE_BYTES",
                    "limits.max_message_bytes",
                    fl.max_message_bytes,
                    within(1 << 10, (1 << 31) - 1),
                )?
                .unwrap_or(d.max_message_bytes),
            max_concurrent_requests: l
                .number(
                    "QUIVER_MAX_CONCURRENT_REQUESTS",
                    "limits.max_concurrent_requests",
                    fl.max_concurrent_requests,
                    within(1, 1 << 20),
                )?
                .unwrap_or(d.max_concurrent_requests),
        };

        Ok(ServerConfig {
            options: ServeOptions {
                data,
                addr,
                metrics,
                auth,
                tls,
                limits,
            },
            log_format,
        })
    }
}

fn read_file(path: &Path, origin: &'static str) -> Result<File> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        origin,
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: describe(&text, &e),
    })
}

/// A TOML error as `line L, column C, key K: message`. The offending line
/// itself is not quoted (it may hold an API key); its key and section are.
fn describe(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    let Some(span) = e.span() else {
        return message.to_string();
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    let is_key = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
    };
    let section = before
        .lines()
        .rev()
        .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']'))
        .map(str::trim)
        .find(|k| is_key(k));
    let line = text.lines().nth(line_no - 1).unwrap_or("");
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| is_key(k))
        .map(|k| match section {
            Some(s) => format!(", key {s}.{k}"),
            None => format!(", key {k}"),
        })
        .unwrap_or_default();
    format!("line {line_no}, column {column}{key}: {message}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

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
        let example = include_str!("../../deploy/quiver.toml");
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
}
