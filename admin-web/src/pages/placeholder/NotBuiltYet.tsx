/** Honest placeholder for a page that exists in the navigation but is not built yet. */
import { IconHammer } from "@tabler/icons-react";
import { EmptyState } from "../../components/states/EmptyState";
import { PageHeader } from "../../components/misc/PageHeader";

export function NotBuiltYet({ title, what }: { title: string; what: string }) {
  return (
    <>
      <PageHeader title={title} />
      <div className="kg-card">
        <EmptyState
          icon={IconHammer}
          title="Not built yet"
          description={`${what} This page is planned (issue 13) and not built yet; until then the CLI (keygate --help) covers it.`}
        />
      </div>
    </>
  );
}
