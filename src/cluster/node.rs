//! [`Node`]: this server as a member of a cluster. It joins (identity check,
//! etcd lease, node key), keeps its lease alive, watches the cluster's keys
//! and reconciles its shard replicas with the catalog: creating the
//! replicas placed on it, dropping those no longer placed on it, following
//! payload-index changes.
//!
//! # Lock order
//!
//! `reconcile` (async, one reconciliation at a time) before `replicas`;
//! `view` and `lease` are leaves (their guards are never held across an
//! `.await` or another lock).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use prost::Message as _;
use quiver_storage::Fsync;

use super::etcd::{self, Etcd};
use super::keys::Keys;
use super::oplog::Oplog;
use super::peers::Peers;
use super::replica::{parse_local_name, Replica};
use super::view::View;
use super::{pb, ClusterError, ClusterOptions, LEASE_TTL_SECS};
use crate::server::convert::NewCollection;
use crate::server::filter::field_type_from_pb;
use crate::server::{Limits, PointsService, Registry};

/// How long to keep trying etcd at start before giving up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Leadership lapses this long before the lease could expire in etcd.
const LEASE_MARGIN: Duration = Duration::from_millis(1000);
/// The view is re-read at least this often, watch or not.
const REFRESH_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Lease {
    id: i64,
    /// When the last successful renewal was sent.
    renewed: Instant,
}

/// This server as a cluster member.
#[derive(Debug)]
pub struct Node {
    pub id: String,
    pub advertise: String,
    pub keys: Keys,
    pub etcd: Etcd,
    pub peers: Peers,
    /// Shard replicas' collections.
    pub registry: Arc<Registry>,
    /// The local points service over `registry` (applies writes, answers shard reads).
    pub points: PointsService,
    pub limits: Limits,
    data: PathBuf,
    view: RwLock<Arc<View>>,
    lease: Mutex<Lease>,
    replicas: RwLock<BTreeMap<(String, u32), Arc<Replica>>>,
    reconcile: tokio::sync::Mutex<()>,
    changed: tokio::sync::Notify,
    joined: AtomicBool,
    /// Placed nodes seen without a lease, and since when (for rebalancing).
    down_since: Mutex<BTreeMap<String, Instant>>,
}

