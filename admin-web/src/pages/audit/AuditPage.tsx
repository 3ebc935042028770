import { NotBuiltYet } from "../placeholder/NotBuiltYet";

export function AuditPage() {
  return <NotBuiltYet title="Audit log" what="The audit log with filters, export and chain verification." />;
}
