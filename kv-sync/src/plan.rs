//! Planning, pure: change-feed messages and snapshots in, KV operations out. Coalesces per key
//! (the last operation on a key wins, so a delete after a put is a delete), encodes records
//! with `keygate-kv-record`, and never touches the network.

use keygate_kv_record as rec;
use keygate_proto::v1 as pb;
use std::collections::{BTreeMap, BTreeSet};

/// A malformed message from the control plane.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("change {revision}: {reason}")]
    Bad { revision: i64, reason: String },
    #[error("change {got} is not after {after}: the feed went backwards")]
    OutOfOrder { after: i64, got: i64 },
}

/// A key and its encoded value.
pub type Pair = (String, Vec<u8>);

/// KV operations for a run of consecutive changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub puts: BTreeMap<String, Vec<u8>>,
    pub deletes: BTreeSet<String>,
    /// The revision the KV will be at once the batch is applied.
    pub revision: i64,
    pub changes: u64,
    /// Commit time (epoch ms) of the newest change, for "seconds behind".
    pub committed_at_ms: Option<i64>,
}

fn millis(ts: &Option<prost_types::Timestamp>) -> Option<i64> {
    ts.as_ref()
        .map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// The KV record of a token (one rule, in `keygate-kv-record`).
pub use rec::token_record;

/// The KV record of the route table.
pub fn route_table(t: &pb::EdgeRouteTable) -> rec::RouteTable {
    rec::RouteTable {
        v: 1,
        routes: t
            .routes
            .iter()
            .map(|r| {
                let a = r.backend_auth.clone().unwrap_or_default();
                rec::RouteRecord {
                    id: r.route_id.clone(),
                    name: r.name.clone(),
                    team: r.team_id.clone(),
                    prefix: r.path_prefix.clone(),
                    backend: r.backend_url.clone(),
                    tags: r.tags.clone(),
                    methods: r.methods.clone(),
                    strip: r.strip_prefix,
                    timeout_ms: r.timeout_ms,
                    auth: rec::BackendAuth {
                        kind: if a.r#type.is_empty() {
                            "none".into()
                        } else {
                            a.r#type
                        },
                        header: a.header_name,
                        username: a.username,
                        sealed: a.sealed_secret,
                    },
                    allowed_teams: r.allowed_team_ids.clone(),
                    cors_origins: r.cors_origins.clone(),
                    rpm: r.rate_limit_per_minute,
                }
            })
            .collect(),
    }
}

impl Batch {
    /// An empty batch that continues from `revision`.
    pub fn after(revision: i64) -> Self {
        Self {
            revision,
            ..Self::default()
        }
    }

    fn put(&mut self, key: String, value: Vec<u8>) {
        self.deletes.remove(&key);
        self.puts.insert(key, value);
    }

    fn delete(&mut self, key: String) {
        self.puts.remove(&key);
        self.deletes.insert(key);
    }

    /// Folds one change in.
    pub fn add(&mut self, c: &pb::EdgeChange) -> Result<(), PlanError> {
        use pb::edge_change::Change;
        if c.revision <= self.revision {
            return Err(PlanError::OutOfOrder {
                after: self.revision,
                got: c.revision,
            });
        }
        let bad = |reason: String| PlanError::Bad {
            revision: c.revision,
            reason,
        };
        match &c.change {
            Some(Change::TokenUpsert(t)) => {
                let key = rec::token_key(&t.token_hash).map_err(|e| bad(e.to_string()))?;
                self.put(key, rec::encode(&token_record(t)));
            }
            Some(Change::TokenDeleteHash(h)) => {
                let key = rec::token_key(h).map_err(|e| bad(e.to_string()))?;
                self.delete(key);
            }
            Some(Change::Routes(t)) => {
                self.put(rec::ROUTES_KEY.into(), rec::encode(&route_table(t)))
            }
            Some(Change::Nothing(_)) => {}
            None => return Err(bad("empty change".into())),
        }
        self.revision = c.revision;
        self.changes += 1;
        if let Some(ms) = millis(&c.committed_at) {
            self.committed_at_ms = Some(ms);
        }
        Ok(())
    }