/// The identity a data directory was joined with (`cluster/identity`).
fn check_identity(dir: &Path, opts: &ClusterOptions) -> Result<(), ClusterError> {
    let backend = quiver_storage::backend::default_backend();
    let want = format!("cluster={}\nnode={}\n", opts.cluster, opts.node_id);
    let path = dir.join("identity");
    match backend.read(&path) {
        Ok(have) if have == want.as_bytes() => Ok(()),
        Ok(have) => Err(ClusterError::Identity {
            dir: dir.to_path_buf(),
            have: String::from_utf8_lossy(&have).trim().replace('\n', ", "),
            want: want.trim().replace('\n', ", "),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            backend
                .create_dir_all(dir)
                .map_err(|e| ClusterError::Io(format!("{}: {e}", dir.display())))?;
            quiver_storage::write_atomic(backend.as_ref(), dir, "identity", &[want.as_bytes()])
                .map_err(|e| ClusterError::Io(e.to_string()))
        }
        Err(e) => Err(ClusterError::Io(format!("{}: {e}", path.display()))),
    }
}

impl Node {
    /// Joins the cluster: checks the data directory's identity, opens the
    /// local replicas, registers under a lease, reads the cluster, and
    /// starts the background tasks. Fails if etcd stays unreachable for
    /// [`JOIN_TIMEOUT`] or the node id is held by another live node.
    pub async fn join(
        opts: ClusterOptions,
        data: &Path,
        limits: Limits,
        metrics: Arc<crate::server::metrics::RequestMetrics>,
    ) -> Result<Arc<Node>, ClusterError> {
        let dir = data.join("cluster");
        check_identity(&dir, &opts)?;
        let etcd = Etcd::new(&opts.endpoints).map_err(ClusterError::Config)?;
        let keys = Keys::new(&opts.cluster);
        let started = Instant::now();
        while let Err(e) = etcd.range_prefix(keys.root()).await {
            if started.elapsed() > JOIN_TIMEOUT {
                return Err(ClusterError::Etcd(e));
            }
            tracing::warn!(error = %e, "etcd not reachable yet");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        let opened = dir.clone();
        let registry = tokio::task::spawn_blocking(move || Registry::open(&opened))
            .await
            .map_err(|e| ClusterError::Io(e.to_string()))?
            .map_err(|e| ClusterError::Io(e.to_string()))?;
        let registry = Arc::new(registry);
        let node = Arc::new(Node {
            id: opts.node_id.clone(),
            advertise: opts.advertise.clone(),
            keys,
            etcd,
            peers: Peers::new(opts.api_key.clone()),
            points: PointsService::new(registry.clone(), limits.clone(), metrics),
            registry,
            limits,
            data: dir,
            view: RwLock::new(Arc::new(View::default())),
            // No lease until the replicas are open (that may take a while).
            lease: Mutex::new(Lease {
                id: 0,
                renewed: Instant::now() - Duration::from_secs(3600),
            }),
            replicas: RwLock::new(BTreeMap::new()),
            reconcile: tokio::sync::Mutex::new(()),
            changed: tokio::sync::Notify::new(),
            joined: AtomicBool::new(false),
            down_since: Mutex::new(BTreeMap::new()),
        });
        node.open_replicas().await?;
        // etcd may be restarting too: retry the lease and the registration.
        let started = Instant::now();
        loop {
            let renewed = Instant::now();
            let attempt = async {
                let lease = node.etcd.grant(LEASE_TTL_SECS).await?;
                node.register(lease).await?;
                Ok::<_, ClusterError>(lease)
            };
            match attempt.await {
                Ok(lease) => {
                    *node.lease.lock() = Lease { id: lease, renewed };
                    break;
                }
                Err(ClusterError::Etcd(e)) if started.elapsed() < JOIN_TIMEOUT => {
                    tracing::warn!(error = %e, "registering with etcd; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => return Err(e),
            }
        }
        node.refresh().await.map_err(ClusterError::Etcd)?;
        node.clone().spawn_tasks();
        node.joined.store(true, Ordering::Release);
        tracing::info!(node = %node.id, advertise = %node.advertise, etcd = %node.etcd.endpoints(), "joined the cluster");
        Ok(node)
    }

    /// Whether the node has joined (health reports NOT_SERVING before).
    pub fn joined(&self) -> bool {
        self.joined.load(Ordering::Acquire)
    }

    /// The current view of the cluster.
    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// This node's replica of a shard.
    pub fn replica(&self, collection: &str, shard: u32) -> Option<Arc<Replica>> {
        self.replicas
            .read()
            .get(&(collection.to_string(), shard))
            .cloned()
    }

    pub fn replica_list(&self) -> Vec<Arc<Replica>> {
        self.replicas.read().values().cloned().collect()
    }

    /// The lease id, if it was renewed recently enough to lead under it.
    pub fn fresh_lease(&self) -> Option<i64> {
        let l = self.lease.lock();
        let limit = Duration::from_secs(LEASE_TTL_SECS as u64).saturating_sub(LEASE_MARGIN);
        (l.renewed.elapsed() < limit).then_some(l.id)
    }

    /// How long `node` has been placed but without a lease (zero if live).
    pub fn down_for(&self, node: &str) -> Duration {
        self.down_since
            .lock()
            .get(node)
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// Asks the refresh loop to re-read etcd now.
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    fn oplog_dir(&self, local: &str) -> PathBuf {
        self.data.join("oplog").join(local)
    }

    /// Opens the replicas found on disk and re-applies their last logged write.
    async fn open_replicas(self: &Arc<Self>) -> Result<(), ClusterError> {
        for local in self.registry.names() {
            let Some((collection, shard)) = parse_local_name(&local) else {
                continue;
            };
            let fsync = self.fsync_of(&local);
            let dir = self.oplog_dir(&local);
            let log = tokio::task::spawn_blocking(move || Oplog::open(&dir, fsync))
                .await
                .map_err(|e| ClusterError::Io(e.to_string()))?
                .map_err(|e| ClusterError::Io(e.to_string()))?;
            let r = Replica::new(&collection, shard, log);
            r.recover(&self.points)
                .await
                .map_err(|s| ClusterError::Io(format!("recovering {local}: {}", s.message())))?;
            tracing::info!(collection = %collection, shard, lsn = r.position().last_lsn, "opened shard replica");
            self.replicas.write().insert((collection, shard), r);
        }
        Ok(())
    }

    fn fsync_of(&self, local: &str) -> Fsync {
        self.registry
            .get(local)
            .map_or(Fsync::Always, |c| c.config().fsync.to_storage())
    }

    /// Puts the node key under `lease`, unless another live node holds the id.
    async fn register(&self, lease: i64) -> Result<(), ClusterError> {
        let key = self.keys.node(&self.id);
        let record = pb::NodeRecord {
            id: self.id.clone(),
            address: self.advertise.clone(),
        }
        .encode_to_vec();
        let started = Instant::now();
        loop {
            let put = etcd::pb::TxnRequest {
                compare: vec![etcd::created_at(&key, 0)],
                success: vec![etcd::put_op(&key, record.clone(), lease)],
                failure: vec![],
            };
            if self.etcd.txn(put).await.map_err(ClusterError::Etcd)? {
                return Ok(());
            }
            // Our own key from before a restart expires within a TTL.
            if started.elapsed() > Duration::from_secs(LEASE_TTL_SECS as u64 + 2) {
                let (_, kvs) = self
                    .etcd
                    .range_prefix(&key)
                    .await
                    .map_err(ClusterError::Etcd)?;
                let holder = kvs
                    .iter()
                    .find(|kv| kv.key == key.as_bytes())
                    .and_then(|kv| pb::NodeRecord::decode(kv.value.as_slice()).ok())
                    .map_or_else(String::new, |n| n.address);
                return Err(ClusterError::NodeIdTaken {
                    id: self.id.clone(),
                    holder,
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn spawn_tasks(self: Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move { me.keep_alive_loop().await });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let prefix = me.keys.root().to_string();
                if let Err(e) = me
                    .etcd
                    .watch_prefix(&prefix, || me.changed.notify_one())
                    .await
                {
                    tracing::debug!(error = %e, "etcd watch ended");
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                let _ = tokio::time::timeout(REFRESH_EVERY, me.changed.notified()).await;
                if let Err(e) = me.refresh().await {
                    tracing::warn!(error = %e, "reading the cluster from etcd");
                }
            }
        });
        tokio::spawn(async move { super::election::run(self).await });
    }

    /// Renews the lease every third of its TTL; registers again under a new
    /// lease if it expired (a partition outlasted it).
    async fn keep_alive_loop(self: Arc<Self>) {
        let every = Duration::from_millis(LEASE_TTL_SECS as u64 * 1000 / 3);
        loop {
            tokio::time::sleep(every).await;
            let (id, sent) = (self.lease.lock().id, Instant::now());
            match self.etcd.keep_alive(id).await {
                Ok(ttl) if ttl > 0 => self.lease.lock().renewed = sent,
                Ok(_) => {
                    tracing::warn!(node = %self.id, "lease expired: stepping down and joining again");
                    for r in self.replica_list() {
                        r.leading.store(0, Ordering::Release);
                    }
                    match self.etcd.grant(LEASE_TTL_SECS).await {
                        Ok(new) => {
                            let sent = Instant::now();
                            if let Err(e) = self.register(new).await {
                                tracing::error!(error = %e, "registering again");
                            }
                            *self.lease.lock() = Lease {
                                id: new,
                                renewed: sent,
                            };
                            self.poke();
                        }
                        Err(e) => tracing::warn!(error = %e, "granting a new lease"),
                    }
                }
                Err(e) => tracing::warn!(error = %e, "renewing the lease"),
            }
        }
    }

    /// Re-reads every key of the cluster, swaps the view and reconciles.
    pub async fn refresh(self: &Arc<Self>) -> Result<(), etcd::EtcdError> {
        let _one = self.reconcile.lock().await;
        let (revision, kvs) = self.etcd.range_prefix(self.keys.root()).await?;
        let view = Arc::new(View::decode(&self.keys, revision, &kvs));
        *self.view.write() = view.clone();
        {
            let mut down = self.down_since.lock();
            let placed: std::collections::BTreeSet<&String> = view
                .collections
                .values()
                .flat_map(|c| {
                    c.entry
                        .shards
                        .iter()
                        .flat_map(|s| s.nodes.iter().chain(&s.learners))
                })
                .collect();
            down.retain(|n, _| placed.contains(n) && !view.nodes.contains_key(n));
            for n in placed {
                if !view.nodes.contains_key(n) {
                    down.entry(n.clone()).or_insert_with(Instant::now);
                }
            }
        }
        self.reconcile(&view).await;
        Ok(())
    }

    /// Creates the replicas placed on this node, drops the ones no longer
    /// placed on it, applies payload-index changes, and notes leaders' terms.
    async fn reconcile(self: &Arc<Self>, view: &View) {
        for (name, item) in &view.collections {
            for shard in 0..item.shards() {
                if !item.holders(shard).contains(&self.id) {
                    continue;
                }
                if self.replica(name, shard).is_none() {
                    if let Err(e) = self.create_replica(name, shard, &item.entry).await {
                        tracing::error!(collection = %name, shard, error = %e, "creating shard replica");
                        continue;
                    }
                }
                self.sync_field_indexes(name, shard, &item.entry).await;
                if let (Some(r), Some(l)) = (self.replica(name, shard), view.leader(name, shard)) {
                    if l.node != self.id {
                        r.observe_term(l.term);
                    }
                }
            }
        }
        let doomed: Vec<(String, u32)> = self
            .replicas
            .read()
            .keys()
            .filter(|(c, s)| {
                view.collections
                    .get(c)
                    .is_none_or(|item| !item.holders(*s).contains(&self.id))
            })
            .cloned()
            .collect();
        for (c, s) in doomed {
            if let Err(e) = self.drop_replica(&c, s).await {
                tracing::error!(collection = %c, shard = s, error = %e, "dropping shard replica");
            }
        }
    }

    async fn create_replica(
        self: &Arc<Self>,
        collection: &str,
        shard: u32,
        entry: &pb::CatalogEntry,
    ) -> Result<(), String> {
        let create = entry
            .create
            .clone()
            .ok_or("catalog entry without settings")?;
        let new = NewCollection::try_from(create).map_err(|s| s.message().to_string())?;
        let local = super::replica::local_name(collection, shard);
        let fsync = new.config.fsync.to_storage();
        let registry = self.registry.clone();
        let dir = self.oplog_dir(&local);
        let name = local.clone();
        let log = tokio::task::spawn_blocking(move || {
            if registry.get(&name).is_err() {
                registry
                    .create(&name, new.config)
                    .map_err(|e| e.to_string())?;
            }
            Oplog::open(&dir, fsync).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let r = Replica::new(collection, shard, log);
        tracing::info!(collection, shard, "created shard replica");
        self.replicas
            .write()
            .insert((collection.to_string(), shard), r);
        Ok(())
    }

    async fn drop_replica(&self, collection: &str, shard: u32) -> Result<(), String> {
        let Some(r) = self
            .replicas
            .write()
            .remove(&(collection.to_string(), shard))
        else {
            return Ok(());
        };
        let _w = r.write.lock().await;
        r.leading.store(0, Ordering::Release);
        let registry = self.registry.clone();
        let local = r.local.clone();
        let dir = self.oplog_dir(&local);
        tokio::task::spawn_blocking(move || {
            registry
                .drop_collection(&local)
                .map_err(|e| e.to_string())?;
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("{}: {e}", dir.display()))
                }
                _ => Ok(()),
            }
        })
        .await
        .map_err(|e| e.to_string())??;
        tracing::info!(collection, shard, "dropped shard replica");
        Ok(())
    }

    /// Makes the replica's payload indexes those of the catalog.
    async fn sync_field_indexes(&self, collection: &str, shard: u32, entry: &pb::CatalogEntry) {
        let Ok(c) = self
            .registry
            .get(&super::replica::local_name(collection, shard))
        else {
            return;
        };
        let want = entry
            .create
            .as_ref()
            .map(|c| c.field_indexes.clone())
            .unwrap_or_default();
        let have = c.field_indexes();
        let missing: Vec<_> = want
            .iter()
            .filter(|f| !have.iter().any(|h| h.key == f.key))
            .cloned()
            .collect();
        let extra: Vec<String> = have
            .iter()
            .filter(|h| !want.iter().any(|f| f.key == h.key))
            .map(|h| h.key.clone())
            .collect();
        if missing.is_empty() && extra.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for f in missing {
                match field_type_from_pb(f.r#type, "type") {
                    Ok(t) => {
                        if let Err(e) = c.create_field_index(&f.key, t) {
                            tracing::warn!(key = %f.key, error = %e, "indexing payload field");
                        }
                    }
                    Err(s) => tracing::warn!(key = %f.key, error = %s.message(), "bad field type in catalog"),
                }
            }
            for key in extra {
                let _ = c.drop_field_index(&key);
            }
        })
        .await;
    }

    /// Stops leading and revokes the lease (its node and leader keys go
    /// with it), so other replicas take over at once.
    pub async fn leave(&self) {
        for r in self.replica_list() {
            r.leading.store(0, Ordering::Release);
        }
        let id = self.lease.lock().id;
        match self.etcd.revoke(id).await {
            Ok(()) => tracing::info!(node = %self.id, "left the cluster"),
            Err(e) => tracing::warn!(error = %e, "revoking the lease on shutdown"),
        }
    }

    /// Per-shard gauges for `/metrics`: role, term, replication-log
    /// position, and each follower's lag behind a leader.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        let replicas = self.replica_list();
        let families = [
            (
                "quiver_shard_leader",
                "1 when this node leads the shard, else 0.",
            ),
            ("quiver_shard_term", "Highest term this replica has seen."),
            (
                "quiver_shard_lsn",
                "Last replication-log position this replica holds durably.",
            ),
        ];
        for (i, (name, help)) in families.iter().enumerate() {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for r in &replicas {
                let p = r.position();
                let v = match i {
                    0 => u64::from(r.leads().is_some()),
                    1 => p.term,
                    _ => p.last_lsn,
                };
                let _ = writeln!(
                    out,
                    "{name}{{collection=\"{}\",shard=\"{}\"}} {v}",
                    r.collection, r.shard
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP quiver_shard_follower_lag Records a follower lacks, as its leader sees it.\n# TYPE quiver_shard_follower_lag gauge"
        );
        for r in replicas.iter().filter(|r| r.leads().is_some()) {
            let last = r.position().last_lsn;
            for (follower, f) in r.followers.lock().iter() {
                let _ = writeln!(
                    out,
                    "quiver_shard_follower_lag{{collection=\"{}\",shard=\"{}\",follower=\"{follower}\"}} {}",
                    r.collection,
                    r.shard,
                    last.saturating_sub(f.matched)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP quiver_cluster_lease_fresh 1 while this node's etcd lease is renewed in time.\n# TYPE quiver_cluster_lease_fresh gauge\nquiver_cluster_lease_fresh {}",
            u64::from(self.fresh_lease().is_some())
        );
    }
}
