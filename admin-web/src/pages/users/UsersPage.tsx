import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function UsersPage() {
  return <NotBuiltYet title="Users & invitations" what="Users, their team roles, and pending invitations." />;
}