    /// Distinct keys the batch writes or deletes.
    pub fn keys(&self) -> usize {
        self.puts.len() + self.deletes.len()
    }

    /// `(puts, deletes)` to apply, then the checkpoint to write after them.
    pub fn into_ops(self) -> (Vec<Pair>, Vec<String>, Pair) {
        let checkpoint = checkpoint(self.revision);
        (
            self.puts.into_iter().collect(),
            self.deletes.into_iter().collect(),
            checkpoint,
        )
    }
}

/// The checkpoint record for `revision`.
pub fn checkpoint(revision: i64) -> Pair {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    (
        rec::REVISION_KEY.to_owned(),
        rec::encode(&rec::RevisionRecord { v: 1, revision, at }),
    )
}

/// Reads a checkpoint value.
pub fn read_checkpoint(bytes: &[u8]) -> Option<i64> {
    rec::decode::<rec::RevisionRecord>(rec::REVISION_KEY, bytes)
        .ok()
        .map(|r| r.revision)
}

/// Reconciliation: `desired` is the full edge state (every key and value); `existing` is what
/// the KV lists under [`rec::PREFIX`]. Deletes every extra key (but the checkpoint) and writes
/// every desired pair (values cannot be compared without reading them all back).
pub fn reconcile(
    desired: &BTreeMap<String, Vec<u8>>,
    existing: &[String],
) -> (Vec<(String, Vec<u8>)>, Vec<String>) {
    let deletes = existing
        .iter()
        .filter(|k| k.as_str() != rec::REVISION_KEY && !desired.contains_key(*k))
        .cloned()
        .collect();
    (
        desired
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        deletes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::edge_change::Change;

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    fn up(rev: i64, hash: &str) -> pb::EdgeChange {
        pb::EdgeChange {
            revision: rev,
            committed_at: None,
            change: Some(Change::TokenUpsert(pb::EdgeToken {
                token_hash: hash.into(),
                token_id: format!("tok_{rev}"),
                team_id: "t".into(),
                scopes: vec!["*".into()],
                expires_at: None,
                rate_limit_per_minute: 0,
            })),
        }
    }

    fn del(rev: i64, hash: &str) -> pb::EdgeChange {
        pb::EdgeChange {
            revision: rev,
            committed_at: None,
            change: Some(Change::TokenDeleteHash(hash.into())),
        }
    }

    #[test]
    fn coalescing_table() {
        // (changes, expected put hashes, expected delete hashes)
        let cases: Vec<(Vec<pb::EdgeChange>, Vec<String>, Vec<String>)> = vec![
            (vec![up(1, &h('a'))], vec![h('a')], vec![]),
            (vec![up(1, &h('a')), del(2, &h('a'))], vec![], vec![h('a')]),
            (vec![del(1, &h('a')), up(2, &h('a'))], vec![h('a')], vec![]),
            (
                vec![up(1, &h('a')), up(2, &h('b')), del(3, &h('a'))],
                vec![h('b')],
                vec![h('a')],
            ),
            (vec![up(1, &h('a')), up(2, &h('a'))], vec![h('a')], vec![]),
        ];
        for (changes, puts, deletes) in cases {
            let mut b = Batch::after(0);
            for c in &changes {
                b.add(c).unwrap();
            }
            let key = |x: &String| format!("v1/token/{x}");
            assert_eq!(
                b.puts.keys().cloned().collect::<Vec<_>>(),
                puts.iter().map(key).collect::<Vec<_>>()
            );
            assert_eq!(
                b.deletes.iter().cloned().collect::<Vec<_>>(),
                deletes.iter().map(key).collect::<Vec<_>>()
            );
            assert_eq!(b.revision, changes.last().unwrap().revision);
        }
    }

    #[test]
    fn refuses_backwards_and_malformed() {
        let mut b = Batch::after(5);
        assert!(matches!(
            b.add(&up(5, &h('a'))),
            Err(PlanError::OutOfOrder { .. })
        ));
        assert!(b.add(&up(6, "short")).is_err());
        assert!(
            b.add(&pb::EdgeChange {
                revision: 7,
                committed_at: None,
                change: None
            })
            .is_err()
        );
        b.add(&pb::EdgeChange {
            revision: 8,
            committed_at: None,
            change: Some(Change::Nothing(true)),
        })
        .unwrap();
        assert_eq!((b.revision, b.puts.len()), (8, 0));
    }

    #[test]
    fn token_record_carries_the_rate_limit() {
        let mut c = up(1, &h('a'));
        let Some(Change::TokenUpsert(t)) = &mut c.change else {
            unreachable!()
        };
        t.rate_limit_per_minute = 120;
        t.expires_at = Some(prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 5_000_000,
        });
        let t = t.clone();
        let r = token_record(&t);
        assert_eq!(
            (r.rpm, r.exp, r.id.as_str(), r.team.as_str()),
            (120, Some(1_700_000_000_005), "tok_1", "t")
        );
        // Through the feed path: the stored value decodes with `rpm`.
        let mut b = Batch::after(0);
        b.add(&c).unwrap();
        let key = format!("v1/token/{}", h('a'));
        let stored: rec::TokenRecord = rec::decode(&key, &b.puts[&key]).unwrap();
        assert_eq!(stored.rpm, 120);
        // No limit: the field is left out (older readers see the same bytes).
        let bytes = rec::encode(&token_record(&pb::EdgeToken {
            rate_limit_per_minute: 0,
            ..t.clone()
        }));
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains("rpm"), "{text}");
    }

    #[test]
    fn route_table_carries_every_field() {
        let t = pb::EdgeRouteTable {
            routes: vec![pb::EdgeRoute {
                route_id: "rte_1".into(),
                name: "pay".into(),
                team_id: "core".into(),
                path_prefix: "/pay".into(),
                backend_url: "http://127.0.0.1:9/".into(),
                tags: vec!["money".into()],
                methods: vec!["GET".into()],
                strip_prefix: true,
                timeout_ms: 1000,
                backend_auth: Some(pb::EdgeBackendAuth {
                    r#type: "bearer".into(),
                    header_name: String::new(),
                    username: String::new(),
                    sealed_secret: "v1.k.x".into(),
                }),
                allowed_team_ids: vec!["core".into()],
                cors_origins: vec!["https://app.example.com".into()],
                rate_limit_per_minute: 120,
            }],
        };
        let r = &route_table(&t).routes[0];
        assert_eq!(r.cors_origins, ["https://app.example.com"]);
        assert_eq!(r.rpm, 120);
        assert_eq!(
            (r.auth.kind.as_str(), r.auth.sealed.as_str()),
            ("bearer", "v1.k.x")
        );
        assert_eq!(
            (r.strip, r.allowed_teams.clone()),
            (true, vec!["core".to_string()])
        );
        // A route without them writes neither field (older readers see the same bytes).
        let mut plain = t.clone();
        plain.routes[0].cors_origins.clear();
        plain.routes[0].rate_limit_per_minute = 0;
        let bytes = rec::encode(&route_table(&plain));
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains("cors_origins") && !text.contains("rpm"),
            "{text}"
        );
    }

    #[test]
    fn reconcile_deletes_extras_but_not_the_checkpoint() {
        let mut desired = BTreeMap::new();
        desired.insert("v1/token/a".to_string(), b"1".to_vec());
        let existing = vec![
            "v1/meta/revision".to_string(),
            "v1/token/a".to_string(),
            "v1/token/zombie".to_string(),
        ];
        let (puts, deletes) = reconcile(&desired, &existing);
        assert_eq!(deletes, vec!["v1/token/zombie"]);
        assert_eq!(puts.len(), 1);
        assert_eq!(read_checkpoint(&checkpoint(42).1), Some(42));
    }
}
