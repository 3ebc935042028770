import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function ChangePasswordPage() {
  return <NotBuiltYet title="Change password" what="Changing your password." />;
}
