//! TLS for the gRPC port: a PEM certificate chain and private key, served
//! through tonic's rustls transport (ring provider, ALPN h2).

use std::path::{Path, PathBuf};

use tonic::transport::{Identity, ServerTlsConfig};

/// Files of the server's certificate and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why the TLS settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {field} {}: {source}", path.display())]
    Read {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate {} / key {}: {source}", cert.display(), key.display())]
    Invalid {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_path_buf(),
        source,
    })
}

impl TlsFiles {
    /// Reads both files into a server TLS configuration.
    pub fn load(&self) -> Result<ServerTlsConfig, TlsError> {
        let cert = read("tls.cert", &self.cert)?;
        let key = read("tls.key", &self.key)?;
        Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
    }

    /// Applies the configuration to a server builder (which parses the PEM).
    pub fn apply(
        &self,
        builder: tonic::transport::Server,
    ) -> Result<tonic::transport::Server, TlsError> {
        builder
            .tls_config(self.load()?)
            .map_err(|source| TlsError::Invalid {
                cert: self.cert.clone(),
                key: self.key.clone(),
                source,
            })
    }
}
