/**
 * Exports the WHOLE filtered audit log through ExportAuditEvents (a server stream, oldest
 * first) into a Blob download, with live progress and a cancel that aborts the stream.
 */
import { useEffect, useRef, useState } from "react";
import { Button, Group, Modal, Progress, Stack, Text } from "@mantine/core";
import { IconCircleCheck } from "@tabler/icons-react";
import type { AuditFilter } from "../../gen/keygate/v1/audit_pb";
import { ExportFormat } from "../../gen/keygate/v1/audit_pb";
import { auditApi } from "../../api/transport";
import { ErrorState } from "../../components/states/ErrorState";
import { saveBlob, timestampedFileName } from "../../lib/download";
import { count } from "../../lib/format";
import { EXPORT_MIME, RecordCounter, byteSize, type ExportKind } from "./export";

export interface ExportRequest {
  kind: ExportKind;
  filter: AuditFilter;
  /** The list's total for this filter, for the progress bar (may be slightly stale). */
  expected: number | undefined;
  /** "matching the filters" / "in the log". */
  scope: string;
}

type State =
  | { phase: "running"; bytes: number; records: number }
  | { phase: "done"; bytes: number; records: number; blob: Blob; fileName: string }
  | { phase: "failed"; error: unknown };

export function ExportModal({ request, onClose }: { request: ExportRequest | null; onClose: () => void }) {
  const [state, setState] = useState<State>({ phase: "running", bytes: 0, records: 0 });
  const [attempt, setAttempt] = useState(0);
  const abort = useRef<AbortController | null>(null);

  useEffect(() => {
    if (!request) return;
    const ctl = new AbortController();
    abort.current = ctl;
    setState({ phase: "running", bytes: 0, records: 0 });
    void (async () => {
      const parts: BlobPart[] = [];
      const counter = new RecordCounter(request.kind);
      let bytes = 0;
      let last = 0;
      try {
        const stream = auditApi.exportAuditEvents(
          { filter: request.filter, format: request.kind === "csv" ? ExportFormat.CSV : ExportFormat.NDJSON },
          // No deadline: a large log takes as long as it takes; Cancel aborts.
          { signal: ctl.signal, timeoutMs: 0 },
        );
        for await (const chunk of stream) {
          parts.push(chunk.data as Uint8Array<ArrayBuffer>);
          counter.push(chunk.data);
          bytes += chunk.data.length;
          const now = performance.now();
          if (now - last > 100) {
            last = now;
            setState({ phase: "running", bytes, records: counter.records });
          }
        }
        const blob = new Blob(parts, { type: EXPORT_MIME[request.kind] });
        const fileName = timestampedFileName("keygate-audit", request.kind);
        saveBlob(blob, fileName);
        setState({ phase: "done", bytes, records: counter.records, blob, fileName });
      } catch (e) {
        if (!ctl.signal.aborted) setState({ phase: "failed", error: e });
      }
    })();
    return () => ctl.abort();
  }, [request, attempt]);

  const cancel = () => {
    abort.current?.abort();
    onClose();
  };
  const label = request?.kind === "csv" ? "CSV" : "NDJSON";
  const expected = request?.expected;

  return (
    <Modal
      opened={!!request}
      onClose={cancel}
      title={`Export audit log as ${label}`}
      closeOnClickOutside={state.phase !== "running"}
      size="md"
    >
      {state.phase === "running" && (
        <Stack gap="sm">
          <Text size="sm">
            Streaming {expected !== undefined ? `${count(expected)} ` : "every "}
            event{expected === 1 ? "" : "s"} {request?.scope}, oldest first.
          </Text>
          <Progress
            value={expected ? Math.min(100, (state.records / expected) * 100) : 100}
            animated={!expected}
            striped={!expected}
            aria-label="Export progress"
            size="md"
          />
          <Text size="sm" c="dimmed" aria-live="polite">
            {count(state.records)} event{state.records === 1 ? "" : "s"}
            {expected ? ` of ${count(expected)}` : ""} · {byteSize(state.bytes)}
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={cancel} data-autofocus>
              Cancel
            </Button>
          </Group>
        </Stack>
      )}
      {state.phase === "done" && (
        <Stack gap="sm">
          <Group gap="xs" wrap="nowrap">
            <IconCircleCheck size={20} className="kg-good" aria-hidden />
            <Text size="sm" role="status">
              Saved <span className="kg-mono">{state.fileName}</span>: {count(state.records)} event{state.records === 1 ? "" : "s"},{" "}
              {byteSize(state.bytes)}.
            </Text>
          </Group>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => saveBlob(state.blob, state.fileName)}>
              Download again
            </Button>
            <Button onClick={onClose} data-autofocus>
              Done
            </Button>
          </Group>
        </Stack>
      )}
      {state.phase === "failed" && (
        <Stack gap="sm">
          <ErrorState error={state.error} title="The export failed" retry={() => setAttempt((n) => n + 1)} />
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Close
            </Button>
          </Group>
        </Stack>
      )}
    </Modal>
  );
}
