//! Every limit and default bound of quiver, named in one place.
//!
//! Validation (collection settings, search requests, index parameters), the
//! server's configuration and its request checks all read these constants;
//! the comments of `proto/quiver/v1/quiver.proto`, `deploy/quiver.toml` and
//! the README state the same numbers (a test in this module keeps the proto
//! comments honest). Ranges are inclusive.

/// Largest vector dimension (on-disk formats store it in 16 bits' worth).
pub const MAX_DIMENSION: usize = 65_535;

/// Largest beam width: a search's `ef` and HNSW `efConstruction`.
pub const MAX_EF: usize = 100_000;

/// Largest number of SSD-tier postings a search reads (`nprobe`).
pub const MAX_NPROBE: usize = 100_000;

/// SSD tier: the head-graph beam of a search is at least this many times
/// its `nprobe`. With a beam of `nprobe` the graph misses near heads: on
/// minilm it cost 0.007–0.010 recall@10 at nprobe 16–64 (docs/BENCHMARKS.md).
pub const SPANN_HEAD_EF_PER_NPROBE: usize = 4;

/// SSD tier: default share of the vectors that become heads
/// ([`SpannParams::recommended`](crate::spann::SpannParams::recommended)):
/// k-means leaves of 6 vectors. With SQ8 heads on minilm (384-d) that is
/// 10,193 heads (20 % of the vectors) in 9.7 % of the raw f32 bytes.
pub const DEFAULT_SPANN_HEAD_RATIO: f64 = 1.0 / 6.0;

/// SSD tier: candidates re-ranked with full vectors when postings are SQ8.
pub const DEFAULT_SQ8_RERANK: usize = 64;

/// Largest `k` of a search.
pub const MAX_K: usize = 10_000;

/// Smallest and largest HNSW `M` (links per node on upper layers).
pub const MIN_HNSW_M: usize = 2;
/// See [`MIN_HNSW_M`].
pub const MAX_HNSW_M: usize = 128;

/// Largest `memory_tier_points` of a collection.
pub const MAX_MEMORY_TIER_POINTS: usize = 50_000_000;
/// Default `memory_tier_points` of a collection.
pub const DEFAULT_MEMORY_TIER_POINTS: usize = 100_000;

/// Default `index_buffer_points` of a collection: acknowledged points not
/// yet in the graph, scanned exactly by every search, before writers wait
/// for the background indexer. The scan costs every search about 0.1–0.2 µs
/// per point at 384 dimensions on the reference machine: at 5,000 a search's
/// p99 during a full-speed import stayed within 1.5–2.7× of idle, at 20,000
/// it was 6–8× (docs/BENCHMARKS.md, "Ingest without waiting for the graph").
pub const DEFAULT_INDEX_BUFFER_POINTS: usize = 5_000;
/// Largest `index_buffer_points` of a collection.
pub const MAX_INDEX_BUFFER_POINTS: usize = 1_000_000;
/// Buffered nodes the background indexer links per batch (in parallel),
/// between which it looks for older segments and wakes waiting writers.
pub const INDEX_BATCH_POINTS: usize = 256;
/// Nice value of background threads (graph builds of the unindexed buffer,
/// merges into the SSD tier): a search or write waking up
/// preempts them, and a busy one leaves them about a tenth of its core.
/// (At 19 they got ~1.5 %: a machine busy with searches or other processes
/// starved the graph build, and with it ingest, once the buffer was full.)
pub const BACKGROUND_NICE: i32 = 10;

/// Default re-rank factor of a collection whose memory tier stores f16 or
/// SQ8 codes: the best `max(k, rerank × k)` candidates found on the codes
/// are re-scored with the full vectors.
pub const DEFAULT_RERANK: usize = 4;
/// Largest re-rank factor (collection setting or per query).
pub const MAX_RERANK: usize = 100;

/// Points a collection's first SQ8 memory segment stores as f32 before its
/// quantiser is trained on them and the segment is re-encoded (later
/// segments start with a quantiser trained on the segment before them).
pub const SQ8_TRAIN_POINTS: usize = 10_000;

/// Default largest encoded payload of one point, in bytes (64 KiB).
pub const DEFAULT_MAX_PAYLOAD_BYTES: usize = 64 << 10;
/// Largest `max_payload_bytes` a collection may be created with (64 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;

/// Default most points per upsert, ids per get/delete and points per scroll page.
pub const DEFAULT_MAX_BATCH: usize = 10_000;
/// Default most queries per `SearchBatch`.
pub const DEFAULT_MAX_SEARCH_BATCH: usize = 1_000;
/// Largest `max_batch` / `max_search_batch` the server can be configured with.
pub const MAX_BATCH: usize = 1 << 24;

/// Default largest encoded gRPC message, request or response, in bytes (64 MiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Smallest `max_message_bytes` the server can be configured with (1 KiB).
pub const MIN_MESSAGE_BYTES: usize = 1 << 10;
/// Largest `max_message_bytes` the server can be configured with (2 GiB - 1).
pub const MAX_MESSAGE_BYTES: usize = (1 << 31) - 1;

/// Default most requests served at once.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: usize = 1024;
/// Largest `max_concurrent_requests` the server can be configured with.
pub const MAX_CONCURRENT_REQUESTS: usize = 1 << 20;

/// Largest search work (memory segments × beam width) the server runs
/// inline on its async worker: a search of at most this much, on a
/// collection without an SSD tier, takes well under a millisecond, less
/// than handing it to the blocking pool and back costs.
pub const INLINE_SEARCH_MAX_WORK: usize = 1024;
/// Most points in the unindexed buffer for a search to still run inline:
/// a bigger buffer's exact scan takes longer than the hand-off to the
/// blocking pool, and would hold up the async worker's other requests.
pub const INLINE_SEARCH_MAX_UNINDEXED: usize = 2048;

/// Deepest nesting of a search filter (`must` / `should` / `must_not`).
pub const MAX_FILTER_DEPTH: usize = 16;
/// Most conditions (leaves and combinations) in one filter.
pub const MAX_FILTER_CONDITIONS: usize = 1_024;
/// Most values (`match_any`) and ids (`has_id`) in one filter, in all.
pub const MAX_FILTER_VALUES: usize = 100_000;
/// Most payload fields a collection may index.
pub const MAX_FIELD_INDEXES: usize = 64;

/// Points per scroll page when a request gives no `limit`.
pub const DEFAULT_SCROLL_LIMIT: usize = 100;

/// Longest collection name.
pub const MAX_NAME_LEN: usize = 64;

/// Longest API key.
pub const MAX_KEY_LEN: usize = 4096;

/// Cluster mode: most shards of one collection.
pub const MAX_CLUSTER_SHARDS: u32 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// The proto's comments state the limits clients see.
    #[test]
    fn proto_comments_state_these_limits() {
        let proto = include_str!("../proto/quiver/v1/quiver.proto");
        for (needle, what) in [
            (format!("1..={MAX_DIMENSION}"), "dimension"),
            (format!("1..={MAX_EF}"), "ef"),
            (format!("1..={MAX_NPROBE}"), "nprobe"),
            (format!("1..={MAX_K}"), "k"),
            (format!("0..={MAX_RERANK}"), "rerank"),
            (format!("default {DEFAULT_RERANK}"), "rerank"),
            (
                format!("default {DEFAULT_MEMORY_TIER_POINTS}"),
                "memory_tier_points",
            ),
        ] {
            assert!(
                proto.contains(&needle),
                "quiver.proto should say {needle:?} ({what})"
            );
        }
    }
}
