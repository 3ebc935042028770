import type { CSSProperties, ReactNode } from "react";
import classes from "./Pill.module.css";

export type PillVariant = "light" | "default" | "dot";

/** A theme colour name ("teal") or a CSS colour ("#4c6ef5") as the pill's colours. */
function colors(color: string): CSSProperties {
  if (/^[a-z]+$/.test(color)) {
    return {
      "--pill-fg": `var(--mantine-color-${color}-light-color)`,
      "--pill-bg": `var(--mantine-color-${color}-light)`,
      "--pill-dot": `var(--mantine-color-${color}-filled)`,
    } as CSSProperties;
  }
  return { "--pill-fg": color, "--pill-bg": `color-mix(in srgb, ${color} 12%, transparent)`, "--pill-dot": color } as CSSProperties;
}

/** A small label (status, team, scope) for places that show many: see Pill.module.css. */
export function Pill({
  color = "gray",
  variant = "light",
  title,
  className,
  children,
}: {
  color?: string;
  variant?: PillVariant;
  title?: string;
  className?: string;
  children: ReactNode;
}) {
  return (
    <span className={className ? `${classes.pill} ${className}` : classes.pill} data-variant={variant} title={title} style={colors(color)}>
      {children}
    </span>
  );
}
