/** Saves a Blob as a file download (object URL + a temporary `<a download>`; CSP-safe). */
export function saveBlob(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = fileName;
  a.rel = "noopener";
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  // Give the browser time to start the download before the URL goes.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** `prefix-20250131-140502.ext` in UTC: sortable, no characters file systems dislike. */
export function timestampedFileName(prefix: string, ext: string, now: Date = new Date()): string {
  const stamp = now.toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  return `${prefix}-${stamp}.${ext}`;
}
