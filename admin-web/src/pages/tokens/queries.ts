/** The token list query, shared by the page and its route loader (which starts it while the
 * page's code is still loading). */
import { queryOptions } from "@tanstack/react-query";
import { tokensApi } from "../../api/transport";
import { toListTokensRequest, type TokensSearch } from "./search";

export function tokensListQuery(s: TokensSearch) {
  return queryOptions({
    queryKey: ["tokens", "list", s.q, s.team, s.scope, s.status, s.expiring, s.unused, s.never, s.sort, s.desc, s.size, s.cursor],
    queryFn: ({ signal }) => tokensApi.listTokens(toListTokensRequest(s, new Date()), { signal }),
  });
}
