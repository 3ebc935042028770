//! The dashboard's own aggregates in SQL: a few counts and two small GROUP BYs over the
//! covered teams.

use super::{Db, SqlStore, db_err, push_in};
use crate::dashboard::{DAY_MS, DashboardCounts, TeamTokenCount};
use crate::ids::TeamId;
use crate::store::{DashboardStore, StoreResult};
use crate::time::Millis;
use sqlx::{Pool, QueryBuilder};

/// `sql` (ending in a WHERE clause) limited to `teams` by `col`.
fn scoped(sql: String, col: &str, teams: Option<&[TeamId]>) -> QueryBuilder<Db> {
    let mut qb = QueryBuilder::<Db>::new(sql);
    if let Some(teams) = teams {
        push_in(&mut qb, col, teams.iter().map(|t| t.0.clone()));
    }
    qb
}

async fn count(pool: &Pool<Db>, mut qb: QueryBuilder<Db>) -> StoreResult<u64> {
    let (n,): (i64,) = qb.build_query_as().fetch_one(pool).await.map_err(db_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[async_trait::async_trait]
impl DashboardStore for SqlStore {
    async fn dashboard_counts(
        &self,
        teams: Option<&[TeamId]>,
        created_since: Millis,
        now: Millis,
    ) -> StoreResult<DashboardCounts> {
        let pool = &self.read;
        let routes = count(
            pool,
            scoped(
                "SELECT count(*) FROM routes WHERE 1 = 1".into(),
                "team_id",
                teams,
            ),
        );
        let team_count = count(
            pool,
            scoped("SELECT count(*) FROM teams WHERE 1 = 1".into(), "id", teams),
        );
        let users = count(
            pool,
            match teams {
                None => QueryBuilder::new("SELECT count(*) FROM users WHERE NOT disabled"),
                Some(_) => scoped(
                    "SELECT count(DISTINCT m.user_id) FROM team_members m \
                     JOIN users u ON u.id = m.user_id WHERE NOT u.disabled"
                        .into(),
                    "m.team_id",
                    teams,
                ),
            },
        );
        let per_day = async {
            let mut qb = scoped(
                format!("SELECT created_at / {DAY_MS}, count(*) FROM tokens WHERE 1 = 1"),
                "team_id",
                teams,
            );
            qb.push(" AND created_at >= ");
            qb.push_bind(created_since);
            qb.push(format!(
                " GROUP BY created_at / {DAY_MS} ORDER BY created_at / {DAY_MS}"
            ));
            let rows: Vec<(i64, i64)> =
                qb.build_query_as().fetch_all(pool).await.map_err(db_err)?;
            Ok(rows
                .into_iter()
                .map(|(day, n)| (day * DAY_MS, u64::try_from(n).unwrap_or(0)))
                .collect::<Vec<_>>())
        };
        let per_team = async {
            let mut qb = QueryBuilder::<Db>::new(
                "SELECT tm.id, tm.name, count(t.id) FROM teams tm LEFT JOIN tokens t \
                 ON t.team_id = tm.id AND t.revoked_at IS NULL \
                 AND (t.expires_at IS NULL OR t.expires_at > ",
            );
            qb.push_bind(now);
            qb.push(") WHERE 1 = 1");
            if let Some(teams) = teams {
                push_in(&mut qb, "tm.id", teams.iter().map(|t| t.0.clone()));
            }
            qb.push(" GROUP BY tm.id, tm.name ORDER BY count(t.id) DESC, tm.id");
            let rows: Vec<(String, String, i64)> =
                qb.build_query_as().fetch_all(pool).await.map_err(db_err)?;
            Ok(rows
                .into_iter()
                .map(|(id, name, n)| TeamTokenCount {
                    team_id: TeamId(id),
                    team_name: name,
                    active_tokens: u64::try_from(n).unwrap_or(0),
                })
                .collect::<Vec<_>>())
        };
        let (routes, teams, users, created_per_day, tokens_per_team) =
            futures::try_join!(routes, team_count, users, per_day, per_team)?;
        Ok(DashboardCounts {
            routes,
            teams,
            users,
            created_per_day,
            tokens_per_team,
        })
    }
}
