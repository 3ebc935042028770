import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function DashboardPage() {
  return <NotBuiltYet title="Dashboard" what="The dashboard." />;
}
