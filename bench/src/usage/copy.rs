//! Writing generated rows into PostgreSQL with `COPY ... FROM STDIN` (text format): the
//! generator fills one buffer per table ([`CopyBuffers`]) on a blocking thread and hands full
//! buffers over a channel to [`copy_chunks`], which streams each into its table, so generating
//! and loading overlap on the two cores.

use super::catalog;
use super::history::Row;
use keygate_rollup::RollupValue;
use sqlx::PgConnection;
use std::collections::HashMap;
use tokio::sync::mpsc;

/// Bytes buffered per table before a chunk is handed over.
const CHUNK_BYTES: usize = 8 << 20;

const DETAIL_COLUMNS: &str = "bucket, token_id, team_id, route, status, error, calls, \
     request_bytes, response_bytes, latency_sum_us, latency_min_us, latency_max_us, sketch";
const SERIES_COLUMNS: &str = "dim, dim_key, bucket, status, calls, request_bytes, \
     response_bytes, latency_sum_us, latency_min_us, latency_max_us, sketch";
const TOKEN_DAY_COLUMNS: &str = "bucket, token_id, team_id, calls, errors";

/// A full buffer of COPY text for one table.
pub struct Chunk {
    pub table: &'static str,
    pub columns: &'static str,
    pub data: Vec<u8>,
}

/// Per-table COPY text buffers.
pub struct CopyBuffers {
    bufs: HashMap<&'static str, (&'static str, Vec<u8>)>,
    tx: mpsc::Sender<Chunk>,
    /// The receiver went away (the COPY failed); rows are dropped from then on.
    pub closed: bool,
}

impl CopyBuffers {
    pub fn new(tx: mpsc::Sender<Chunk>) -> Self {
        Self {
            bufs: HashMap::new(),
            tx,
            closed: false,
        }
    }

    /// Appends one row (blocks while the loader is behind).
    pub fn push(&mut self, row: Row<'_>) {
        let table = row.table();
        let columns = match row {
            Row::Detail { .. } => DETAIL_COLUMNS,
            Row::Series { .. } => SERIES_COLUMNS,
            Row::TokenDay { .. } => TOKEN_DAY_COLUMNS,
        };
        let (columns, buf) = self
            .bufs
            .entry(table)
            .or_insert_with(|| (columns, Vec::with_capacity(CHUNK_BYTES + 4096)));
        match row {
            Row::Detail {
                bucket,
                token,
                team,
                route,
                status,
                value,
                sketch,
                ..
            } => {
                let line = format!(
                    "{bucket}\t{}\t{}\t{}\t{status}\t\t",
                    catalog::token_id(token),
                    catalog::team_id(team),
                    catalog::route_name(route)
                );
                buf.extend_from_slice(line.as_bytes());
                push_value(buf, value, sketch);
            }
            Row::Series {
                dim,
                key,
                bucket,
                status,
                value,
                sketch,
                ..
            } => {
                buf.extend_from_slice(format!("{dim}\t{key}\t{bucket}\t{status}\t").as_bytes());
                push_value(buf, value, sketch);
            }
            Row::TokenDay {
                bucket,
                token,
                team,
                calls,
                errors,
            } => {
                let line = format!(
                    "{bucket}\t{}\t{}\t{calls}\t{errors}\n",
                    catalog::token_id(token),
                    catalog::team_id(team),
                );
                buf.extend_from_slice(line.as_bytes());
            }
        }
        if buf.len() >= CHUNK_BYTES {
            let data = std::mem::replace(buf, Vec::with_capacity(CHUNK_BYTES + 4096));
            let columns = *columns;
            self.send(Chunk {
                table,
                columns,
                data,
            });
        }
    }

    fn send(&mut self, chunk: Chunk) {
        if !self.closed && self.tx.blocking_send(chunk).is_err() {
            self.closed = true;
        }
    }

    /// Hands over what is left.
    pub fn finish(mut self) {
        let rest: Vec<(&'static str, (&'static str, Vec<u8>))> = self.bufs.drain().collect();
        for (table, (columns, data)) in rest {
            if !data.is_empty() {
                self.send(Chunk {
                    table,
                    columns,
                    data,
                });
            }
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The value columns, then a newline. The sketch is bytea hex input, its backslash escaped
/// for the COPY text format.
fn push_value(buf: &mut Vec<u8>, v: &RollupValue, sketch: &[u8]) {
    let clamp = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    buf.extend_from_slice(
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t\\\\x",
            clamp(v.count),
            clamp(v.request_bytes),
            clamp(v.response_bytes),
            clamp(v.latency_sum_us),
            clamp(v.latency_min_us),
            clamp(v.latency_max_us)
        )
        .as_bytes(),
    );
    for b in sketch {
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 15)]);
    }
    buf.push(b'\n');
}

/// Streams every chunk received into its table; returns rows copied.
pub async fn copy_chunks(
    conn: &mut PgConnection,
    mut rx: mpsc::Receiver<Chunk>,
) -> Result<u64, sqlx::Error> {
    let mut rows = 0;
    while let Some(chunk) = rx.recv().await {
        let mut copy = conn
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN (FORMAT text)",
                chunk.table, chunk.columns
            ))
            .await?;
        copy.send(chunk.data).await?;
        rows += copy.finish().await?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use keygate_control_plane::usage::analytics::Tier;

    #[test]
    fn rows_format_as_copy_text() {
        let (tx, mut rx) = mpsc::channel(4);
        let mut b = CopyBuffers::new(tx);
        let mut v = RollupValue::default();
        v.record(1500, 10, 20);
        let sketch = v.sketch.encode();
        b.push(Row::Detail {
            tier: Tier::Hour,
            bucket: 3_600_000,
            token: 1,
            team: 1,
            route: 2,
            status: 200,
            value: &v,
            sketch: &sketch,
        });
        b.push(Row::Series {
            tier: Tier::Day,
            dim: "total",
            key: "",
            bucket: 0,
            status: 500,
            value: &v,
            sketch: &sketch,
        });
        b.push(Row::TokenDay {
            bucket: 0,
            token: 1,
            team: 1,
            calls: 7,
            errors: 2,
        });
        b.finish();
        let mut got = HashMap::new();
        while let Ok(c) = rx.try_recv() {
            got.insert(c.table, (c.columns, String::from_utf8(c.data).unwrap()));
        }
        let hex: String = sketch.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            got["usage_rollup_hour"],
            (
                DETAIL_COLUMNS,
                format!(
                    "3600000\ttok_00000000000000000000000000000001\tteam-01\tsvc-002\t200\t\t\
                     1\t10\t20\t1500\t1500\t1500\t\\\\x{hex}\n"
                )
            )
        );
        assert_eq!(
            got["usage_series_day"],
            (
                SERIES_COLUMNS,
                format!("total\t\t0\t500\t1\t10\t20\t1500\t1500\t1500\t\\\\x{hex}\n")
            )
        );
        assert_eq!(
            got["usage_token_day"],
            (
                TOKEN_DAY_COLUMNS,
                "0\ttok_00000000000000000000000000000001\tteam-01\t7\t2\n".to_owned()
            )
        );
    }
}
