import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function ServiceAccountsPage() {
  return <NotBuiltYet title="Service accounts" what="Service accounts and their management keys." />;
}
