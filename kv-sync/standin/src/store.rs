//! The stand-in's data: namespaces and their entries, kept in byte order of the key. Plain
//! data, no HTTP. Expired entries are never returned; with a visibility delay a write shows
//! only once its time has come (the previous version, or nothing, until then).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Instant;

use serde_json::Value;

/// One stored value.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub value: Vec<u8>,
    pub metadata: Option<Value>,
    /// Absolute unix seconds; `None` never expires.
    pub expiration: Option<u64>,
}

impl Record {
    fn live(&self, now_unix: u64) -> bool {
        self.expiration.is_none_or(|e| e > now_unix)
    }
}

#[derive(Debug, Clone)]
struct Version {
    visible_at: Instant,
    /// `None`: deleted.
    record: Option<Record>,
}

/// One KV namespace.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub id: String,
    pub title: String,
    /// Versions of each key, oldest first; the first one is the newest already visible (or
    /// the key's first version not yet visible).
    entries: BTreeMap<String, Vec<Version>>,
}

impl Namespace {
    pub fn new(id: String, title: String) -> Self {
        Self {
            id,
            title,
            entries: BTreeMap::new(),
        }
    }

    fn write(&mut self, key: &str, record: Option<Record>, now: Instant, visible_at: Instant) {
        let versions = self.entries.entry(key.to_owned()).or_default();
        versions.push(Version { visible_at, record });
        // Drop versions hidden behind a newer visible one.
        if let Some(newest_visible) = versions.iter().rposition(|v| v.visible_at <= now) {
            versions.drain(..newest_visible);
        }
        if versions.len() == 1 && versions[0].record.is_none() && versions[0].visible_at <= now {
            self.entries.remove(key);
        }
    }

    pub fn put(&mut self, key: &str, record: Record, now: Instant, visible_at: Instant) {
        self.write(key, Some(record), now, visible_at);
    }

    pub fn delete(&mut self, key: &str, now: Instant, visible_at: Instant) {
        if self.entries.contains_key(key) {
            self.write(key, None, now, visible_at);
        }
    }

    fn visible(versions: &[Version], now: Instant, now_unix: u64) -> Option<&Record> {
        versions
            .iter()
            .rev()
            .find(|v| v.visible_at <= now)
            .and_then(|v| v.record.as_ref())
            .filter(|r| r.live(now_unix))
    }

    /// The record a read sees now.
    pub fn get(&self, key: &str, now: Instant, now_unix: u64) -> Option<&Record> {
        Self::visible(self.entries.get(key)?, now, now_unix)
    }

    /// Up to `limit` visible keys starting with `prefix`, after `after` (exclusive), in byte
    /// order, and whether more follow.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
        now: Instant,
        now_unix: u64,
    ) -> (Vec<(&str, &Record)>, bool) {
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a),
            _ => Bound::Included(prefix),
        };
        let mut visible = self
            .entries
            .range::<str, _>((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, v)| Some((k.as_str(), Self::visible(v, now, now_unix)?)));
        let page: Vec<_> = visible.by_ref().take(limit).collect();
        let more = visible.next().is_some();
        (page, more)
    }

    /// Every stored (latest, unexpired) value, ignoring the visibility delay.
    pub fn snapshot(&self, now_unix: u64) -> BTreeMap<String, Vec<u8>> {
        self.entries
            .iter()
            .filter_map(|(k, versions)| {
                let latest = versions.last()?.record.as_ref()?;
                latest
                    .live(now_unix)
                    .then(|| (k.clone(), latest.value.clone()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rec(v: &str, expiration: Option<u64>) -> Record {
        Record {
            value: v.as_bytes().to_vec(),
            metadata: None,
            expiration,
        }
    }

    #[test]
    fn byte_order_prefix_and_paging() {
        let now = Instant::now();
        let mut ns = Namespace::new("n".into(), "t".into());
        for k in ["b", "a", "ü", "Z", "ab", "a/b", "aa"] {
            ns.put(k, rec(k, None), now, now);
        }
        let names = |page: Vec<(&str, &Record)>| {
            page.into_iter()
                .map(|(k, _)| k.to_owned())
                .collect::<Vec<_>>()
        };
        let (all, more) = ns.list("", None, 100, now, 0);
        assert_eq!(names(all), ["Z", "a", "a/b", "aa", "ab", "b", "ü"]);
        assert!(!more);
        let (p1, more) = ns.list("a", None, 2, now, 0);
        assert_eq!(names(p1), ["a", "a/b"]);
        assert!(more);
        let (p2, more) = ns.list("a", Some("a/b"), 2, now, 0);
        assert_eq!(names(p2), ["aa", "ab"]);
        assert!(!more);
    }

    #[test]
    fn expired_entries_are_never_returned() {
        let now = Instant::now();
        let mut ns = Namespace::new("n".into(), "t".into());
        ns.put("old", rec("x", Some(100)), now, now);
        ns.put("new", rec("y", Some(200)), now, now);
        ns.put("forever", rec("z", None), now, now);
        assert!(ns.get("old", now, 99).is_some());
        assert!(ns.get("old", now, 100).is_none());
        let (page, _) = ns.list("", None, 10, now, 150);
        assert_eq!(page.len(), 2);
        assert_eq!(ns.snapshot(150).len(), 2);
        assert_eq!(ns.snapshot(250).len(), 1);
    }

    #[test]
    fn visibility_delay_shows_the_previous_version() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut ns = Namespace::new("n".into(), "t".into());
        ns.put("k", rec("v1", None), t0, t0);
        ns.put("k", rec("v2", None), t0, later);
        assert_eq!(ns.get("k", t0, 0).unwrap().value, b"v1");
        assert_eq!(ns.get("k", later, 0).unwrap().value, b"v2");
        assert_eq!(ns.snapshot(0)["k"], b"v2");
        ns.delete("k", t0, later);
        assert!(ns.get("k", t0, 0).is_some());
        assert!(ns.get("k", later, 0).is_none());
        assert!(ns.snapshot(0).is_empty());
        // Once visible, a delete removes the key entirely.
        ns.delete("k", later, later);
        assert!(ns.entries.is_empty());
    }
}
