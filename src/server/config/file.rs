//! The TOML config file: its shape (unknown keys rejected), reading it, and
//! error messages that name the line and key but never quote a value.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) data: Option<PathBuf>,
    pub(super) addr: Option<String>,
    pub(super) metrics_addr: Option<String>,
    pub(super) log_format: Option<String>,
    #[serde(default)]
    pub(super) auth: FileAuth,
    #[serde(default)]
    pub(super) tls: FileTls,
    #[serde(default)]
    pub(super) limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAuth {
    #[serde(default, deserialize_with = "secret_list")]
    pub(super) api_keys: Option<Vec<String>>,
    #[serde(default, deserialize_with = "secret_list")]
    pub(super) read_only_keys: Option<Vec<String>>,
    pub(super) allow_anonymous: Option<bool>,
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
pub(super) struct FileTls {
    pub(super) cert: Option<PathBuf>,
    pub(super) key: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileLimits {
    pub(super) max_batch: Option<u64>,
    pub(super) max_search_batch: Option<u64>,
    pub(super) max_k: Option<u64>,
    pub(super) max_dimension: Option<u64>,
    pub(super) max_message_bytes: Option<u64>,
    pub(super) max_concurrent_requests: Option<u64>,
}

pub(super) fn read_file(path: &Path, origin: &'static str) -> Result<File> {
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
