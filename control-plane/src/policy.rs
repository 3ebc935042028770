//! The one place that answers "may this caller do this action on this resource". Every RPC
//! handler asks [`check`] before it changes or reveals anything; the UI only hides what this
//! would refuse.
//!
//! The rules (per-team roles ADMIN > MANAGER > DEVELOPER > VIEWER, as in the old system's
//! matrix, with its escalation holes closed):
//! - a system admin may do everything;
//! - ADMIN manages the team, its members, invitations, service accounts and all its resources;
//! - MANAGER manages DEVELOPER/VIEWER members (never an ADMIN or MANAGER, never granting
//!   those roles) and all the team's resources;
//! - DEVELOPER creates tokens and routes and changes only its own;
//! - VIEWER reads;
//! - routes are a shared catalogue every signed-in caller may read (never secrets);
//! - service accounts act with their role in their one team on resources only: they never
//!   manage people, invitations, other service accounts, or create teams;
//! - capabilities add one power each: SYNC follows the change feed, GATEWAY reports usage
//!   (IngestUsage). Usage events are read like tokens: VIEWER+ of their team. A SYNC
//!   account calls nothing but the sync service ([`may_call`]).
//! - alert rules and their deliveries are read by VIEWER+ of the rule's team and created,
//!   changed, deleted and tested by MANAGER+; rules with a system-wide condition (sync lag,
//!   gateway health) only by system admins.

use crate::context::Actor;
use crate::ids::{KeyId, ServiceAccountId, SessionId, TeamId, UserId};
use crate::service_accounts::Capability;
use keygate_contracts::FieldError;
use keygate_proto::v1 as pb;
use serde::Serialize;
use std::collections::BTreeMap;

/// A per-team role, ordered so that `Admin > Manager > Developer > Viewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Role {
    Viewer,
    Developer,
    Manager,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "VIEWER",
            Self::Developer => "DEVELOPER",
            Self::Manager => "MANAGER",
            Self::Admin => "ADMIN",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "VIEWER" => Self::Viewer,
            "DEVELOPER" => Self::Developer,
            "MANAGER" => Self::Manager,
            "ADMIN" => Self::Admin,
            _ => return None,
        })
    }

    /// From the wire enum; `field` names it in the error.
    pub fn from_pb(field: &str, v: i32) -> Result<Self, FieldError> {
        match pb::Role::try_from(v) {
            Ok(pb::Role::Viewer) => Ok(Self::Viewer),
            Ok(pb::Role::Developer) => Ok(Self::Developer),
            Ok(pb::Role::Manager) => Ok(Self::Manager),
            Ok(pb::Role::Admin) => Ok(Self::Admin),
            _ => Err(FieldError::new(
                field,
                "must be ADMIN, MANAGER, DEVELOPER or VIEWER",
            )),
        }
    }

    pub fn to_pb(self) -> pb::Role {
        match self {
            Self::Viewer => pb::Role::Viewer,
            Self::Developer => pb::Role::Developer,
            Self::Manager => pb::Role::Manager,
            Self::Admin => pb::Role::Admin,
        }
    }

    /// Roles a MANAGER may hand out or touch.
    fn below_manager(self) -> bool {
        self <= Self::Developer
    }
}

/// How the caller authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    User { id: UserId, session: SessionId },
    ServiceAccount { id: ServiceAccountId, key: KeyId },
}

/// The authenticated caller with everything policy needs.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub principal: Principal,
    pub system_admin: bool,
    pub roles: BTreeMap<TeamId, Role>,
    /// A service account's capability (`None` for people).
    pub capability: Capability,
}

impl Caller {
    pub fn role(&self, team: &TeamId) -> Option<Role> {
        self.roles.get(team).copied()
    }

    /// The user id, if a person is calling.
    pub fn user_id(&self) -> Option<&UserId> {
        match &self.principal {
            Principal::User { id, .. } => Some(id),
            Principal::ServiceAccount { .. } => None,
        }
    }

    fn is_user(&self) -> bool {
        self.user_id().is_some()
    }

    /// Teams whose tokens and audit rows the caller may read; `None` means all (system admin).
    pub fn visible_teams(&self) -> Option<Vec<TeamId>> {
        (!self.system_admin).then(|| self.roles.keys().cloned().collect())
    }

