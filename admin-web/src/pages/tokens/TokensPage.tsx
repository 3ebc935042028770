import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function TokensPage() {
  return <NotBuiltYet title="Tokens" what="Tokens." />;
}
