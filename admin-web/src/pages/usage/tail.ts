/** The live tail's bounded buffers and reconnect delays (pure; unit-tested). */

/** Rows kept on screen, newest first. */
export const TAIL_LIMIT = 500;

/**
 * Puts `incoming` (oldest first, as the stream delivers them) in front of `current` (newest
 * first) and keeps at most `limit` rows.
 */
export function prependBounded<T>(current: readonly T[], incoming: readonly T[], limit = TAIL_LIMIT): T[] {
  if (incoming.length === 0) return current as T[];
  const fresh = incoming.slice(-limit).reverse();
  return fresh.concat(current.slice(0, Math.max(0, limit - fresh.length)));
}

/** Seconds before reconnect attempt `n` (0-based): 1, 2, 4, 8, 15, 15, ... */
export function reconnectDelaySeconds(attempt: number): number {
  return Math.min(15, 2 ** Math.max(0, attempt));
}