    /// Teams where the caller holds at least `min`.
    pub fn teams_with(&self, min: Role) -> Vec<TeamId> {
        self.roles
            .iter()
            .filter(|(_, r)| **r >= min)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// `created_by` value of things this caller creates.
    pub fn reference(&self) -> String {
        self.actor.reference()
    }
}

/// Something a caller wants to do, with the facts about the target that the rules need.
#[derive(Debug, Clone)]
pub enum Action<'a> {
    // Teams and membership
    ReadTeams,
    CreateTeam,
    UpdateTeam(&'a TeamId),
    DeleteTeam(&'a TeamId),
    ClaimTeam {
        team: &'a TeamId,
        has_members: bool,
    },
    ListMembers(&'a TeamId),
    AddMember {
        team: &'a TeamId,
        role: Role,
    },
    ChangeMemberRole {
        team: &'a TeamId,
        current: Role,
        new: Role,
    },
    RemoveMember {
        team: &'a TeamId,
        current: Role,
        is_self: bool,
    },
    // Tokens (owned: created by this caller)
    ReadTokens(&'a TeamId),
    CreateToken(&'a TeamId),
    ChangeToken {
        team: &'a TeamId,
        owned: bool,
    },
    // Routes
    ReadRoutes,
    CreateRoute(&'a TeamId),
    ChangeRoute {
        team: &'a TeamId,
        owned: bool,
    },
    // Audit
    ReadAudit(&'a TeamId),
    ReadGlobalAudit,
    // People
    ListUsers,
    ReadUser {
        is_self: bool,
        manages_them: bool,
    },
    RenameUser {
        is_self: bool,
    },
    SetSystemAdmin,
    DisableUser,
    // Invitations
    Invite {
        team: &'a TeamId,
        role: Role,
    },
    ListInvitations(&'a TeamId),
    // Service accounts
    ManageServiceAccount {
        team: &'a TeamId,
        role: Role,
    },
    ReadServiceAccounts(&'a TeamId),
    /// Creating a service account with a capability (sync, gateway).
    GrantCapability,
    // The change feed
    FollowFeed,
    ManageSync,
    // Usage
    /// Reporting a gateway's usage events (IngestUsage).
    IngestUsage,
    /// A gateway asking for one token's edge record (LookupEdgeToken).
    LookupEdgeToken,
    /// Reading a team's usage events.
    ReadUsage(&'a TeamId),
    /// Reading every gateway's totals.
    ReadGateways,
    // System
    /// Reading the system's health: database, schema, sync followers, gateways.
    ReadSystemStatus,

    // Alerts
    /// Reading a team's alert rules and their deliveries.
    ReadAlerts(&'a TeamId),
    /// Creating, changing, deleting or testing an alert rule of `team`; `system_wide` when
    /// the rule's condition (before or after the change) is about the whole system.
    ManageAlerts {
        team: &'a TeamId,
        system_wide: bool,
    },
}

/// Why a call was refused. The text is safe for clients (no secrets, no token scopes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("permission denied: {0}")]
pub struct Denied(pub String);

fn deny<T>(why: impl Into<String>) -> Result<T, Denied> {
    Err(Denied(why.into()))
}

/// The rules. Returns `Ok(())` when allowed.
pub fn check(c: &Caller, action: &Action<'_>) -> Result<(), Denied> {
    use Action::*;
    if c.system_admin {
        return Ok(());
    }
    let need = |team: &TeamId, min: Role| -> Result<(), Denied> {
        match c.role(team) {
            Some(r) if r >= min => Ok(()),
            Some(_) => deny(format!("requires {} in team \"{team}\"", min.as_str())),
            None => deny(format!("not a member of team \"{team}\"")),
        }
    };
    let people_manager = |what: &str| -> Result<(), Denied> {
        if c.is_user() {
            Ok(())
        } else {
            deny(format!("service accounts cannot {what}"))
        }
    };
    match action {
        ReadTeams | ReadRoutes => Ok(()),
        CreateTeam => {
            people_manager("create teams")?;
            if c.roles.values().any(|r| *r == Role::Admin) {
                Ok(())
            } else {
                deny("creating a team requires ADMIN in some team")
            }
        }
        UpdateTeam(t) | DeleteTeam(t) => need(t, Role::Admin),
        ClaimTeam { team, has_members } => {
            people_manager("claim teams")?;
            if *has_members {
                return deny(format!("team \"{team}\" has members and cannot be claimed"));
            }
            if c.roles.iter().any(|(t, r)| t != *team && *r == Role::Admin) {
                Ok(())
            } else {
                deny("claiming a team requires ADMIN in another team")
            }
        }
        ListMembers(t) | ReadTokens(t) | ReadAudit(t) | ReadUsage(t) | ReadAlerts(t) => {
            need(t, Role::Viewer)
        }
        ManageAlerts { team, system_wide } => {
            if *system_wide {
                deny("system-wide alert conditions require a system admin")
            } else {
                need(team, Role::Manager)
            }
        }
        AddMember { team, role } | Invite { team, role } => {
            people_manager("manage members")?;
            need(team, Role::Manager)?;
            if c.role(team) == Some(Role::Admin) || role.below_manager() {
                Ok(())
            } else {
                deny(format!("only an ADMIN may grant {}", role.as_str()))
            }
        }
        ChangeMemberRole { team, current, new } => {
            people_manager("manage members")?;
            need(team, Role::Manager)?;
            if c.role(team) == Some(Role::Admin) || (current.below_manager() && new.below_manager())
            {
                Ok(())
            } else {
                deny("a MANAGER may only change DEVELOPER and VIEWER members between those roles")
            }
        }
        RemoveMember {
            team,
            current,
            is_self,
        } => {
            people_manager("manage members")?;
            if *is_self && c.role(team).is_some() {
                return Ok(());
            }
            need(team, Role::Manager)?;
            if c.role(team) == Some(Role::Admin) || current.below_manager() {
                Ok(())
            } else {
                deny("a MANAGER may only remove DEVELOPER and VIEWER members")
            }
        }
        CreateToken(t) | CreateRoute(t) => need(t, Role::Developer),
        ChangeToken { team, owned } | ChangeRoute { team, owned } => match c.role(team) {
            Some(r) if r >= Role::Manager => Ok(()),
            Some(Role::Developer) if *owned => Ok(()),
            Some(Role::Developer) => deny("a DEVELOPER may only change what it created"),
            Some(_) => deny(format!("requires DEVELOPER in team \"{team}\"")),
            None => deny(format!("not a member of team \"{team}\"")),
        },
        ReadGlobalAudit | SetSystemAdmin | DisableUser | ReadGateways | ReadSystemStatus => {
            deny("requires a system admin")
        }
        ListUsers => {
            people_manager("list users")?;
            if c.roles.values().any(|r| *r >= Role::Manager) {
                Ok(())
            } else {
                deny("listing users requires ADMIN or MANAGER in some team")
            }
        }
        ReadUser {
            is_self,
            manages_them,
        } => {
            if *is_self || *manages_them {
                Ok(())
            } else {
                deny("you may only see yourself and members of teams you manage")
            }
        }
        RenameUser { is_self } => {
            if *is_self {
                Ok(())
            } else {
                deny("you may only rename yourself")
            }
        }
        ListInvitations(t) => {
            people_manager("manage invitations")?;
            need(t, Role::Manager)
        }
        ManageServiceAccount { team, role } => {
            people_manager("manage service accounts")?;
            need(team, Role::Manager)?;
            if c.role(team) == Some(Role::Admin) || role.below_manager() {
                Ok(())
            } else {
                deny(format!(
                    "only an ADMIN may manage {} service accounts",
                    role.as_str()
                ))
            }
        }
        ReadServiceAccounts(t) => need(t, Role::Manager),
        GrantCapability | ManageSync => deny("requires a system admin"),
        FollowFeed => {
            if c.capability == Capability::Sync {
                Ok(())
            } else {
                deny(
                    "following the change feed requires a service account with the SYNC capability",
                )
            }
        }
        IngestUsage => {
            if c.capability == Capability::Gateway {
                Ok(())
            } else {
                deny("reporting usage requires a service account with the GATEWAY capability")
            }
        }
        LookupEdgeToken => {
            if c.capability == Capability::Gateway {
                Ok(())
            } else {
                deny(
                    "looking up edge tokens requires a service account with the GATEWAY capability",
                )
            }
        }
    }
}

/// The one service a service account with the SYNC capability may call.
pub const SYNC_SERVICE: &str = "keygate.v1.SyncService";

/// Whether `c` may call `service` (`keygate.v1.TokenService`, ...) at all, asked by the auth
/// layer before any handler runs: a service account with the SYNC capability is kv-sync's
/// key and calls the sync service only, whatever its team role, so a leaked feed key reads
/// and changes nothing else. Inside a service [`check`] decides each call.
pub fn may_call(c: &Caller, service: &str) -> Result<(), Denied> {
    if c.capability == Capability::Sync && service != SYNC_SERVICE {
        return deny(format!(
            "a service account with the SYNC capability may only call {SYNC_SERVICE}"
        ));
    }
    Ok(())
}

/// A named permission the admin UI asks about (`GetCurrentUser`). Each stands for one
/// [`Action`] and is answered by [`check`] alone: this is a list of questions, not a second
/// copy of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    // Per team
    TeamUpdate,
    TeamDelete,
    MembersRead,
    MembersManage,
    MembersManagePrivileged,
    TokenRead,
    TokenCreate,
    TokenUpdate,
    TokenUpdateOwn,
    RouteCreate,
    RouteUpdate,
    RouteUpdateOwn,
    AuditRead,
    UsageRead,
    InvitationRead,
    InvitationCreate,
    InvitationCreatePrivileged,
    ServiceAccountRead,
    ServiceAccountManage,
    ServiceAccountManagePrivileged,
    AlertRead,
    AlertManage,
    AlertManageSystem,
    // Global
    TeamCreate,
    TeamClaim,
    UserList,
    UserManage,
    AuditReadAll,
    GatewayRead,
    SyncManage,
    ServiceAccountGrantCapability,
    SystemStatusRead,
}

impl Permission {
    /// Permissions asked per team.
    pub const TEAM: [Permission; 23] = [
        Self::TeamUpdate,
        Self::TeamDelete,
        Self::MembersRead,
        Self::MembersManage,
        Self::MembersManagePrivileged,
        Self::TokenRead,
        Self::TokenCreate,
        Self::TokenUpdate,
        Self::TokenUpdateOwn,
        Self::RouteCreate,
        Self::RouteUpdate,
        Self::RouteUpdateOwn,
        Self::AuditRead,
        Self::UsageRead,
        Self::InvitationRead,
        Self::InvitationCreate,
        Self::InvitationCreatePrivileged,
        Self::ServiceAccountRead,
        Self::ServiceAccountManage,
        Self::ServiceAccountManagePrivileged,
        Self::AlertRead,
        Self::AlertManage,
        Self::AlertManageSystem,
    ];

    /// Permissions not tied to one team.
    pub const GLOBAL: [Permission; 9] = [
        Self::TeamCreate,
        Self::TeamClaim,
        Self::UserList,
        Self::UserManage,
        Self::AuditReadAll,
        Self::GatewayRead,
        Self::SyncManage,
        Self::ServiceAccountGrantCapability,
        Self::SystemStatusRead,
    ];

    /// The wire name (`GetCurrentUserResponse`; documented in `auth.proto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TeamUpdate => "team.update",
            Self::TeamDelete => "team.delete",
            Self::MembersRead => "team.members.read",
            Self::MembersManage => "team.members.manage",
            Self::MembersManagePrivileged => "team.members.manage_privileged",
            Self::TokenRead => "token.read",
            Self::TokenCreate => "token.create",
            Self::TokenUpdate => "token.update",
            Self::TokenUpdateOwn => "token.update_own",
            Self::RouteCreate => "route.create",
            Self::RouteUpdate => "route.update",
            Self::RouteUpdateOwn => "route.update_own",
            Self::AuditRead => "audit.read",
            Self::UsageRead => "usage.read",
            Self::InvitationRead => "invitation.read",
            Self::InvitationCreate => "invitation.create",
            Self::InvitationCreatePrivileged => "invitation.create_privileged",
            Self::ServiceAccountRead => "service_account.read",
            Self::ServiceAccountManage => "service_account.manage",
            Self::ServiceAccountManagePrivileged => "service_account.manage_privileged",
            Self::AlertRead => "alert.read",
            Self::AlertManage => "alert.manage",
            Self::AlertManageSystem => "alert.manage_system",
            Self::TeamCreate => "team.create",
            Self::TeamClaim => "team.claim",
            Self::UserList => "user.list",
            Self::UserManage => "user.manage",
            Self::AuditReadAll => "audit.read_all",
            Self::GatewayRead => "gateway.read",
            Self::SyncManage => "sync.manage",
            Self::ServiceAccountGrantCapability => "service_account.grant_capability",
            Self::SystemStatusRead => "system.status.read",
        }
    }

    /// The question this permission asks, about `team` (global ones: `team` is a team the
    /// caller has no role in, which only [`Self::TeamClaim`] looks at).
    fn action(self, team: &TeamId) -> Action<'_> {
        let (low, high) = (Role::Developer, Role::Admin);
        match self {
            Self::TeamUpdate => Action::UpdateTeam(team),
            Self::TeamDelete => Action::DeleteTeam(team),
            Self::MembersRead => Action::ListMembers(team),
            Self::MembersManage => Action::AddMember { team, role: low },
            Self::MembersManagePrivileged => Action::AddMember { team, role: high },
            Self::TokenRead => Action::ReadTokens(team),
            Self::TokenCreate => Action::CreateToken(team),
            Self::TokenUpdate => Action::ChangeToken { team, owned: false },
            Self::TokenUpdateOwn => Action::ChangeToken { team, owned: true },
            Self::RouteCreate => Action::CreateRoute(team),
            Self::RouteUpdate => Action::ChangeRoute { team, owned: false },
            Self::RouteUpdateOwn => Action::ChangeRoute { team, owned: true },
            Self::AuditRead => Action::ReadAudit(team),
            Self::UsageRead => Action::ReadUsage(team),
            Self::InvitationRead => Action::ListInvitations(team),
            Self::InvitationCreate => Action::Invite { team, role: low },
            Self::InvitationCreatePrivileged => Action::Invite { team, role: high },
            Self::ServiceAccountRead => Action::ReadServiceAccounts(team),
            Self::ServiceAccountManage => Action::ManageServiceAccount { team, role: low },
            Self::ServiceAccountManagePrivileged => {
                Action::ManageServiceAccount { team, role: high }
            }
            Self::AlertRead => Action::ReadAlerts(team),
            Self::AlertManage => Action::ManageAlerts {
                team,
                system_wide: false,
            },
            Self::AlertManageSystem => Action::ManageAlerts {
                team,
                system_wide: true,
            },
            Self::TeamCreate => Action::CreateTeam,
            Self::TeamClaim => Action::ClaimTeam {
                team,
                has_members: false,
            },
            Self::UserList => Action::ListUsers,
            Self::UserManage => Action::DisableUser,
            Self::AuditReadAll => Action::ReadGlobalAudit,
            Self::GatewayRead => Action::ReadGateways,
            Self::SyncManage => Action::ManageSync,
            Self::ServiceAccountGrantCapability => Action::GrantCapability,
            Self::SystemStatusRead => Action::ReadSystemStatus,
        }
    }
}

/// What the caller may do, as named permissions: per team it has a role in, globally, and in
/// every team (also those it has no role in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub teams: Vec<(TeamId, Role, Vec<&'static str>)>,
    pub global: Vec<&'static str>,
    pub all_teams: Vec<&'static str>,
}

/// Asks [`check`] every [`Permission`] for `c`.
pub fn allowed(c: &Caller) -> Allowed {
    // A team id no team can have (slugs are at least 2 characters): a team where the caller
    // holds no role.
    let elsewhere = TeamId(String::new());
    let ask = |list: &[Permission], team: &TeamId| -> Vec<&'static str> {
        list.iter()
            .filter(|p| check(c, &p.action(team)).is_ok())
            .map(|p| p.as_str())
            .collect()
    };
    Allowed {
        teams: c
            .roles
            .iter()
            .map(|(team, role)| (team.clone(), *role, ask(&Permission::TEAM, team)))
            .collect(),
        global: ask(&Permission::GLOBAL, &elsewhere),
        all_teams: ask(&Permission::TEAM, &elsewhere),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(roles: &[(&str, Role)]) -> Caller {
        Caller {
            actor: Actor {
                kind: "user",
                id: "usr_1".into(),
                name: "u".into(),
            },
            principal: Principal::User {
                id: UserId("usr_1".into()),
                session: SessionId("ses_1".into()),
            },
            system_admin: false,
            roles: roles
                .iter()
                .map(|(t, r)| (TeamId((*t).into()), *r))
                .collect(),
            capability: Capability::None,
        }
    }

    #[test]
    fn escalation_paths_are_closed() {
        let a = TeamId("a".into());
        let b = TeamId("b".into());
        let manager = user(&[("a", Role::Manager)]);
        // MANAGER cannot demote or remove an ADMIN, nor grant MANAGER/ADMIN.
        assert!(
            check(
                &manager,
                &Action::ChangeMemberRole {
                    team: &a,
                    current: Role::Admin,
                    new: Role::Viewer
                }
            )
            .is_err()
        );
        assert!(
            check(
                &manager,
                &Action::RemoveMember {
                    team: &a,
                    current: Role::Admin,
                    is_self: false
                }
            )
            .is_err()
        );
        assert!(
            check(
                &manager,
                &Action::RemoveMember {
                    team: &a,
                    current: Role::Manager,
                    is_self: false
                }
            )
            .is_err()
        );
        assert!(
            check(
                &manager,
                &Action::AddMember {
                    team: &a,
                    role: Role::Manager
                }
            )
            .is_err()
        );
        assert!(
            check(
                &manager,
                &Action::Invite {
                    team: &a,
                    role: Role::Admin
                }
            )
            .is_err()
        );
        assert!(
            check(
                &manager,
                &Action::AddMember {
                    team: &a,
                    role: Role::Developer
                }
            )
            .is_ok()
        );
        // An ADMIN of one team has no power in another.
        let admin_a = user(&[("a", Role::Admin)]);
        assert!(
            check(
                &admin_a,
                &Action::Invite {
                    team: &b,
                    role: Role::Admin
                }
            )
            .is_err()
        );
        assert!(
            check(
                &admin_a,
                &Action::Invite {
                    team: &a,
                    role: Role::Admin
                }
            )
            .is_ok()
        );
        // VIEWER cannot change tokens; DEVELOPER only its own.
        let viewer = user(&[("a", Role::Viewer)]);
        assert!(
            check(
                &viewer,
                &Action::ChangeToken {
                    team: &a,
                    owned: true
                }
            )
            .is_err()
        );
        let dev = user(&[("a", Role::Developer)]);
        assert!(
            check(
                &dev,
                &Action::ChangeToken {
                    team: &a,
                    owned: false
                }
            )
            .is_err()
        );
        assert!(
            check(
                &dev,
                &Action::ChangeToken {
                    team: &a,
                    owned: true
                }
            )
            .is_ok()
        );
        // No membership at all: nothing but the shared catalogue.
        let outsider = user(&[("b", Role::Admin)]);
        assert!(check(&outsider, &Action::ReadTokens(&a)).is_err());
        assert!(check(&outsider, &Action::ReadRoutes).is_ok());
    }

    #[test]
    fn usage_needs_the_gateway_capability_or_team_membership() {
        let a = TeamId("a".into());
        let admin = user(&[("a", Role::Admin)]);
        assert!(check(&admin, &Action::IngestUsage).is_err());
        assert!(check(&admin, &Action::ReadGateways).is_err());
        assert!(check(&user(&[("a", Role::Viewer)]), &Action::ReadUsage(&a)).is_ok());
        assert!(check(&user(&[("b", Role::Admin)]), &Action::ReadUsage(&a)).is_err());
        let mut gateway = user(&[("a", Role::Viewer)]);
        gateway.principal = Principal::ServiceAccount {
            id: ServiceAccountId("sa_1".into()),
            key: KeyId("mk_1".into()),
        };
        gateway.capability = Capability::Gateway;
        assert!(check(&gateway, &Action::IngestUsage).is_ok());
        assert!(check(&gateway, &Action::LookupEdgeToken).is_ok());
        assert!(check(&admin, &Action::LookupEdgeToken).is_err());
        gateway.capability = Capability::Sync;
        assert!(check(&gateway, &Action::IngestUsage).is_err());
        assert!(check(&gateway, &Action::LookupEdgeToken).is_err());
        let mut sys = user(&[]);
        sys.system_admin = true;
        assert!(check(&sys, &Action::IngestUsage).is_ok());
        assert!(check(&sys, &Action::ReadGateways).is_ok());
    }

    #[test]
    fn sync_keys_call_the_sync_service_only() {
        let mut sync = user(&[("a", Role::Admin)]);
        sync.principal = Principal::ServiceAccount {
            id: ServiceAccountId("sa_1".into()),
            key: KeyId("mk_1".into()),
        };
        sync.capability = Capability::Sync;
        assert!(may_call(&sync, SYNC_SERVICE).is_ok());
        for other in ["keygate.v1.TokenService", "keygate.v1.AuthService", ""] {
            assert!(may_call(&sync, other).is_err(), "{other}");
        }
        sync.capability = Capability::Gateway;
        assert!(may_call(&sync, "keygate.v1.UsageService").is_ok());
        assert!(may_call(&user(&[]), "keygate.v1.TokenService").is_ok());
    }

    #[test]
    fn alerts_read_by_viewers_managed_by_managers_system_wide_by_system_admins() {
        let a = TeamId("a".into());
        let manage = |system_wide| Action::ManageAlerts {
            team: &a,
            system_wide,
        };
        for (role, read, manage_team) in [
            (Role::Viewer, true, false),
            (Role::Developer, true, false),
            (Role::Manager, true, true),
            (Role::Admin, true, true),
        ] {
            let c = user(&[("a", role)]);
            assert_eq!(check(&c, &Action::ReadAlerts(&a)).is_ok(), read, "{role:?}");
            assert_eq!(check(&c, &manage(false)).is_ok(), manage_team, "{role:?}");
            assert!(check(&c, &manage(true)).is_err(), "{role:?} system-wide");
        }
        let outsider = user(&[("b", Role::Admin)]);
        assert!(check(&outsider, &Action::ReadAlerts(&a)).is_err());
        assert!(check(&outsider, &manage(false)).is_err());
        let mut sys = user(&[]);
        sys.system_admin = true;
        assert!(check(&sys, &manage(true)).is_ok());
        assert!(check(&sys, &Action::ReadAlerts(&a)).is_ok());
        // A MANAGER service account manages its team's rules like a MANAGER.
        let mut robot = user(&[("a", Role::Manager)]);
        robot.principal = Principal::ServiceAccount {
            id: ServiceAccountId("sa_1".into()),
            key: KeyId("mk_1".into()),
        };
        assert!(check(&robot, &manage(false)).is_ok());
        assert!(check(&robot, &manage(true)).is_err());
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(
            Role::Admin > Role::Manager
                && Role::Manager > Role::Developer
                && Role::Developer > Role::Viewer
        );
        for r in [Role::Viewer, Role::Developer, Role::Manager, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(Role::from_pb("role", r.to_pb() as i32).unwrap(), r);
        }
        assert!(Role::from_pb("role", 0).is_err());
    }

    #[test]
    fn permissions_follow_check() {
        let a = TeamId("a".into());
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let dev = allowed(&user(&[("a", Role::Developer)]));
        let (team, role, actions) = &dev.teams[0];
        assert_eq!((team, *role), (&a, Role::Developer));
        assert!(actions.contains(&"token.create") && actions.contains(&"token.update_own"));
        assert!(!actions.contains(&"token.update") && !actions.contains(&"team.update"));
        assert!(dev.global.is_empty() && dev.all_teams.is_empty(), "{dev:?}");
        let admin = allowed(&user(&[("a", Role::Admin)]));
        assert!(names(&admin.global).contains(&"team.create".to_string()));
        assert!(admin.teams[0].2.contains(&"team.members.manage_privileged"));
        assert!(!admin.teams[0].2.contains(&"alert.manage_system"));
        let mut sys = user(&[]);
        sys.system_admin = true;
        let sys = allowed(&sys);
        assert_eq!(sys.global.len(), Permission::GLOBAL.len());
        assert_eq!(sys.all_teams.len(), Permission::TEAM.len());
        // Every name is distinct.
        let all: std::collections::HashSet<&str> = Permission::TEAM
            .iter()
            .chain(Permission::GLOBAL.iter())
            .map(|p| p.as_str())
            .collect();
        assert_eq!(all.len(), Permission::TEAM.len() + Permission::GLOBAL.len());
    }
}
