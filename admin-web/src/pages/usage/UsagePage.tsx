import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function UsagePage() {
  return <NotBuiltYet title="Usage" what="Usage analytics: series, status mix, percentiles, token and route detail, live tail." />;
}
