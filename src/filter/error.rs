//! Errors of filters: a bad part (or one over a limit) named by its path
//! inside the request, e.g. `filter.must[2].range.gte`.

/// A filter that cannot be used as given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// A malformed condition, or one that clashes with an indexed field's type.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A filter over a size or depth limit (`limits::MAX_FILTER_*`).
    #[error("{field}: {message}")]
    TooLarge { field: String, message: String },
}

impl FilterError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        FilterError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn too_large(field: impl Into<String>, message: impl Into<String>) -> Self {
        FilterError::TooLarge {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The path of the part at fault.
    pub fn field(&self) -> &str {
        match self {
            FilterError::Invalid { field, .. } | FilterError::TooLarge { field, .. } => field,
        }
    }

    /// Whether the filter is over a limit (rather than malformed).
    pub fn is_limit(&self) -> bool {
        matches!(self, FilterError::TooLarge { .. })
    }
}
