//! `AlertService` RPCs: validate, ask policy, seal the signing secret, call the store, map
//! the error. TestWebhook is the one handler that calls a webhook.

use super::AlertSettings;
use super::deliver::{self, check_literal, secret_aad};
use super::model::{
    Alert, AlertRule, AlertRuleFilter, AlertRulePatch, Condition, CreateAlertRuleInput,
    DELIVERIES_PAGE_KIND, DeliveryFilter, NewAlertRule, RULES_PAGE_KIND, WEBHOOK_SECRET_PREFIX,
    parse_rule_id, parse_update,
};
use crate::authz;
use crate::context::{self, Actor, RequestContext};
use crate::error::{ApiError, ApiResult};
use crate::ids::{AlertRuleId, TeamId};
use crate::pagination;
use crate::policy::{Action, Caller};
use crate::secrets::{MasterKey, SecretString};
use crate::store::{DynStore, StoreError};
use crate::time::now_ms;
use keygate_contracts::FieldError;
use keygate_contracts::token::NewToken;
use keygate_proto::v1 as pb;
use keygate_proto::v1::alert_service_server::AlertService;
use tonic::{Request, Response, Status};

pub struct AlertApi {
    store: DynStore,
    key: MasterKey,
    settings: AlertSettings,
}

impl AlertApi {
    pub fn new(store: DynStore, key: MasterKey, settings: AlertSettings) -> Self {
        Self {
            store,
            key,
            settings,
        }
    }

    /// A new `whsec_...` secret and its sealed form for rule `id`.
    fn new_secret(&self, id: &AlertRuleId) -> (String, String) {
        let secret = NewToken::generate(WEBHOOK_SECRET_PREFIX);
        let plaintext = secret.expose().to_owned();
        let sealed = self
            .key
            .seal(&secret_aad(id), &SecretString::new(plaintext.clone()));
        (plaintext, sealed)
    }

    /// A route condition may only name a route of the rule's own team.
    async fn check_route(&self, team: &TeamId, condition: &Condition) -> ApiResult<()> {
        let Some(name) = condition.route() else {
            return Ok(());
        };
        let field = format!("condition.{}.route", condition.kind());
        match self.store.get_route(name).await {
            Ok(route) if route.team_id == *team => Ok(()),
            Ok(_) | Err(StoreError::NotFound { .. }) => Err(FieldError::new(
                field,
                format!("team \"{team}\" owns no route named \"{name}\""),
            )
            .into()),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads the rule and asks policy whether `caller` may change it (to `condition`).
    async fn may_manage(
        &self,
        ctx: &RequestContext,
        caller: &Caller,
        id: &AlertRuleId,
        new_condition: Option<&Condition>,
        attempted: &'static str,
    ) -> Result<AlertRule, Status> {
        let rule = self
            .store
            .get_alert_rule(id)
            .await
            .map_err(ApiError::from)?;
        let system_wide =
            rule.condition.system_wide() || new_condition.is_some_and(Condition::system_wide);
        authz::change(
            &self.store,
            ctx,
            caller,
            Action::ManageAlerts {
                team: &rule.team_id,
                system_wide,
            },
            attempted,
            id.as_str(),
        )
        .await?;
        Ok(rule)
    }
}

#[tonic::async_trait]
impl AlertService for AlertApi {
    async fn create_alert_rule(
        &self,
        req: Request<pb::CreateAlertRuleRequest>,
    ) -> Result<Response<pb::CreateAlertRuleResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let input = CreateAlertRuleInput::try_from(req.into_inner()).map_err(ApiError::from)?;
        check_literal("webhook_url", &input.webhook_url, &self.settings.allow)
            .map_err(ApiError::from)?;
        authz::change(
            &self.store,
            &ctx,
            &caller,
            Action::ManageAlerts {
                team: &input.team_id,
                system_wide: input.condition.system_wide(),
            },
            "alert_rule.create",
            input.team_id.as_str(),
        )
        .await?;
        self.check_route(&input.team_id, &input.condition).await?;
        let id = AlertRuleId::generate();
        let (secret, sealed) = self.new_secret(&id);
        let rule = self
            .store
            .create_alert_rule(
                &ctx,
                NewAlertRule {
                    id,
                    team_id: input.team_id,
                    name: input.name,
                    enabled: input.enabled,
                    webhook_url: input.webhook_url.to_string(),
                    condition: input.condition,
                    secret_sealed: sealed,
                },
            )
            .await
            .map_err(ApiError::from)?;
        tracing::info!(rule_id = %rule.id, team = %rule.team_id, kind = rule.condition.kind(), "alert rule created");
        Ok(Response::new(pb::CreateAlertRuleResponse {
            rule: Some(rule.into()),
            webhook_secret: secret,
        }))
    }

    async fn get_alert_rule(
        &self,
        req: Request<pb::GetAlertRuleRequest>,
    ) -> Result<Response<pb::GetAlertRuleResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let id = parse_rule_id("id", &req.get_ref().id).map_err(ApiError::from)?;
        let rule = self
            .store
            .get_alert_rule(&id)
            .await
            .map_err(ApiError::from)?;
        authz::read(&caller, Action::ReadAlerts(&rule.team_id))?;
        Ok(Response::new(pb::GetAlertRuleResponse {
            rule: Some(rule.into()),
        }))
    }

