/** The teams page's URL state (pure). */
import { compact, str } from "../../lib/search";

export interface TeamsSearch {
  /** Substring of id, name or description (ListTeams `query`). */
  q?: string;
  /** A team whose details and members are open. */
  open?: string;
}

export function validateTeamsSearch(s: Record<string, unknown>): TeamsSearch {
  return compact({ q: str(s.q, 100), open: str(s.open, 40) });
}
