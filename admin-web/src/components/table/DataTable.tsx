/**
 * The shared table: sortable headers (server-side sort), row selection for bulk actions,
 * loading / error / empty states in place, and a footer (usually the Pager).
 *
 * The body is plain <tr>/<td> and native checkboxes styled by DataTable.module.css, not
 * Mantine's Table.Tr/Td/Checkbox: a page of 50 rows x 10 cells would mount over a thousand
 * Mantine components, which made rendering the token list cost more than fetching it. Cells
 * should stay light for the same reason (see Pill, TimeAgo, RowActions).
 */
import { useEffect, useRef, type ReactNode } from "react";
import { Table } from "@mantine/core";
import { IconArrowDown, IconArrowUp, IconArrowsSort } from "@tabler/icons-react";
import { SkeletonRows } from "../states/LoadingState";
import { ErrorState } from "../states/ErrorState";
import classes from "./DataTable.module.css";

export interface Column<T> {
  key: string;
  header: ReactNode;
  cell: (row: T) => ReactNode;
  /** Set when the server can sort by this column. */
  sortKey?: string;
  align?: "left" | "right";
  width?: number | string;
}

export interface SortState {
  key: string;
  desc: boolean;
}

export interface Selection<T> {
  selected: ReadonlySet<string>;
  onChange: (next: Set<string>) => void;
  /** Rows that cannot be selected show a disabled box (e.g. already revoked). */
  isSelectable?: (row: T) => boolean;
}

export interface DataTableProps<T> {
  /** Accessible name of the table. */
  label: string;
  columns: Column<T>[];
  rows: T[] | undefined;
  rowKey: (row: T) => string;
  loading?: boolean;
  error?: unknown;
  onRetry?: () => void;
  empty?: ReactNode;
  sort?: SortState;
  onSortChange?: (s: SortState) => void;
  selection?: Selection<T>;
  /** Shown above the table while rows are selected. */
  bulkActions?: ReactNode;
  onRowClick?: (row: T) => void;
  footer?: ReactNode;
}

export function DataTable<T>(p: DataTableProps<T>) {
  const rows = p.rows ?? [];
  const sel = p.selection;
  const selectable = sel ? rows.filter((r) => sel.isSelectable?.(r) ?? true) : [];
  const allSelected = !!sel && selectable.length > 0 && selectable.every((r) => sel.selected.has(p.rowKey(r)));
  const someSelected = !!sel && selectable.some((r) => sel.selected.has(p.rowKey(r)));

  const toggleAll = () => {
    if (!sel) return;
    const next = new Set(sel.selected);
    for (const r of selectable) {
      if (allSelected) next.delete(p.rowKey(r));
      else next.add(p.rowKey(r));
    }
    sel.onChange(next);
  };
  const toggle = (id: string) => {
    if (!sel) return;
    const next = new Set(sel.selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    sel.onChange(next);
  };

  let body: ReactNode;
  if (p.error) {
    body = <div style={{ padding: "0 12px" }}><ErrorState error={p.error} retry={p.onRetry} /></div>;
  } else if (p.loading && rows.length === 0) {
    body = <SkeletonRows />;
  } else if (rows.length === 0) {
    body = p.empty;
  }

  return (
    <div className={classes.wrap}>
      {sel && sel.selected.size > 0 && p.bulkActions && (
        <div className={classes.bulk} role="region" aria-label="Bulk actions">
          <span>{sel.selected.size} selected</span>
          {p.bulkActions}
        </div>
      )}
      {body ?? (
        <div className={classes.scroll}>
          <Table className={classes.table} highlightOnHover aria-label={p.label} aria-busy={p.loading || undefined}>
            <Table.Thead>
              <Table.Tr>
                {sel && (
                  <Table.Th className={classes.check}>
                    <RowCheckbox
                      label="Select all rows on this page"
                      checked={allSelected}
                      indeterminate={someSelected && !allSelected}
                      onChange={toggleAll}
                      disabled={selectable.length === 0}
                    />
                  </Table.Th>
                )}
                {p.columns.map((c) => (
                  <Table.Th
                    key={c.key}
                    style={{ width: c.width, textAlign: c.align }}
                    aria-sort={p.sort && c.sortKey === p.sort.key ? (p.sort.desc ? "descending" : "ascending") : undefined}
                  >
                    {c.sortKey && p.onSortChange ? (
                      <SortHeader column={c} sort={p.sort} onChange={p.onSortChange} />
                    ) : (
                      c.header
                    )}
                  </Table.Th>
                ))}
              </Table.Tr>
            </Table.Thead>
            <tbody>
              {rows.map((r) => {
                const id = p.rowKey(r);
                const canSelect = sel?.isSelectable?.(r) ?? true;
                return (
                  <tr
                    key={id}
                    className={classes.row}
                    data-selected={sel?.selected.has(id) || undefined}
                    data-clickable={p.onRowClick ? true : undefined}
                    onClick={p.onRowClick ? (e) => {
                      // Clicks on controls inside the row are theirs.
                      if ((e.target as HTMLElement).closest("button, a, input, [role=menuitem]")) return;
                      p.onRowClick!(r);
                    } : undefined}
                  >
                    {sel && (
                      <td className={`${classes.cell} ${classes.check}`}>
                        <RowCheckbox label="Select row" checked={sel.selected.has(id)} disabled={!canSelect} onChange={() => toggle(id)} />
                      </td>
                    )}
                    {p.columns.map((c) => (
                      <td key={c.key} className={classes.cell} style={c.align ? { textAlign: c.align } : undefined}>
                        {c.cell(r)}
                      </td>
                    ))}
                  </tr>
                );
              })}
            </tbody>
          </Table>
        </div>
      )}
      {p.footer && <div className={classes.foot}>{p.footer}</div>}
    </div>
  );
}

function RowCheckbox(p: { label: string; checked: boolean; indeterminate?: boolean; disabled?: boolean; onChange: () => void }) {
  const ref = useRef<HTMLInputElement>(null);
  const indeterminate = !!p.indeterminate;
  useEffect(() => {
    if (ref.current) ref.current.indeterminate = indeterminate;
  }, [indeterminate]);
  return (
    <input
      ref={ref}
      type="checkbox"
      className={classes.checkbox}
      aria-label={p.label}
      checked={p.checked}
      disabled={p.disabled}
      onChange={p.onChange}
    />
  );
}

function SortHeader<T>({ column, sort, onChange }: { column: Column<T>; sort: SortState | undefined; onChange: (s: SortState) => void }) {
  const active = sort?.key === column.sortKey;
  const Icon = !active ? IconArrowsSort : sort!.desc ? IconArrowDown : IconArrowUp;
  return (
    <button
      type="button"
      className={classes.sortButton}
      data-active={active}
      onClick={() => onChange({ key: column.sortKey!, desc: active ? !sort!.desc : false })}
    >
      {column.header}
      <Icon size={13} aria-hidden />
    </button>
  );
}
