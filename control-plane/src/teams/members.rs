//! Team membership types.

use crate::ids::UserId;
use crate::policy::Role;
use crate::time::{Millis, to_timestamp};
use keygate_proto::v1 as pb;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub added_at: Millis,
}

impl From<Member> for pb::Member {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id.0,
            email: m.email,
            display_name: m.display_name,
            role: m.role.to_pb() as i32,
            added_at: Some(to_timestamp(m.added_at)),
        }
    }
}
