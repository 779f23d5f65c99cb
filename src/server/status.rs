//! Every mapping from a quiver error to a gRPC status, in one place.
//!
//! Client mistakes keep their message (it names the field); server-side
//! failures are logged and answered with their message too, since the
//! operator and the client both need to know which file failed.

use tonic::{Code, Status};

use super::data_dir::RegistryError;
use crate::collection::CollectionError;

impl From<CollectionError> for Status {
    fn from(e: CollectionError) -> Status {
        let code = match &e {
            CollectionError::InvalidArgument { .. } => Code::InvalidArgument,
            CollectionError::NotFound(_) => Code::NotFound,
            CollectionError::AlreadyExists(_) => Code::AlreadyExists,
            CollectionError::LimitExceeded { .. } => Code::ResourceExhausted,
            CollectionError::Corrupt { .. } => Code::DataLoss,
            CollectionError::Storage(s) => match s {
                quiver_storage::Error::ChecksumMismatch { .. }
                | quiver_storage::Error::Corrupt { .. } => Code::DataLoss,
                quiver_storage::Error::InvalidArgument(_) => Code::InvalidArgument,
                _ => Code::Internal,
            },
            _ => Code::Internal,
        };
        if matches!(code, Code::Internal | Code::DataLoss) {
            tracing::error!(error = %e, "request failed");
        }
        Status::new(code, e.to_string())
    }
}

impl From<RegistryError> for Status {
    fn from(e: RegistryError) -> Status {
        match e {
            RegistryError::InvalidName { .. } => Status::invalid_argument(e.to_string()),
            RegistryError::UnknownCollection(_) => Status::not_found(e.to_string()),
            RegistryError::AlreadyExists(_) => Status::already_exists(e.to_string()),
            RegistryError::Collection { source, .. } => source.into(),
            RegistryError::Io { .. } => {
                tracing::error!(error = %e, "request failed");
                Status::internal(e.to_string())
            }
        }
    }
}

/// INVALID_ARGUMENT naming `field`.
pub fn invalid(field: &str, message: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {message}"))
}

/// RESOURCE_EXHAUSTED for a request over a server limit, naming `field`.
pub fn over_limit(field: &str, len: usize, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "{field}: {len} items exceed the server limit of {max} per request"
    ))
}

/// RESOURCE_EXHAUSTED for a request message over `max_message_bytes`.
pub fn request_too_large(len: u64, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "request message of {len} bytes is over the server's max_message_bytes of {max}: \
         send smaller batches"
    ))
}

/// RESOURCE_EXHAUSTED for a response that would exceed `max_message_bytes`.
pub fn response_too_large(len: usize, max: usize) -> Status {
    Status::resource_exhausted(format!(
        "the response would be {len} bytes, over the server's max_message_bytes of {max}: \
         ask for fewer points, or without vectors or payloads"
    ))
}

/// A task that was cancelled or panicked.
pub fn join_error(e: tokio::task::JoinError) -> Status {
    tracing::error!(error = %e, "request task failed");
    Status::internal(format!("request task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_error_kind() {
        let s: Status = CollectionError::InvalidArgument {
            field: "points[1].vector".into(),
            message: "expected dimension 4, got 3".into(),
        }
        .into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert!(s.message().contains("points[1].vector"), "{}", s.message());
        let s: Status = RegistryError::UnknownCollection("x".into()).into();
        assert_eq!(s.code(), Code::NotFound);
        let s: Status = RegistryError::AlreadyExists("x".into()).into();
        assert_eq!(s.code(), Code::AlreadyExists);
        let s: Status = CollectionError::LimitExceeded {
            field: "points[0].payload".into(),
            message: "too big".into(),
        }
        .into();
        assert_eq!(s.code(), Code::ResourceExhausted);
    }
}
