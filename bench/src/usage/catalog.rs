//! The teams, routes and tokens the usage data sets refer to, written as real rows (the
//! schema of migrations/*/0001_init.sql and later) with portable multi-row INSERTs, so both
//! dialects get the same rows.
//!
//! Team `t` is `team-{t:02}`; route `r` is `svc-{r:03}`, owned by team `r % teams`; token `i`
//! is `tok_{i:032x}` in team `i % teams`, scoped to its 1-3 routes ([`Catalog::token_routes`]).

use super::Rng;

/// Rows per INSERT statement.
const ROWS_PER_STATEMENT: usize = 1000;

/// Sizes of the catalog.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Catalog {
    pub teams: u32,
    pub routes: u32,
    pub tokens: u32,
}

pub fn team_id(t: u32) -> String {
    format!("team-{t:02}")
}

pub fn route_name(r: u32) -> String {
    format!("svc-{r:03}")
}

pub fn token_id(i: u32) -> String {
    format!("tok_{i:032x}")
}

impl Catalog {
    /// Team number of token `i`.
    pub fn token_team(&self, i: u32) -> u32 {
        i % self.teams.max(1)
    }

    /// The 1-3 distinct routes token `i` may call (fewer when there are fewer routes), sorted.
    pub fn token_routes(&self, i: u32) -> Vec<u32> {
        let routes = self.routes.max(1);
        let mut rng = Rng::new(0x726f_7574_6573 ^ u64::from(i).wrapping_mul(0x9E37_79B9));
        let n = 1 + rng.below(3) as u32;
        let base = rng.below(u64::from(routes)) as u32;
        let mut out: Vec<u32> = (0..n).map(|k| (base + k * 37) % routes).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Lowercase hex SHA-256-shaped hash of token `i`'s key (unique per token).
    pub fn token_hash(i: u32) -> String {
        let mut rng = Rng::new(0x6861_7368 ^ (u64::from(i) << 20));
        format!(
            "{:016x}{:016x}{:016x}{:08x}{:08x}",
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64(),
            rng.next_u64() as u32,
            i
        )
    }

    /// INSERT statements for every team, route, token and token scope. `last_used_at[i]` is
    /// token `i`'s last use (as ingestion would have set it), if any.
    pub fn statements(&self, now: i64, last_used_at: &[Option<i64>]) -> Vec<String> {
        let created = now - 60 * 86_400_000;
        let mut out = Vec::new();
        let teams: Vec<String> = (0..self.teams)
            .map(|t| {
                format!(
                    "('{}', 'Team {t}', 'seeded by keygate-bench usage', '', '', {created}, {created}, 'key:mk_bench')",
                    team_id(t)
                )
            })
            .collect();
        push_chunks(
            &mut out,
            "INSERT INTO teams (id, name, description, color, icon, created_at, updated_at, created_by) VALUES ",
            &teams,
        );
        let routes: Vec<String> = (0..self.routes)
            .map(|r| {
                let name = route_name(r);
                format!(
                    "('rte_{r:032x}', '{team}', '{name}', '/{name}', 'http://127.0.0.1:9/{name}', '', '[]', \
                     '[]', TRUE, 30000, 'none', '', '', {created}, {created}, 'key:mk_bench')",
                    team = team_id(r % self.teams.max(1)),
                )
            })
            .collect();
        push_chunks(
            &mut out,
            "INSERT INTO routes (id, team_id, name, path_prefix, backend_url, description, tags, methods, \
             strip_prefix, timeout_ms, auth_type, auth_header_name, auth_username, created_at, updated_at, \
             created_by) VALUES ",
            &routes,
        );
        let mut tokens = Vec::with_capacity(self.tokens as usize);
        let mut scopes = Vec::new();
        for i in 0..self.tokens {
            let routes = self.token_routes(i);
            let names: Vec<String> = routes.iter().map(|&r| route_name(r)).collect();
            let json = format!(
                "[{}]",
                names
                    .iter()
                    .map(|n| format!("\"{n}\""))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            let last = last_used_at
                .get(i as usize)
                .copied()
                .flatten()
                .map_or("NULL".to_owned(), |v| v.to_string());
            tokens.push(format!(
                "('{id}', '{team}', 'usage-bot-{i}', '', '{json}', '{hash}', 'kg_{p:04x}…{q:04x}', \
                 {created}, {created}, NULL, NULL, {last}, 'key:mk_bench')",
                id = token_id(i),
                team = team_id(self.token_team(i)),
                hash = Self::token_hash(i),
                p = i % 65_536,
                q = (i * 7) % 65_536,
            ));
            for n in names {
                scopes.push(format!("('{}', '{n}', {created})", token_id(i)));
            }
        }
        push_chunks(
            &mut out,
            "INSERT INTO tokens (id, team_id, name, description, scopes, token_hash, preview, created_at, \
             updated_at, expires_at, revoked_at, last_used_at, created_by) VALUES ",
            &tokens,
        );
        push_chunks(
            &mut out,
            "INSERT INTO token_scopes (token_id, scope, created_at) VALUES ",
            &scopes,
        );
        out
    }
}

fn push_chunks(out: &mut Vec<String>, head: &str, rows: &[String]) {
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        out.push(format!("{head}{}", chunk.join(", ")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_one_to_three_distinct_routes() {
        let c = Catalog {
            teams: 50,
            routes: 100,
            tokens: 10_000,
        };
        let mut sizes = [0usize; 4];
        for i in 0..c.tokens {
            let r = c.token_routes(i);
            assert!((1..=3).contains(&r.len()), "{r:?}");
            assert!(r.windows(2).all(|w| w[0] < w[1]));
            assert!(r.iter().all(|&x| x < 100));
            sizes[r.len()] += 1;
        }
        assert!(
            sizes[1] > 3000 && sizes[2] > 3000 && sizes[3] > 3000,
            "{sizes:?}"
        );
        assert_eq!(c.token_routes(5), c.token_routes(5));
        assert_eq!(Catalog::token_hash(3).len(), 64);
        assert_ne!(Catalog::token_hash(3), Catalog::token_hash(4));
        assert_eq!(token_id(255).len(), 36);
        keygate_contracts::names::validate_team_id("t", &team_id(49)).unwrap();
        keygate_contracts::names::validate_route_name("r", &route_name(99)).unwrap();
    }

    #[test]
    fn statements_cover_every_row() {
        let c = Catalog {
            teams: 3,
            routes: 5,
            tokens: 2_500,
        };
        let s = c.statements(1_000_000_000_000, &[Some(5), None]);
        let count = |prefix: &str| s.iter().filter(|x| x.starts_with(prefix)).count();
        assert_eq!(count("INSERT INTO teams"), 1);
        assert_eq!(count("INSERT INTO routes"), 1);
        assert_eq!(count("INSERT INTO tokens"), 3);
        assert!(count("INSERT INTO token_scopes") >= 3);
        assert!(s.iter().any(|x| x.contains(", 5, 'key:mk_bench')")));
    }
}
