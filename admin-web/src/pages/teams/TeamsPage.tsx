import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function TeamsPage() {
  return <NotBuiltYet title="Teams" what="Teams with member and token counts, members by role, claim and delete." />;
}
