import type { ReactNode } from "react";
import { Group, Text } from "@mantine/core";
import classes from "./Panel.module.css";

/** A titled card section (dashboard tiles, detail pages). */
export function Panel({ title, actions, children, flush }: { title: ReactNode; actions?: ReactNode; children: ReactNode; flush?: boolean }) {
  return (
    <section className={`kg-card ${classes.panel}`}>
      <Group justify="space-between" className={classes.head} wrap="nowrap">
        <Text fw={600} size="sm" component="h2">
          {title}
        </Text>
        {actions}
      </Group>
      <div className={flush ? undefined : classes.body}>{children}</div>
    </section>
  );
}
