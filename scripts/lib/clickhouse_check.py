#!/usr/bin/env python3
"""Loads a Keygate usage export into chDB (embedded ClickHouse) with the table definitions of
docs/analytics-clickhouse.md and prints the totals as JSON, for
control-plane/tests/api.rs::clickhouse_schema_loads_an_export.

usage: clickhouse_check.py DOC.md ROLLUPS.ndjson
"""
import json
import re
import sys
import tempfile

import chdb.session


def sql_blocks(doc: str):
    """Every statement of the ```sql blocks, in order."""
    for block in re.findall(r"```sql\n(.*?)```", doc, re.S):
        for stmt in block.split(";"):
            if stmt.strip():
                yield stmt.strip()


def main() -> None:
    doc_path, rollups_path = sys.argv[1], sys.argv[2]
    with open(doc_path, encoding="utf-8") as f:
        doc = f.read()
    with open(rollups_path, encoding="utf-8") as f:
        rollups = f.read()
    with tempfile.TemporaryDirectory() as tmp:
        sess = chdb.session.Session(tmp)
        statements = list(sql_blocks(doc))
        for stmt in statements:
            sess.query(stmt)
        sess.query("INSERT INTO keygate_usage_rollups FORMAT JSONEachRow\n" + rollups)
        raw = json.loads(
            sess.query(
                # Qualified columns: a bare `calls` would read the alias.
                "SELECT count() AS rows, sum(r.calls) AS calls, "
                "sum(if(r.status >= 400, r.calls, 0)) AS errors, "
                "sum(r.request_bytes) AS request_bytes, "
                "sum(r.response_bytes) AS response_bytes, "
                "sum(r.latency_sum_us) AS latency_sum_us, "
                "min(r.latency_min_us) AS latency_min_us, "
                "max(r.latency_max_us) AS latency_max_us "
                "FROM keygate_usage_rollups AS r WHERE r.tier = 'minute'",
                "JSONEachRow",
            ).bytes()
        )
        daily = json.loads(
            sess.query(
                "SELECT sum(c) AS calls, sum(e) AS errors, sum(l) AS latency_sum_us FROM ("
                "SELECT sumMerge(calls) AS c, sumMerge(errors) AS e, "
                "sumMerge(latency_sum_us) AS l FROM keygate_usage_daily "
                "GROUP BY day, team_id, token_id, route)",
                "JSONEachRow",
            ).bytes()
        )
        sess.close()
    print(json.dumps({"statements": len(statements), "raw": raw, "daily": daily}))


if __name__ == "__main__":
    main()
