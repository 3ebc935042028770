import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function RoutesPage() {
  return <NotBuiltYet title="Routes" what="Routes: search, tags, methods, allowed teams, CORS origins, rate limits and backend auth with write-only secrets." />;
}
