/** Client-side hint only; the server's rule (12-256 characters) is what counts. */
export function passwordRules(v: string): string | null {
  if (v.length < 12) return "At least 12 characters";
  if (v.length > 256) return "At most 256 characters";
  return null;
}
