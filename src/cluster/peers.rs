//! Clients of other nodes' `quiver.internal.v1.Replica` service: one lazily
//! connected channel per address, reused; every call has a deadline and
//! carries this node's API key when the cluster uses keys.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::pb;
use super::pb::replica_client::ReplicaClient;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(800);

/// Peer channels by address.
#[derive(Debug)]
pub struct Peers {
    api_key: Option<String>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl Peers {
    pub fn new(api_key: Option<String>) -> Peers {
        Peers {
            api_key,
            channels: Mutex::new(HashMap::new()),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, Status> {
        if let Some(c) = self.channels.lock().get(addr) {
            return Ok(c.clone());
        }
        let url = if addr.contains("://") {
            addr.to_string()
        } else {
            format!("http://{addr}")
        };
        let ch = Endpoint::from_shared(url)
            .map_err(|e| Status::internal(format!("peer address {addr:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(2))
            .connect_lazy();
        self.channels.lock().insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// A client of the node at `addr`.
    pub fn client(&self, addr: &str) -> Result<ReplicaClient<Channel>, Status> {
        Ok(ReplicaClient::new(self.channel(addr)?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX))
    }

    /// `message` as a request with a deadline and this node's key.
    pub fn request<T>(&self, message: T, timeout: Duration) -> Request<T> {
        let mut r = Request::new(message);
        r.set_timeout(timeout);
        if let Some(key) = &self.api_key {
            if let Ok(v) = MetadataValue::try_from(format!("Bearer {key}")) {
                r.metadata_mut().insert("authorization", v);
            }
        }
        r
    }

    /// A shard replica's position on the node at `addr`.
    pub async fn position(
        &self,
        addr: &str,
        collection: &str,
        shard: u32,
        timeout: Duration,
    ) -> Result<pb::PositionResponse, Status> {
        let req = self.request(
            pb::ShardRef {
                collection: collection.to_string(),
                shard,
            },
            timeout,
        );
        Ok(self.client(addr)?.position(req).await?.into_inner())
    }
}
