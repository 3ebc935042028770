import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function SessionsPage() {
  return <NotBuiltYet title="My sessions" what="Your sessions." />;
}
