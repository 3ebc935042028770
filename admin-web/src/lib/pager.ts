/** Cursor pagination helpers (pure). */
import { count as fmt } from "./format";

/** "1–50 of 1,234 tokens"; "No tokens" when empty. */
export function rangeText(page: number, pageSize: number, count: number, total: number | undefined, noun = "items"): string {
  if (count === 0) return total ? `${fmt(total)} ${noun}` : `No ${noun}`;
  const from = (page - 1) * pageSize + 1;
  const to = from + count - 1;
  return total !== undefined ? `${fmt(from)}–${fmt(to)} of ${fmt(total)} ${noun}` : `${fmt(from)}–${fmt(to)}`;
}

/**
 * Page tokens seen so far, so "previous" works: index i holds the token of page i+1
 * (page 1 has ""). Deep links to a later page know only their own token; "previous" then
 * goes back to page 1.
 */
export class CursorTrail {
  private tokens: string[] = [""];

  remember(page: number, token: string): void {
    this.tokens[page - 1] = token;
  }

  /** The token for `page`, or undefined when it is not known. */
  tokenFor(page: number): string | undefined {
    return this.tokens[page - 1];
  }

  reset(): void {
    this.tokens = [""];
  }
}
