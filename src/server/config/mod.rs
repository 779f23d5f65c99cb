//! `quiver serve` settings from four layers: built-in defaults, a TOML file
//! (`--config` / `QUIVER_CONFIG`), environment variables, command-line flags;
//! a later layer wins field by field. Every value given anywhere is checked,
//! even one a higher layer overrides, and an error names the field and its
//! source (`QUIVER_ADDR: ...`, `quiver.toml: limits.max_batch: ...`). The
//! file rejects unknown keys. An empty environment variable counts as unset.
//! See `deploy/quiver.toml` for every key.
//!
//! `file.rs` reads and describes the TOML file, `layers.rs` resolves one
//! field over the layers and parses values; this module puts the fields
//! together.

mod file;
mod layers;

use std::path::PathBuf;

use super::auth::AuthConfig;
use super::tls::TlsFiles;
use super::{Limits, MetricsListen, ServeOptions};
use crate::limits;
use file::File;
use layers::{parse_addr, parse_log_format, parse_metrics_addr, within, Layers};

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
            Some((p, origin)) => file::read_file(p, origin)?,
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
                    within(1, limits::MAX_BATCH as u64),
                )?
                .unwrap_or(d.max_batch),
            max_search_batch: l
                .number(
                    "QUIVER_MAX_SEARCH_BATCH",
                    "limits.max_search_batch",
                    fl.max_search_batch,
                    within(1, limits::MAX_BATCH as u64),
                )?
                .unwrap_or(d.max_search_batch),
            max_k: l
                .number(
                    "QUIVER_MAX_K",
                    "limits.max_k",
                    fl.max_k,
                    within(1, limits::MAX_K as u64),
                )?
                .unwrap_or(d.max_k),
            max_dimension: l
                .number(
                    "QUIVER_MAX_DIMENSION",
                    "limits.max_dimension",
                    fl.max_dimension,
                    within(1, limits::MAX_DIMENSION as u64),
                )?
                .unwrap_or(d.max_dimension),
            max_message_bytes: l
                .number(
                    "QUIVER_MAX_MESSAGE_BYTES",
                    "limits.max_message_bytes",
                    fl.max_message_bytes,
                    within(
                        limits::MIN_MESSAGE_BYTES as u64,
                        limits::MAX_MESSAGE_BYTES as u64,
                    ),
                )?
                .unwrap_or(d.max_message_bytes),
            max_concurrent_requests: l
                .number(
                    "QUIVER_MAX_CONCURRENT_REQUESTS",
                    "limits.max_concurrent_requests",
                    fl.max_concurrent_requests,
                    within(1, limits::MAX_CONCURRENT_REQUESTS as u64),
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
                cluster: None,
            },
            log_format,
        })
    }
}

#[cfg(test)]
mod tests;
