//! Export encodings: NDJSON (one JSON object per line) and RFC 4180 CSV. CSV cells that a
//! spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) are prefixed with `'`.

use super::model::AuditEvent;
use crate::time::rfc3339;
use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::Status;

const COLUMNS: [&str; 15] = [
    "seq",
    "time",
    "actor_type",
    "actor_id",
    "actor_name",
    "action",
    "entity_type",
    "entity_id",
    "team_id",
    "diff",
    "source_ip",
    "user_agent",
    "request_id",
    "prev_hash",
    "hash",
];

fn cells(e: &AuditEvent) -> [String; 15] {
    [
        e.seq.to_string(),
        rfc3339(e.at),
        e.actor_type.clone(),
        e.actor_id.clone(),
        e.actor_name.clone(),
        e.action.clone(),
        e.entity_type.clone(),
        e.entity_id.clone(),
        e.team_id.clone(),
        e.diff.clone(),
        e.source_ip.clone(),
        e.user_agent.clone(),
        e.request_id.clone(),
        e.prev_hash.clone(),
        e.hash.clone(),
    ]
}

/// One NDJSON line (with trailing newline).
pub fn ndjson_line(e: &AuditEvent) -> String {
    let mut obj = serde_json::Map::new();
    for (k, v) in COLUMNS.iter().zip(cells(e)) {
        let value = match *k {
            "seq" => serde_json::Value::from(e.seq),
            "diff" => serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v)),
            _ => serde_json::Value::String(v),
        };
        obj.insert((*k).to_owned(), value);
    }
    let mut s = serde_json::Value::Object(obj).to_string();
    s.push('\n');
    s
}

/// The CSV header line.
pub fn csv_header() -> String {
    let mut s = COLUMNS.join(",");
    s.push_str("\r\n");
    s
}

/// One CSV record (with CRLF, as RFC 4180 says).
pub fn csv_row(e: &AuditEvent) -> String {
    let mut s = cells(e)
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    s.push_str("\r\n");
    s
}

/// Quotes a cell when needed and defuses spreadsheet formulas.
pub fn csv_cell(v: &str) -> String {
    let defused;
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        defused = format!("'{v}");
        defused.as_str()
    } else {
        v
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

/// Bytes per streamed export chunk (about).
pub const CHUNK: usize = 64 * 1024;

/// Groups export lines into chunks of about [`CHUNK`] bytes; an error ends the stream after
/// the lines before it (shared by every streamed export).
pub fn chunked(
    lines: BoxStream<'static, Result<String, Status>>,
) -> BoxStream<'static, Result<Vec<u8>, Status>> {
    lines
        .ready_chunks(256)
        .flat_map(|batch| {
            let mut out: Vec<Result<Vec<u8>, Status>> = Vec::new();
            let mut buf = String::new();
            for line in batch {
                match line {
                    Ok(l) => {
                        buf.push_str(&l);
                        if buf.len() >= CHUNK {
                            out.push(Ok(std::mem::take(&mut buf).into_bytes()));
                        }
                    }
                    Err(e) => {
                        if !buf.is_empty() {
                            out.push(Ok(std::mem::take(&mut buf).into_bytes()));
                        }
                        out.push(Err(e));
                        break;
                    }
                }
            }
            if !buf.is_empty() {
                out.push(Ok(buf.into_bytes()));
            }
            futures::stream::iter(out)
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_escaping() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
    }

    #[test]
    fn ndjson_embeds_diff_as_json() {
        let e = AuditEvent {
            seq: 3,
            at: 0,
            actor_type: "key".into(),
            actor_id: "mk_1".into(),
            actor_name: "n".into(),
            action: "token.create".into(),
            entity_type: "token".into(),
            entity_id: "tok_1".into(),
            team_id: "t".into(),
            diff: r#"{"name":[null,"x"]}"#.into(),
            source_ip: String::new(),
            user_agent: "ua, \"quoted\"".into(),
            request_id: "r".into(),
            prev_hash: "0".into(),
            hash: "1".into(),
        };
        let v: serde_json::Value = serde_json::from_str(ndjson_line(&e).trim_end()).unwrap();
        assert_eq!(v["diff"]["name"][1], "x");
        assert_eq!(v["seq"], 3);
        let row = csv_row(&e);
        assert!(row.contains("\"ua, \"\"quoted\"\"\""));
        assert!(row.ends_with("\r\n"));
    }
}
