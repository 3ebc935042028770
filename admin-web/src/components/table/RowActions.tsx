/**
 * A row's "…" action menu. A table page shows dozens of them and a Mantine Menu (a popover
 * with its floating-position hooks) or even an ActionIcon costs more to mount than the rest of
 * the row, so each row renders one plain button (styled as a subtle ActionIcon); the first
 * click (or Enter/Space) mounts the menu around a new button, focuses it and opens the menu
 * (an open from closed, so the Menu knows where to return focus). After that it stays mounted
 * and behaves as any Menu: arrow keys, Esc returns focus to the button.
 */
import { forwardRef, useEffect, useRef, useState, type ComponentPropsWithoutRef, type ReactNode } from "react";
import { Menu } from "@mantine/core";
import { IconDots } from "@tabler/icons-react";
import classes from "./DataTable.module.css";

const DotsButton = forwardRef<HTMLButtonElement, ComponentPropsWithoutRef<"button">>(function DotsButton(props, ref) {
  return (
    <button ref={ref} type="button" className={classes.rowMenuButton} aria-haspopup="menu" {...props}>
      <IconDots size={16} aria-hidden />
    </button>
  );
});

export function RowActions({ label, children }: { label: string; children: ReactNode }) {
  const [mounted, setMounted] = useState(false);
  const [opened, setOpened] = useState(false);
  const button = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (!mounted) return;
    button.current?.focus();
    setOpened(true);
  }, [mounted]);
  if (!mounted) return <DotsButton aria-label={label} onClick={() => setMounted(true)} />;
  return (
    <Menu position="bottom-end" withinPortal opened={opened} onChange={setOpened}>
      <Menu.Target>
        <DotsButton ref={button} aria-label={label} />
      </Menu.Target>
      <Menu.Dropdown>{children}</Menu.Dropdown>
    </Menu>
  );
}
