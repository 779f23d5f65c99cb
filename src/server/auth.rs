//! API keys: who may call what.
//!
//! With no keys configured every request is allowed. With keys, a request
//! must carry `authorization: Bearer <key>`: a key of `api_keys` may call
//! everything, a key of `read_only_keys` only the reading methods (see
//! [`Access`]). Health checks never need a key. The presented key is
//! compared with every configured key in constant time (no early exit on
//! the first match or the first differing byte). Keys are never printed:
//! [`ApiKey`]'s `Debug` is redacted and no error message repeats one.

use http::HeaderMap;
use subtle::{Choice, ConstantTimeEq as _};
use tonic::Status;

pub use crate::limits::MAX_KEY_LEN;

/// What a gRPC method needs from its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// No key needed (`grpc.health.v1`).
    Public,
    /// Reads data or metadata: any key.
    Read,
    /// Changes data, or an unknown method: a key of `api_keys`.
    Write,
}

/// A secret API key. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Box<str>);

impl ApiKey {
    /// Checks a key: 1 to [`MAX_KEY_LEN`] printable ASCII characters, no
    /// spaces (it travels in an HTTP header). The error does not repeat it.
    pub fn new(key: &str) -> Result<ApiKey, String> {
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(format!("a key must be 1 to {MAX_KEY_LEN} characters"));
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a key may only contain printable ASCII characters, no spaces".into());
        }
        Ok(ApiKey(key.into()))
    }

    /// The key itself, for a client that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// The server's keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// Keys that may call every method.
    pub api_keys: Vec<ApiKey>,
    /// Keys that may call only reading methods.
    pub read_only_keys: Vec<ApiKey>,
    /// Allow serving without keys on a non-loopback address.
    pub allow_anonymous: bool,
}

impl AuthConfig {
    /// Whether any key is configured (then every non-public call needs one).
    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty() || !self.read_only_keys.is_empty()
    }

    /// The access a presented key grants, checking every configured key in
    /// constant time; `None` for an unknown key.
    fn grant(&self, presented: &[u8]) -> Option<Access> {
        let fold = |keys: &[ApiKey]| {
            keys.iter().fold(Choice::from(0), |acc, k| {
                acc | k.0.as_bytes().ct_eq(presented)
            })
        };
        let full = fold(&self.api_keys);
        let read = fold(&self.read_only_keys);
        if bool::from(full) {
            Some(Access::Write)
        } else if bool::from(read) {
            Some(Access::Read)
        } else {
            None
        }
    }

    /// Allows or refuses a request that needs `needed`, from its headers:
    /// UNAUTHENTICATED without a known key, PERMISSION_DENIED for a
    /// read-only key on a writing method.
    pub fn check(&self, headers: &HeaderMap, needed: Access) -> Result<(), Status> {
        if needed == Access::Public || !self.enabled() {
            return Ok(());
        }
        let Some(value) = headers.get(http::header::AUTHORIZATION) else {
            return Err(Status::unauthenticated(
                "missing `authorization: Bearer <api key>` metadata",
            ));
        };
        let presented = bearer_token(value.as_bytes()).ok_or_else(|| {
            Status::unauthenticated("authorization metadata must be `Bearer <api key>`")
        })?;
        match self.grant(presented) {
            None => Err(Status::unauthenticated("unknown API key")),
            Some(granted) if granted >= needed => Ok(()),
            Some(_) => Err(Status::permission_denied(
                "this API key is read-only; the method changes data",
            )),
        }
    }
}

/// The token of an `authorization: Bearer <token>` value (scheme matched
/// without regard to case).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer ";
    if value.len() <= SCHEME.len() || !value[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let token = value[SCHEME.len()..].trim_ascii();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn auth() -> AuthConfig {
        AuthConfig {
            api_keys: vec![
                ApiKey::new("full-1").unwrap(),
                ApiKey::new("full-2").unwrap(),
            ],
            read_only_keys: vec![ApiKey::new("reader").unwrap()],
            allow_anonymous: false,
        }
    }

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    fn code(a: &AuthConfig, value: Option<&str>, needed: Access) -> Option<Code> {
        a.check(&headers(value), needed).err().map(|s| s.code())
    }

    #[test]
    fn keys_grant_their_access() {
        let a = auth();
        assert_eq!(code(&a, Some("Bearer full-1"), Access::Write), None);
        assert_eq!(code(&a, Some("bearer full-2"), Access::Write), None);
        assert_eq!(code(&a, Some("BEARER  full-2 "), Access::Read), None);
        assert_eq!(code(&a, Some("Bearer reader"), Access::Read), None);
        assert_eq!(
            code(&a, Some("Bearer reader"), Access::Write),
            Some(Code::PermissionDenied)
        );
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic full-1"),
            Some("full-1"),
        ] {
            assert_eq!(
                code(&a, bad, Access::Read),
                Some(Code::Unauthenticated),
                "{bad:?}"
            );
        }
        for unknown in [
            "Bearer full-",
            "Bearer full-12",
            "Bearer Full-1",
            "Bearer readerx",
        ] {
            assert_eq!(
                code(&a, Some(unknown), Access::Read),
                Some(Code::Unauthenticated),
                "{unknown}"
            );
        }
        // Health needs nothing; no keys configured means no checks.
        assert_eq!(code(&a, None, Access::Public), None);
        assert_eq!(code(&AuthConfig::default(), None, Access::Write), None);
    }

    #[test]
    fn keys_are_validated_and_never_printed() {
        assert!(ApiKey::new("").is_err());
        assert!(ApiKey::new("has space").is_err());
        assert!(ApiKey::new("tab\t").is_err());
        assert!(ApiKey::new(&"k".repeat(MAX_KEY_LEN + 1)).is_err());
        let e = ApiKey::new("secret value").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        let printed = format!("{:?}", auth());
        for k in ["full-1", "full-2", "reader"] {
            assert!(!printed.contains(k), "{printed}");
        }
        let s = auth()
            .check(&headers(Some("Bearer guess-me")), Access::Read)
            .unwrap_err();
        assert!(!s.message().contains("guess-me"), "{s:?}");
    }
}
