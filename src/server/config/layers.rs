//! One field over the layers (flag, environment, file), each given value
//! checked, and the parsers of the text values.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::file::File;
use super::{ConfigError, LogFormat, Result};
use crate::server::auth::ApiKey;

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
pub(super) struct Layers<'a> {
    pub(super) path: Option<PathBuf>,
    pub(super) file: File,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
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
    pub(super) fn text<T>(
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
    pub(super) fn number<T>(
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
    pub(super) fn keys(
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
    pub(super) fn boolean(
        &self,
        flag: bool,
        env: &'static str,
        file: Option<bool>,
    ) -> Result<Option<bool>> {
        let from_env = match self.env(env) {
            Some((v, origin)) => Some(parse_bool(&v).map_err(|m| invalid(&origin, m))?),
            None => None,
        };
        Ok(flag.then_some(true).or(from_env).or(file))
    }

    /// A path (any value is one): the flag's, else the environment's, else the file's.
    pub(super) fn path(
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

pub(super) fn parse_bool(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("expected true or false, got {v:?}")),
    }
}

pub(super) fn parse_addr(v: &str) -> std::result::Result<SocketAddr, String> {
    v.parse()
        .map_err(|_| format!("expected an address like 127.0.0.1:6334, got {v:?}"))
}

pub(super) fn parse_metrics_addr(v: &str) -> std::result::Result<Option<SocketAddr>, String> {
    if v.eq_ignore_ascii_case("off") {
        Ok(None)
    } else {
        parse_addr(v)
            .map(Some)
            .map_err(|e| format!("{e} or \"off\""))
    }
}

pub(super) fn parse_log_format(v: &str) -> std::result::Result<LogFormat, String> {
    match v.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("expected \"text\" or \"json\", got {v:?}")),
    }
}

/// A limit in `min..=max`.
pub(super) fn within(min: u64, max: u64) -> impl Fn(u64) -> std::result::Result<usize, String> {
    move |n| {
        if (min..=max).contains(&n) {
            usize::try_from(n).map_err(|_| format!("{n} is too large for this machine"))
        } else {
            Err(format!("must be in {min}..={max}, got {n}"))
        }
    }
}
