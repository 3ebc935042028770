/**
 * Export of what the overview shows (ExportUsage, a server stream): rollups or raw events as
 * CSV or NDJSON, collected into a Blob and saved. The button shows the bytes received and
 * cancels a running export.
 */
import { useRef, useState } from "react";
import { Button, Menu } from "@mantine/core";
import { IconDownload, IconX } from "@tabler/icons-react";
import { ExportFormat } from "../../gen/keygate/v1/audit_pb";
import { ExportKind } from "../../gen/keygate/v1/usage_pb";
import { usageApi } from "../../api/transport";
import { notifyError, notifySuccess } from "../../components/misc/notify";
import { saveBlob, timestampedFileName } from "../../lib/download";
import { bytes } from "./format";
import { resolveRange, type RangeSearch } from "./range";
import type { UsageFilters } from "./search";
import { toUsageQuery } from "./query";

type Kind = "rollups" | "events";
type Format = "csv" | "ndjson";

export function ExportMenu({ range, filters }: { range: RangeSearch; filters: UsageFilters }) {
  const [received, setReceived] = useState<number | null>(null);
  const abort = useRef<AbortController | null>(null);

  const run = async (kind: Kind, format: Format) => {
    const ctl = new AbortController();
    abort.current = ctl;
    setReceived(0);
    const parts: BlobPart[] = [];
    let n = 0;
    try {
      const r = resolveRange(range, new Date());
      const stream = usageApi.exportUsage(
        {
          query: toUsageQuery(filters, r),
          kind: kind === "events" ? ExportKind.EVENTS : ExportKind.ROLLUPS,
          format: format === "csv" ? ExportFormat.CSV : ExportFormat.NDJSON,
        },
        { signal: ctl.signal, timeoutMs: 0 },
      );
      let last = 0;
      for await (const chunk of stream) {
        parts.push(chunk.data as Uint8Array<ArrayBuffer>);
        n += chunk.data.length;
        if (performance.now() - last > 150) {
          last = performance.now();
          setReceived(n);
        }
      }
      saveBlob(new Blob(parts, { type: format === "csv" ? "text/csv" : "application/x-ndjson" }), timestampedFileName(`keygate-usage-${kind}`, format));
      notifySuccess(`Exported ${bytes(n)} of ${kind === "events" ? "raw events" : "rollups"}.`);
    } catch (e) {
      if (!ctl.signal.aborted) notifyError(e, "Export failed");
    } finally {
      abort.current = null;
      setReceived(null);
    }
  };

  if (received !== null) {
    return (
      <Button size="xs" variant="default" leftSection={<IconX size={14} />} onClick={() => abort.current?.abort()} aria-label={`Cancel export (${bytes(received)} received)`}>
        Exporting… {bytes(received)}
      </Button>
    );
  }
  const perGateway = !!filters.gateway;
  return (
    <Menu position="bottom-end" withinPortal>
      <Menu.Target>
        <Button size="xs" variant="default" leftSection={<IconDownload size={14} />}>
          Export
        </Button>
      </Menu.Target>
      <Menu.Dropdown>
        <Menu.Label>Rollups (every call, per minute/hour/day)</Menu.Label>
        <Menu.Item disabled={perGateway} onClick={() => void run("rollups", "csv")}>
          Rollups as CSV
        </Menu.Item>
        <Menu.Item disabled={perGateway} onClick={() => void run("rollups", "ndjson")}>
          Rollups as NDJSON
        </Menu.Item>
        <Menu.Divider />
        <Menu.Label>Raw events (refusals, 5xx, samples)</Menu.Label>
        <Menu.Item onClick={() => void run("events", "csv")}>Raw events as CSV</Menu.Item>
        <Menu.Item onClick={() => void run("events", "ndjson")}>Raw events as NDJSON</Menu.Item>
      </Menu.Dropdown>
    </Menu>
  );
}
