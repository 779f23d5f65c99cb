//! The `Collections` service: create, drop, list and describe collections
//! of a [`Registry`].

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{collection_info, NewCollection};
use super::data_dir::validate_name;
use super::filter::field_type_from_pb;
use super::pb;
use super::pb::collections_server::Collections;
use super::registry::Registry;
use super::status::{invalid, join_error};
use super::Limits;
use crate::collection::CollectionError;

/// Serves `quiver.v1.Collections`.
#[derive(Debug, Clone)]
pub struct CollectionsService {
    registry: Arc<Registry>,
    limits: Limits,
}

impl CollectionsService {
    pub fn new(registry: Arc<Registry>, limits: Limits) -> Self {
        Self { registry, limits }
    }
}

#[tonic::async_trait]
impl Collections for CollectionsService {
    async fn create(
        &self,
        req: Request<pb::CreateCollectionRequest>,
    ) -> Result<Response<pb::CreateCollectionResponse>, Status> {
        let req = req.into_inner();
        for (field, value) in [
            ("shards", req.shards),
            ("replication_factor", req.replication_factor),
        ] {
            if value.is_some_and(|v| v != 1) {
                return Err(invalid(
                    field,
                    "needs cluster mode (quiver serve --cluster); a single node holds one copy of one shard",
                ));
            }
        }
        let new = NewCollection::try_from(req)?;
        validate_name("name", &new.name)?;
        if new.config.dim > self.limits.max_dimension {
            return Err(invalid(
                "dimension",
                format!(
                    "{} exceeds the server limit of {}",
                    new.config.dim, self.limits.max_dimension
                ),
            ));
        }
        let registry = self.registry.clone();
        let c = tokio::task::spawn_blocking(move || {
            registry
                .create(&new.name, new.config)
                .map(|c| collection_info(&new.name, &c))
        })
        .await
        .map_err(join_error)??;
        tracing::info!(collection = %c.name, "created collection");
        Ok(Response::new(pb::CreateCollectionResponse {
            collection: Some(c),
        }))
    }

    async fn drop(
        &self,
        req: Request<pb::DropCollectionRequest>,
    ) -> Result<Response<pb::DropCollectionResponse>, Status> {
        let name = req.into_inner().name;
        validate_name("name", &name)?;
        let registry = self.registry.clone();
        let dropped = name.clone();
        tokio::task::spawn_blocking(move || registry.drop_collection(&dropped))
            .await
            .map_err(join_error)??;
        tracing::info!(collection = %name, "dropped collection");
        Ok(Response::new(pb::DropCollectionResponse {}))
    }

    async fn list(
        &self,
        _req: Request<pb::ListCollectionsRequest>,
    ) -> Result<Response<pb::ListCollectionsResponse>, Status> {
        Ok(Response::new(pb::ListCollectionsResponse {
            names: self.registry.names(),
        }))
    }

    async fn describe(
        &self,
        req: Request<pb::DescribeCollectionRequest>,
    ) -> Result<Response<pb::DescribeCollectionResponse>, Status> {
        let name = &req.get_ref().name;
        validate_name("name", name)?;
        let c = self.registry.get(name)?;
        Ok(Response::new(pb::DescribeCollectionResponse {
            collection: Some(collection_info(name, &c)),
        }))
    }

    async fn create_field_index(
        &self,
        req: Request<pb::CreateFieldIndexRequest>,
    ) -> Result<Response<pb::CreateFieldIndexResponse>, Status> {
        let r = req.into_inner();
        validate_name("collection", &r.collection)?;
        let c = self.registry.get(&r.collection)?;
        let field = r.field.ok_or_else(|| invalid("field", "required"))?;
        if field.key.is_empty() {
            return Err(invalid("field.key", "must not be empty"));
        }
        let kind = field_type_from_pb(field.r#type, "field.type")?;
        let key = field.key.clone();
        tokio::task::spawn_blocking(move || c.create_field_index(&key, kind))
            .await
            .map_err(join_error)?
            .map_err(|e| match e {
                CollectionError::InvalidArgument { field, message } => {
                    invalid(&format!("field.{field}"), message)
                }
                other => other.into(),
            })?;
        tracing::info!(collection = %r.collection, key = %field.key, kind = kind.as_str(), "created payload index");
        Ok(Response::new(pb::CreateFieldIndexResponse {}))
    }

    async fn drop_field_index(
        &self,
        req: Request<pb::DropFieldIndexRequest>,
    ) -> Result<Response<pb::DropFieldIndexResponse>, Status> {
        let r = req.into_inner();
        validate_name("collection", &r.collection)?;
        let c = self.registry.get(&r.collection)?;
        let key = r.key.clone();
        let dropped = tokio::task::spawn_blocking(move || c.drop_field_index(&key))
            .await
            .map_err(join_error)??;
        if !dropped {
            return Err(Status::not_found(format!(
                "key: field {:?} is not indexed",
                r.key
            )));
        }
        Ok(Response::new(pb::DropFieldIndexResponse {}))
    }
}
