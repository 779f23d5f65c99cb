//! The data directory shared by the registry and offline builds: where
//! collections live (`DATA/collections/<name>/`), the names of the hidden
//! directories of offline builds and interrupted drops, collection names
//! and the errors of managing them.

use std::path::{Path, PathBuf};

use crate::collection::CollectionError;

/// Sub-directory of the data directory that holds the collections.
pub const COLLECTIONS_DIR: &str = "collections";
pub use crate::limits::MAX_NAME_LEN;
/// Name prefix of a dropped collection's directory until it is removed.
pub(crate) const DROPPED_PREFIX: &str = ".dropped-";

/// What can go wrong managing collections by name.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// A collection name is not 1..=64 characters of `[A-Za-z0-9_-]`.
    #[error("{field}: invalid collection name {name:?}: {reason}")]
    InvalidName {
        /// The request field that carried the name.
        field: &'static str,
        name: String,
        reason: &'static str,
    },
    /// No collection has this name.
    #[error("collection {0:?} not found")]
    UnknownCollection(String),
    /// A collection with this name exists already.
    #[error("collection {0:?} already exists")]
    AlreadyExists(String),
    /// Opening, creating or closing the collection failed.
    #[error("collection {name:?}: {source}")]
    Collection {
        name: String,
        #[source]
        source: CollectionError,
    },
    /// File-system work on the data directory failed.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of the registry.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Checks a collection name; `field` names the request field in the error.
pub fn validate_name(field: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "must not be empty"
    } else if name.len() > MAX_NAME_LEN {
        "must be at most 64 characters"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        "may only contain A-Z, a-z, 0-9, '_' and '-'"
    } else {
        return Ok(());
    };
    Err(RegistryError::InvalidName {
        field,
        name: name.to_string(),
        reason,
    })
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RegistryError + '_ {
    move |source| RegistryError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Name prefix of staging directories of offline builds (`offline.rs`).
pub(crate) const BUILDING_PREFIX: &str = ".building-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["a", "docs_v2", "A-9", &"x".repeat(64)] {
            assert!(validate_name("name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "../x", "é", ".dropped-x", &"x".repeat(65)] {
            assert!(validate_name("name", bad).is_err(), "{bad:?}");
        }
    }
}
