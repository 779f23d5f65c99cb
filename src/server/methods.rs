//! The gRPC methods the server answers: the access each needs and its
//! label in metrics. One table, so a new RPC gets both or neither; an
//! unknown path needs a full key and is counted as `other` (which keeps the
//! metrics' label set bounded whatever clients send).

use super::auth::Access;

/// `/package.Service/Method` path, and what calling it needs.
pub const METHODS: &[(&str, Access)] = &[
    ("/grpc.health.v1.Health/Check", Access::Public),
    ("/grpc.health.v1.Health/Watch", Access::Public),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        Access::Read,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        Access::Read,
    ),
    ("/quiver.v1.Collections/Create", Access::Write),
    ("/quiver.v1.Collections/Drop", Access::Write),
    ("/quiver.v1.Collections/List", Access::Read),
    ("/quiver.v1.Collections/Describe", Access::Read),
    ("/quiver.v1.Collections/CreateFieldIndex", Access::Write),
    ("/quiver.v1.Collections/DropFieldIndex", Access::Write),
    ("/quiver.v1.Points/Upsert", Access::Write),
    ("/quiver.v1.Points/UpsertStream", Access::Write),
    ("/quiver.v1.Points/Delete", Access::Write),
    ("/quiver.v1.Points/Get", Access::Read),
    ("/quiver.v1.Points/Count", Access::Read),
    ("/quiver.v1.Points/Search", Access::Read),
    ("/quiver.v1.Points/SearchBatch", Access::Read),
    ("/quiver.v1.Points/Scroll", Access::Read),
    // Node-to-node calls of cluster mode (full-access keys only).
    ("/quiver.internal.v1.Replica/Append", Access::Write),
    ("/quiver.internal.v1.Replica/Position", Access::Write),
    ("/quiver.internal.v1.Replica/InstallSnapshot", Access::Write),
    ("/quiver.internal.v1.Replica/Write", Access::Write),
    ("/quiver.internal.v1.Replica/Read", Access::Write),
];

/// Index into [`METHODS`] of a known method; `METHODS.len()` for any other path.
pub type MethodId = usize;

/// Metrics label of any path not in [`METHODS`].
pub const OTHER: &str = "other";

/// The method id and the access a request path needs.
pub fn classify(path: &str) -> (MethodId, Access) {
    METHODS
        .iter()
        .position(|(p, _)| *p == path)
        .map_or((METHODS.len(), Access::Write), |i| (i, METHODS[i].1))
}

/// Metrics label of a method: `Service/Method` without the leading slash.
pub fn label(id: MethodId) -> &'static str {
    METHODS
        .get(id)
        .map_or(OTHER, |(path, _)| path.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn every_rpc_of_the_api_is_classified() {
        let set =
            prost_types::FileDescriptorSet::decode(super::super::pb::FILE_DESCRIPTOR_SET).unwrap();
        let mut n = 0;
        for file in &set.file {
            for service in &file.service {
                for method in &service.method {
                    let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                    assert!(
                        classify(&path).0 < METHODS.len(),
                        "{path} is not in METHODS"
                    );
                    n += 1;
                }
            }
        }
        assert_eq!(n, 14, "quiver.v1 RPCs");
    }

    #[test]
    fn writes_need_full_keys_and_unknown_paths_too() {
        assert_eq!(classify("/quiver.v1.Points/Search").1, Access::Read);
        assert_eq!(classify("/quiver.v1.Points/Upsert").1, Access::Write);
        assert_eq!(classify("/grpc.health.v1.Health/Check").1, Access::Public);
        let (id, access) = classify("/evil.Service/Anything");
        assert_eq!((label(id), access), (OTHER, Access::Write));
        assert_eq!(
            label(classify("/quiver.v1.Points/Count").0),
            "quiver.v1.Points/Count"
        );
    }
}
