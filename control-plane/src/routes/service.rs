//! `RouteService` RPCs: validate, seal secrets, call the store, map the error.

use super::model::{AuthChange, AuthInput, CreateRouteInput, RouteFilter, RoutePatch};
use crate::authz;
use crate::context;
use crate::error::ApiError;
use crate::ids::RouteId;
use crate::policy::Action;
use crate::secrets::MasterKey;
use crate::store::DynStore;
use keygate_proto::v1 as pb;
use keygate_proto::v1::route_service_server::RouteService;
use tonic::{Request, Response, Status};

pub struct RouteApi {
    store: DynStore,
    key: MasterKey,
}

impl RouteApi {
    pub fn new(store: DynStore, key: MasterKey) -> Self {
        Self { store, key }
    }
    fn seal(&self, route: &RouteId, a: AuthInput) -> AuthChange {
        a.seal(&self.key, route)
    }
}

#[tonic::async_trait]
impl RouteService for RouteApi {
    async fn create_route(
        &self,
        req: Request<pb::CreateRouteRequest>,
    ) -> Result<Response<pb::CreateRouteResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let input = CreateRouteInput::try_from(req.into_inner()).map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::CreateRoute(&input.team_id),
            "route.create",
            &input.name,
        )
        .await?;
        let route = input.into_new_route(RouteId::generate(), &self.key);
        let route = self
            .store
            .create_route(&ctx, route)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(route = %route.name, path = %route.path_prefix, "route created");
        Ok(Response::new(pb::CreateRouteResponse {
            route: Some(route.to_pb_for(&caller)),
        }))
    }

    async fn get_route(
        &self,
        req: Request<pb::GetRouteRequest>,
    ) -> Result<Response<pb::GetRouteResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadRoutes)?;
        let id = &req.get_ref().id;
        if id.is_empty() {
            return Err(ApiError::invalid("id", "is required (route id or name)").into());
        }
        let route = self.store.get_route(id).await.map_err(ApiError::from)?;
        Ok(Response::new(pb::GetRouteResponse {
            route: Some(route.to_pb_for(&caller)),
        }))
    }

    async fn list_routes(
        &self,
        req: Request<pb::ListRoutesRequest>,
    ) -> Result<Response<pb::ListRoutesResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadRoutes)?;
        let filter = RouteFilter::try_from(req.into_inner()).map_err(ApiError::from)?;
        let (page, total_size) = futures::try_join!(
            self.store.list_routes(&filter),
            self.store.count_routes(&filter)
        )
        .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => filter.next_token(last),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListRoutesResponse {
            routes: page
                .items
                .into_iter()
                .map(|r| r.to_pb_for(&caller))
                .collect(),
            next_page_token,
            total_size,
        }))
    }

    async fn update_route(
        &self,
        req: Request<pb::UpdateRouteRequest>,
    ) -> Result<Response<pb::UpdateRouteResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let (id_or_name, input) =
            super::model::parse_update(req.into_inner()).map_err(ApiError::from)?;
        let current = self
            .store
            .get_route(&id_or_name)
            .await
            .map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            current.change_action(&caller),
            "route.update",
            current.id.as_str(),
        )
        .await?;
        let patch = RoutePatch {
            name: input.name,
            path_prefix: input.path_prefix,
            backend_url: input.backend_url,
            description: input.description,
            tags: input.tags,
            methods: input.methods,
            strip_prefix: input.strip_prefix,
            timeout_ms: input.timeout_ms,
            auth: input.auth.map(|a| self.seal(&current.id, a)),
            allowed_team_ids: input.allowed_team_ids,
            cors_origins: input.cors_origins,
            rate_limit_per_minute: input.rate_limit_per_minute,
        };
        let route = self
            .store
            .update_route(&ctx, &current.id, patch)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::UpdateRouteResponse {
            route: Some(route.to_pb_for(&caller)),
        }))
    }

    async fn delete_route(
        &self,
        req: Request<pb::DeleteRouteRequest>,
    ) -> Result<Response<pb::DeleteRouteResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = &req.get_ref().id;
        if id.is_empty() {
            return Err(ApiError::invalid("id", "is required (route id or name)").into());
        }
        let current = self.store.get_route(id).await.map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            current.change_action(&caller),
            "route.delete",
            current.id.as_str(),
        )
        .await?;
        let route = self
            .store
            .delete_route(&ctx, &current.id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(route = %route.name, "route deleted");
        Ok(Response::new(pb::DeleteRouteResponse {
            route: Some(route.to_pb_for(&caller)),
        }))
    }

    async fn list_route_tags(
        &self,
        req: Request<pb::ListRouteTagsRequest>,
    ) -> Result<Response<pb::ListRouteTagsResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        authz::read(&caller, Action::ReadRoutes)?;
        let tags = self.store.list_route_tags().await.map_err(ApiError::from)?;
        Ok(Response::new(pb::ListRouteTagsResponse {
            tags: tags
                .into_iter()
                .map(|(tag, route_count)| pb::RouteTag { tag, route_count })
                .collect(),
        }))
    }
}
