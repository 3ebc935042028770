//! Service account and management key domain types.

use crate::ids::{KeyId, ServiceAccountId, TeamId};
use crate::policy::Role;
use crate::time::{Millis, now_ms, to_timestamp, to_timestamp_opt};
use crate::tokens::{ExpiryChoice, expiry_from};
use keygate_contracts::{FieldError, FieldErrors, names};
use keygate_proto::v1 as pb;
use serde::Serialize;

/// What a service account may do beyond its team role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Capability {
    #[default]
    None,
    /// May follow the change feed (kv-sync).
    Sync,
    /// May report gateway usage.
    Gateway,
}

impl Capability {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "",
            Self::Sync => "sync",
            Self::Gateway => "gateway",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" => Self::None,
            "sync" => Self::Sync,
            "gateway" => Self::Gateway,
            _ => return None,
        })
    }

    pub fn from_pb(v: i32) -> Result<Self, keygate_contracts::FieldError> {
        match pb::ServiceAccountCapability::try_from(v) {
            Ok(pb::ServiceAccountCapability::Unspecified) => Ok(Self::None),
            Ok(pb::ServiceAccountCapability::Sync) => Ok(Self::Sync),
            Ok(pb::ServiceAccountCapability::Gateway) => Ok(Self::Gateway),
            Err(_) => Err(keygate_contracts::FieldError::new(
                "capability",
                "must be UNSPECIFIED, SYNC or GATEWAY",
            )),
        }
    }

    pub fn to_pb(self) -> pb::ServiceAccountCapability {
        match self {
            Self::None => pb::ServiceAccountCapability::Unspecified,
            Self::Sync => pb::ServiceAccountCapability::Sync,
            Self::Gateway => pb::ServiceAccountCapability::Gateway,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceAccount {
    pub id: ServiceAccountId,
    pub team_id: TeamId,
    pub name: String,
    pub description: String,
    pub role: Role,
    pub capability: Capability,
    pub created_at: Millis,
    pub created_by: String,
}

impl From<ServiceAccount> for pb::ServiceAccount {
    fn from(s: ServiceAccount) -> Self {
        Self {
            id: s.id.0,
            team_id: s.team_id.0,
            name: s.name,
            description: s.description,
            role: s.role.to_pb() as i32,
            created_at: Some(to_timestamp(s.created_at)),
            created_by: s.created_by,
            capability: s.capability.to_pb() as i32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewServiceAccount {
    pub id: ServiceAccountId,
    pub team_id: TeamId,
    pub name: String,
    pub description: String,
    pub role: Role,
    pub capability: Capability,
}

/// A management key row (only its hash is stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagementKey {
    pub id: KeyId,
    pub service_account_id: Option<ServiceAccountId>,
    pub name: String,
    pub preview: String,
    pub is_bootstrap: bool,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub revoked_at: Option<Millis>,
    pub last_used_at: Option<Millis>,
    pub replaced_by_id: Option<KeyId>,
}

impl From<ManagementKey> for pb::ManagementKey {
    fn from(k: ManagementKey) -> Self {
        Self {
            id: k.id.0,
            service_account_id: k.service_account_id.map(|s| s.0).unwrap_or_default(),
            name: k.name,
            preview: k.preview,
            created_at: Some(to_timestamp(k.created_at)),
            expires_at: to_timestamp_opt(k.expires_at),
            revoked_at: to_timestamp_opt(k.revoked_at),
            last_used_at: to_timestamp_opt(k.last_used_at),
            replaced_by_id: k.replaced_by_id.map(|i| i.0).unwrap_or_default(),
        }
    }
}

/// A new management key to insert.
#[derive(Debug, Clone)]
pub struct NewManagementKey {
    pub id: KeyId,
    pub service_account_id: Option<ServiceAccountId>,
    pub name: String,
    pub key_hash: String,
    pub preview: String,
    pub is_bootstrap: bool,
    pub expires_at: Option<Millis>,
}

/// Parses a service account id field.
pub fn parse_service_account_id(field: &str, v: &str) -> Result<ServiceAccountId, FieldError> {
    if v.starts_with("sa_") && v.len() == 35 {
        Ok(ServiceAccountId(v.to_owned()))
    } else {
        Err(FieldError::new(
            field,
            "must be a service account id (sa_ followed by 32 hex digits)",
        ))
    }
}

/// Validated CreateServiceAccount input.
#[derive(Debug, Clone)]
pub struct CreateServiceAccountInput {
    pub team_id: TeamId,
    /// Trimmed.
    pub name: String,
    pub description: String,
    pub role: Role,
    pub capability: Capability,
}

/// Every rule a CreateServiceAccount request breaks is reported, not only the first.
impl TryFrom<pb::CreateServiceAccountRequest> for CreateServiceAccountInput {
    type Error = FieldErrors;

    fn try_from(r: pb::CreateServiceAccountRequest) -> Result<Self, FieldErrors> {
        let mut v = FieldErrors::new();
        v.check(names::validate_team_id("team_id", &r.team_id));
        v.check(names::validate_text("name", &r.name, 100, true, false));
        v.check(names::validate_text(
            "description",
            &r.description,
            1000,
            false,
            true,
        ));
        let role = v.check(Role::from_pb("role", r.role));
        let capability = v.check(Capability::from_pb(r.capability));
        match (role, capability) {
            (Some(role), Some(capability)) if v.is_empty() => Ok(Self {
                team_id: TeamId(r.team_id),
                name: r.name.trim().to_owned(),
                description: r.description,
                role,
                capability,
            }),
            _ => Err(v),
        }
    }
}

/// Validated CreateKey input.
#[derive(Debug, Clone)]
pub struct CreateKeyInput {
    pub service_account_id: ServiceAccountId,
    /// Trimmed.
    pub name: String,
    pub expires_at: Option<Millis>,
}

/// Every rule a CreateKey request breaks is reported, not only the first.
impl TryFrom<pb::CreateKeyRequest> for CreateKeyInput {
    type Error = FieldErrors;

    fn try_from(r: pb::CreateKeyRequest) -> Result<Self, FieldErrors> {
        let mut v = FieldErrors::new();
        let id = v.check(parse_service_account_id(
            "service_account_id",
            &r.service_account_id,
        ));
        v.check(names::validate_text("name", &r.name, 100, true, false));
        let choice = r.expiry.map(|e| match e {
            pb::create_key_request::Expiry::ExpiresInDays(d) => ExpiryChoice::Days(d),
            pb::create_key_request::Expiry::NeverExpires(b) => ExpiryChoice::Never(b),
        });
        let expires_at = v.check(expiry_from(choice, now_ms()));
        match (id, expires_at) {
            (Some(service_account_id), Some(expires_at)) if v.is_empty() => Ok(Self {
                service_account_id,
                name: r.name.trim().to_owned(),
                expires_at,
            }),
            _ => Err(v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_reports_every_field() {
        let e = CreateServiceAccountInput::try_from(pb::CreateServiceAccountRequest {
            team_id: "Bad".into(),
            name: String::new(),
            description: String::new(),
            role: 0,
            capability: 99,
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["team_id", "name", "role", "capability"]);
        let e = CreateKeyInput::try_from(pb::CreateKeyRequest {
            service_account_id: "nope".into(),
            name: " ".into(),
            expiry: None,
        })
        .unwrap_err();
        assert_eq!(e.fields(), ["service_account_id", "name", "expiry"]);
    }
}
