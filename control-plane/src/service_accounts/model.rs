//! Service account and management key domain types.

use crate::ids::{KeyId, ServiceAccountId, TeamId};
use crate::policy::Role;
use crate::time::{Millis, to_timestamp, to_timestamp_opt};
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
