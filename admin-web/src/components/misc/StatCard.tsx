import type { ReactNode } from "react";
import { Skeleton, Text } from "@mantine/core";
import classes from "./StatCard.module.css";

/** One figure with its label and an optional hint line (dashboards, usage). */
export function StatCard({ label, value, hint, loading }: { label: string; value: ReactNode; hint?: ReactNode; loading?: boolean }) {
  return (
    <div className={`kg-card ${classes.card}`} role="group" aria-label={label}>
      <Text size="xs" c="dimmed" fw={500} tt="uppercase" className={classes.label}>
        {label}
      </Text>
      {loading ? <Skeleton h={26} w={80} mt={6} /> : <div className={classes.value}>{value}</div>}
      {hint && !loading && (
        <Text size="xs" c="dimmed" mt={2} className="kg-truncate">
          {hint}
        </Text>
      )}
    </div>
  );
}
