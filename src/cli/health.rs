//! `quiver health`: one `grpc.health.v1.Health/Check` against a running
//! server, for container and orchestrator probes. Exits 0 when the server
//! answers SERVING; otherwise fails with a message saying why (unreachable,
//! no answer in time, NOT_SERVING, key refused, unknown service).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Endpoint;
use tonic::{Code, Request, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[derive(Args)]
pub struct HealthArgs {
    /// Server address. A wildcard listen address (0.0.0.0, [::]) is probed on
    /// loopback, so the server's own `QUIVER_ADDR` works inside a container.
    #[arg(long, default_value = "127.0.0.1:6334", env = "QUIVER_ADDR")]
    addr: String,
    /// Fail when connecting and checking take longer than this.
    #[arg(long, default_value_t = 3000)]
    timeout_ms: u64,
    /// API key, sent as `authorization: Bearer <key>`.
    #[arg(long, env = "QUIVER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Service to check, e.g. `quiver.v1.Points`; empty checks the whole server.
    #[arg(long, default_value = "")]
    service: String,
}

pub fn run(a: HealthArgs) -> anyhow::Result<()> {
    if a.timeout_ms == 0 {
        bail!("--timeout-ms must be at least 1");
    }
    let uri = probe_uri(&a.addr);
    let auth = a.api_key.as_deref().map(bearer).transpose()?;
    let timeout = Duration::from_millis(a.timeout_ms);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let status = runtime.block_on(async {
        match tokio::time::timeout(timeout, check(&uri, timeout, auth, &a.service)).await {
            Ok(r) => r,
            Err(_) => bail!("{uri}: no answer within {} ms", a.timeout_ms),
        }
    })?;
    let what = if a.service.is_empty() {
        String::new()
    } else {
        format!(" ({})", a.service)
    };
    match status {
        ServingStatus::Serving => {
            out!("{uri}{what}: SERVING");
            Ok(())
        }
        other => bail!("{uri}{what}: {}", other.as_str_name()),
    }
}

/// Connects and runs one Check; every failure names the address.
async fn check(
    uri: &str,
    timeout: Duration,
    auth: Option<MetadataValue<Ascii>>,
    service: &str,
) -> anyhow::Result<ServingStatus> {
    let channel = Endpoint::from_shared(uri.to_string())
        .with_context(|| format!("--addr {uri:?} is not a valid address"))?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("{uri}: cannot connect"))?;
    let mut client = HealthClient::with_interceptor(channel, move |mut req: Request<()>| {
        if let Some(v) = &auth {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    });
    let req = HealthCheckRequest {
        service: service.to_string(),
    };
    let reply = client
        .check(req)
        .await
        .map_err(|s| check_error(uri, service, s))?;
    Ok(ServingStatus::try_from(reply.into_inner().status).unwrap_or(ServingStatus::Unknown))
}

/// A Check that failed with a status, in words.
fn check_error(uri: &str, service: &str, s: Status) -> anyhow::Error {
    let why = match s.code() {
        Code::NotFound => format!("the server does not know service {service:?}"),
        Code::Unauthenticated | Code::PermissionDenied => {
            format!("the API key was refused ({})", s.message())
        }
        Code::Unimplemented => format!(
            "the server does not implement grpc.health.v1 ({})",
            s.message()
        ),
        Code::Unavailable => format!("unavailable: {}", s.message()),
        Code::DeadlineExceeded | Code::Cancelled => "no answer in time".to_string(),
        code => format!("{code:?}: {}", s.message()),
    };
    anyhow::anyhow!("{uri}: health check failed: {why}")
}

/// The URI to probe: `http://` added when no scheme is given, and a wildcard
/// IP replaced by loopback (a listen address is not a destination).
fn probe_uri(addr: &str) -> String {
    if addr.contains("://") {
        return addr.to_string();
    }
    match addr.parse::<SocketAddr>() {
        Ok(mut sa) if sa.ip().is_unspecified() => {
            let lo = match sa.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            sa.set_ip(lo);
            format!("http://{sa}")
        }
        _ => format!("http://{addr}"),
    }
}

/// The `authorization` metadata value for an API key.
fn bearer(key: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    if key.is_empty() {
        bail!("--api-key is empty");
    }
    format!("Bearer {key}")
        .parse()
        .map_err(|_| anyhow::anyhow!("--api-key may only contain visible ASCII characters"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_uri_adds_scheme_and_maps_wildcards_to_loopback() {
        assert_eq!(probe_uri("127.0.0.1:6334"), "http://127.0.0.1:6334");
        assert_eq!(probe_uri("db.internal:6334"), "http://db.internal:6334");
        assert_eq!(probe_uri("0.0.0.0:7000"), "http://127.0.0.1:7000");
        assert_eq!(probe_uri("[::]:7000"), "http://[::1]:7000");
        assert_eq!(probe_uri("https://db:6334"), "https://db:6334");
    }

    #[test]
    fn bearer_header_value() {
        assert_eq!(bearer("s3cret-key").unwrap(), "Bearer s3cret-key");
        assert!(bearer("").is_err());
        assert!(bearer("bad\nkey").is_err());
    }
}
