//! Pure planning of bulk calls: key checks, de-duplication and packing items into request
//! bodies that respect both the item count and the body size limits.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;
use bytes::Bytes;

use crate::backend::KvError;
use crate::config::BulkLimits;

/// Longest key the API accepts, in bytes of UTF-8.
pub(crate) const MAX_KEY_BYTES: usize = 512;

/// Checks a key against the API's rules: 1 to 512 bytes, not `.` or `..`.
/// The message never repeats the key (keys can be token hashes).
pub(crate) fn validate_key(key: &str) -> Result<(), KvError> {
    if key.is_empty() || key == "." || key == ".." {
        return Err(KvError::Invalid(
            "a key must not be empty, \".\" or \"..\"".into(),
        ));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(KvError::Invalid(format!(
            "a key of {} bytes exceeds the limit of {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// The positions of `keys` to send: one per distinct key, the last occurrence winning, in the
/// order of those last occurrences.
pub(crate) fn last_occurrences<'a>(keys: impl Iterator<Item = &'a str>) -> Vec<usize> {
    let keys: Vec<&str> = keys.collect();
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        last.insert(k, i);
    }
    (0..keys.len()).filter(|&i| last[keys[i]] == i).collect()
}

/// One item of a bulk body, already JSON-encoded.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub key: String,
    pub json: Vec<u8>,
}

/// The items of one bulk call. The body is built per attempt, so a retry can send only the
/// keys that were reported unsuccessful.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    pub items: Vec<Item>,
}

impl Batch {
    pub fn keys(&self) -> Vec<String> {
        self.items.iter().map(|i| i.key.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn body_len(&self) -> usize {
        body_len(
            self.items.iter().map(|i| i.json.len()).sum(),
            self.items.len(),
        )
    }

    /// `[item,item,...]`
    pub fn body(&self) -> Bytes {
        let mut body = Vec::with_capacity(self.body_len());
        body.push(b'[');
        for (n, item) in self.items.iter().enumerate() {
            if n > 0 {
                body.push(b',');
            }
            body.extend_from_slice(&item.json);
        }
        body.push(b']');
        Bytes::from(body)
    }

    /// Keeps only the items whose key is in `keys`.
    pub fn retain_keys(&mut self, keys: &HashSet<&str>) {
        self.items.retain(|i| keys.contains(i.key.as_str()));
    }
}

/// Body size of a JSON array of `n` items whose encodings total `items_bytes`.
fn body_len(items_bytes: usize, n: usize) -> usize {
    items_bytes + n.saturating_sub(1) + 2
}

#[derive(serde::Serialize)]
struct WriteItem<'a> {
    key: &'a str,
    value: &'a str,
    base64: bool,
}

/// Bulk-write batches for `pairs` (duplicates: the last value wins). Values are sent base64
/// encoded. Fails before anything is sent if a key or value breaks a limit.
pub(crate) fn plan_writes(
    pairs: &[(String, Vec<u8>)],
    limits: &BulkLimits,
) -> Result<Vec<Batch>, KvError> {
    let picked = last_occurrences(pairs.iter().map(|(k, _)| k.as_str()));
    for &i in &picked {
        let (key, value) = &pairs[i];
        validate_key(key)?;
        if value.len() > limits.max_value_bytes {
            return Err(KvError::Invalid(format!(
                "a value of {} bytes exceeds the limit of {}",
                value.len(),
                limits.max_value_bytes
            )));
        }
    }
    let items = picked.into_iter().map(|i| {
        let (key, value) = &pairs[i];
        let encoded = base64::engine::general_purpose::STANDARD.encode(value);
        let json = serde_json::to_vec(&WriteItem {
            key,
            value: &encoded,
            base64: true,
        })
        .expect("a struct of strings always serializes");
        Item {
            key: key.clone(),
            json,
        }
    });
    pack(items, limits)
}

/// Bulk-delete batches for `keys` (duplicates removed).
pub(crate) fn plan_deletes(keys: &[String], limits: &BulkLimits) -> Result<Vec<Batch>, KvError> {
    let picked = last_occurrences(keys.iter().map(String::as_str));
    for &i in &picked {
        validate_key(&keys[i])?;
    }
    let items = picked.into_iter().map(|i| Item {
        key: keys[i].clone(),
        json: serde_json::to_vec(&keys[i]).expect("a string always serializes"),
    });
    pack(items, limits)
}

/// Packs items in order into batches of at most `max_items` items and `max_body_bytes` bytes.
fn pack(items: impl Iterator<Item = Item>, limits: &BulkLimits) -> Result<Vec<Batch>, KvError> {
    let mut batches = Vec::new();
    let mut current = Batch::default();
    let mut current_bytes = 0usize; // sum of item encodings in `current`
    for item in items {
        if body_len(item.json.len(), 1) > limits.max_body_bytes {
            return Err(KvError::Invalid(format!(
                "one item encodes to {} bytes, over the request limit of {}",
                item.json.len(),
                limits.max_body_bytes
            )));
        }
        let full = current.len() == limits.max_items
            || body_len(current_bytes + item.json.len(), current.len() + 1) > limits.max_body_bytes;
        if !current.items.is_empty() && full {
            batches.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += item.json.len();
        current.items.push(item);
    }
    if !current.items.is_empty() {
        batches.push(current);
    }
    Ok(batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_items: usize, max_body_bytes: usize) -> BulkLimits {
        BulkLimits {
            max_items,
            max_body_bytes,
            max_value_bytes: 1024,
        }
    }

    fn pairs(n: usize, value_len: usize) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| (format!("k{i:05}"), vec![b'x'; value_len]))
            .collect()
    }

    #[test]
    fn key_rules() {
        let long = "k".repeat(513);
        let table: [(&str, bool); 7] = [
            ("v1/token/ab", true),
            ("a b", true),
            ("ü", true),
            ("", false),
            (".", false),
            ("..", false),
            (long.as_str(), false),
        ];
        for (key, ok) in table {
            assert_eq!(validate_key(key).is_ok(), ok, "{key:?}");
        }
        assert!(validate_key(&"k".repeat(512)).is_ok());
        assert!(validate_key(&"ü".repeat(256)).is_ok()); // 512 bytes
        assert!(validate_key(&"ü".repeat(257)).is_err());
    }

    #[test]
    fn last_occurrence_wins() {
        let keys = ["a", "b", "a", "c", "b"];
        assert_eq!(last_occurrences(keys.into_iter()), vec![2, 3, 4]);
    }

    #[test]
    fn split_by_count() {
        // (pairs, max_items, expected batch sizes)
        let table: [(usize, usize, &[usize]); 5] = [
            (0, 10, &[]),
            (1, 10, &[1]),
            (10, 10, &[10]),
            (11, 10, &[10, 1]),
            (25, 10, &[10, 10, 5]),
        ];
        for (n, max, want) in table {
            let batches = plan_writes(&pairs(n, 3), &limits(max, 1 << 20)).unwrap();
            let sizes: Vec<usize> = batches.iter().map(Batch::len).collect();
            assert_eq!(sizes, want, "n={n} max={max}");
        }
    }

    #[test]
    fn split_by_body_size_and_bodies_are_valid_json() {
        let input = pairs(7, 300); // base64 400 bytes, item ~440 bytes
        let max_body = 1000;
        let batches = plan_writes(&input, &limits(100, max_body)).unwrap();
        assert!(batches.len() > 1);
        let mut seen = Vec::new();
        for b in &batches {
            let body = b.body();
            assert_eq!(body.len(), b.body_len());
            assert!(body.len() <= max_body, "{} > {max_body}", body.len());
            let items: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
            for item in items {
                assert_eq!(item["base64"], true);
                let v = base64::engine::general_purpose::STANDARD
                    .decode(item["value"].as_str().unwrap())
                    .unwrap();
                assert_eq!(v, vec![b'x'; 300]);
                seen.push(item["key"].as_str().unwrap().to_owned());
            }
        }
        let want: Vec<String> = input.iter().map(|(k, _)| k.clone()).collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn exact_fit_stays_in_one_batch() {
        let input = pairs(2, 3);
        let one = plan_writes(&input[..1], &limits(10, 1 << 20)).unwrap();
        let item_len = one[0].body_len() - 2;
        let exact = 2 * item_len + 1 + 2;
        assert_eq!(plan_writes(&input, &limits(10, exact)).unwrap().len(), 1);
        assert_eq!(
            plan_writes(&input, &limits(10, exact - 1)).unwrap().len(),
            2
        );
    }

    #[test]
    fn limits_are_checked_before_sending() {
        let l = limits(10, 200);
        let too_big_value = vec![("k".to_owned(), vec![0; 1025])];
        assert!(matches!(
            plan_writes(&too_big_value, &l),
            Err(KvError::Invalid(_))
        ));
        let too_big_item = vec![("k".to_owned(), vec![0; 500])];
        assert!(matches!(
            plan_writes(&too_big_item, &l),
            Err(KvError::Invalid(_))
        ));
        let bad_key = vec![("ok".to_owned(), vec![]), ("..".to_owned(), vec![])];
        assert!(matches!(
            plan_writes(&bad_key, &l),
            Err(KvError::Invalid(_))
        ));
        assert!(matches!(
            plan_deletes(&["".to_owned()], &l),
            Err(KvError::Invalid(_))
        ));
    }

    #[test]
    fn deletes_are_json_string_arrays() {
        let keys: Vec<String> = ["a b", "ü", "%", "a b", "q\"uote"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let batches = plan_deletes(&keys, &limits(2, 1 << 20)).unwrap();
        let all: Vec<String> = batches
            .iter()
            .flat_map(|b| serde_json::from_slice::<Vec<String>>(&b.body()).unwrap())
            .collect();
        assert_eq!(all, vec!["ü", "%", "a b", "q\"uote"]);
        assert_eq!(batches.len(), 2);
    }

    #[test]
    fn retain_keeps_only_failed_keys() {
        let mut b = plan_writes(&pairs(5, 1), &limits(10, 1 << 20))
            .unwrap()
            .remove(0);
        b.retain_keys(&HashSet::from(["k00001", "k00003", "other"]));
        assert_eq!(b.keys(), vec!["k00001", "k00003"]);
        let v: Vec<serde_json::Value> = serde_json::from_slice(&b.body()).unwrap();
        assert_eq!(v.len(), 2);
    }
}
