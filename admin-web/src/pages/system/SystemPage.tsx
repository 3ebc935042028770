import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function SystemPage() {
  return <NotBuiltYet title="System health" what="Database, sync and gateway status with auto-refresh." />;
}