    async fn list_alert_rules(
        &self,
        req: Request<pb::ListAlertRulesRequest>,
    ) -> Result<Response<pb::ListAlertRulesResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let mut filter = AlertRuleFilter::try_from(req.into_inner()).map_err(ApiError::from)?;
        if let Some(team) = &filter.team_id {
            authz::read(&caller, Action::ReadAlerts(team))?;
        }
        filter.visible_teams = caller.visible_teams();
        let page = self
            .store
            .list_alert_rules(&filter)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => pagination::encode(
                RULES_PAGE_KIND,
                &[last.created_at.to_string(), last.id.0.clone()],
            ),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAlertRulesResponse {
            rules: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn update_alert_rule(
        &self,
        req: Request<pb::UpdateAlertRuleRequest>,
    ) -> Result<Response<pb::UpdateAlertRuleResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let (id, input) = parse_update(req.into_inner()).map_err(ApiError::from)?;
        if let Some(url) = &input.webhook_url {
            check_literal("webhook_url", url, &self.settings.allow).map_err(ApiError::from)?;
        }
        let current = self
            .may_manage(
                &ctx,
                &caller,
                &id,
                input.condition.as_ref(),
                "alert_rule.update",
            )
            .await?;
        if let Some(c) = &input.condition {
            self.check_route(&current.team_id, c).await?;
        }
        let (secret, sealed) = if input.rotate_secret {
            let (s, sealed) = self.new_secret(&id);
            (s, Some(sealed))
        } else {
            (String::new(), None)
        };
        let rule = self
            .store
            .update_alert_rule(
                &ctx,
                &id,
                AlertRulePatch {
                    name: input.name,
                    enabled: input.enabled,
                    webhook_url: input.webhook_url.map(|u| u.to_string()),
                    condition: input.condition,
                    secret_sealed: sealed,
                },
            )
            .await
            .map_err(ApiError::from)?;
        if input.rotate_secret {
            tracing::info!(rule_id = %rule.id, "alert rule signing secret rotated");
        }
        Ok(Response::new(pb::UpdateAlertRuleResponse {
            rule: Some(rule.into()),
            webhook_secret: secret,
        }))
    }

    async fn delete_alert_rule(
        &self,
        req: Request<pb::DeleteAlertRuleRequest>,
    ) -> Result<Response<pb::DeleteAlertRuleResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = parse_rule_id("id", &req.get_ref().id).map_err(ApiError::from)?;
        self.may_manage(&ctx, &caller, &id, None, "alert_rule.delete")
            .await?;
        self.store
            .delete_alert_rule(&ctx, &id)
            .await
            .map_err(ApiError::from)?;
        tracing::info!(rule_id = %id, "alert rule deleted");
        Ok(Response::new(pb::DeleteAlertRuleResponse {}))
    }

    async fn list_alert_deliveries(
        &self,
        req: Request<pb::ListAlertDeliveriesRequest>,
    ) -> Result<Response<pb::ListAlertDeliveriesResponse>, Status> {
        let (caller, _) = context::caller(&req)?;
        let mut filter = DeliveryFilter::try_from(req.into_inner()).map_err(ApiError::from)?;
        if let Some(rule) = &filter.rule_id {
            let rule = self
                .store
                .get_alert_rule(rule)
                .await
                .map_err(ApiError::from)?;
            authz::read(&caller, Action::ReadAlerts(&rule.team_id))?;
        }
        if let Some(team) = &filter.team_id {
            authz::read(&caller, Action::ReadAlerts(team))?;
        }
        filter.visible_teams = caller.visible_teams();
        let page = self
            .store
            .list_alert_deliveries(&filter)
            .await
            .map_err(ApiError::from)?;
        let next_page_token = match (page.more, page.items.last()) {
            (true, Some(last)) => pagination::encode(
                DELIVERIES_PAGE_KIND,
                &[last.attempted_at.to_string(), last.id.0.clone()],
            ),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAlertDeliveriesResponse {
            deliveries: page.items.into_iter().map(Into::into).collect(),
            next_page_token,
        }))
    }

    async fn test_webhook(
        &self,
        req: Request<pb::TestWebhookRequest>,
    ) -> Result<Response<pb::TestWebhookResponse>, Status> {
        let (caller, ctx) = context::caller(&req)?;
        let id = parse_rule_id("rule_id", &req.get_ref().rule_id).map_err(ApiError::from)?;
        let rule = self
            .may_manage(&ctx, &caller, &id, None, "alert_rule.test")
            .await?;
        let now = now_ms();
        let mut alert = Alert::new(
            &rule,
            "test",
            format!(
                "Test alert for rule \"{}\" ({}), sent by {}",
                rule.name, rule.id, caller.actor.name
            ),
            serde_json::json!({"requested_by": caller.reference()}),
            now,
            true,
        );
        // Tried here and now, never by the evaluator.
        alert.next_attempt_at = None;
        self.store
            .record_evaluation(&rule.id, &[], std::slice::from_ref(&alert))
            .await
            .map_err(ApiError::from)?;
        // Deliveries are the control plane's doing: audited with the system as actor (and
        // this request's id, which ties the row to the caller's request).
        let system = ctx.as_actor(Actor::system());
        let delivery = deliver::attempt(
            &self.store,
            &self.key,
            &self.settings.allow,
            &alert,
            now,
            &system,
        )
        .await
        .map_err(ApiError::from)?;
        Ok(Response::new(pb::TestWebhookResponse {
            delivery: Some(delivery.into()),
        }))
    }
}
