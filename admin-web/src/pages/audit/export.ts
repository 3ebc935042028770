/** Pure parts of the audit export (the stream itself runs in ExportModal). */

export type ExportKind = "csv" | "ndjson";

export const EXPORT_MIME: Record<ExportKind, string> = {
  csv: "text/csv;charset=utf-8",
  ndjson: "application/x-ndjson",
};

/**
 * Counts complete records in a byte stream fed in arbitrary chunks: NDJSON lines, or CSV
 * records (newlines inside quoted fields do not end a record; the header is not counted).
 * Works on UTF-8 bytes: `"` and `\n` never occur inside a multi-byte character.
 */
export class RecordCounter {
  private inQuotes = false;
  private newlines = 0;
  constructor(private readonly kind: ExportKind) {}

  push(chunk: Uint8Array): void {
    if (this.kind === "ndjson") {
      for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a) this.newlines++;
      return;
    }
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === 0x22) this.inQuotes = !this.inQuotes;
      else if (b === 0x0a && !this.inQuotes) this.newlines++;
    }
  }

  get records(): number {
    return this.kind === "csv" ? Math.max(0, this.newlines - 1) : this.newlines;
  }
}

/** 1536 -> "1.5 kB". */
export function byteSize(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ["kB", "MB", "GB"];
  let v = n;
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return `${v >= 100 ? Math.round(v) : v.toFixed(1)} ${units[u]}`;
}
